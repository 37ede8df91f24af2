"""Best-validation checkpoints and MMRec's ``recommend_topk`` CSV, written atomically.

A checkpoint holds the weights (the step sampler's loss history is a buffer, so it is
among them), the config, and a fingerprint of the dataset; loading it against other data
is refused.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import UserInputError
from ..files import atomic_write

CHECKPOINT_FILE = "model.pt"


def dataset_fingerprint(dataset, feature_paths: list[str]) -> str:
    """Hash of the interactions (users, items, split labels) and of the feature files' bytes."""
    h = hashlib.sha1()
    df = dataset.df
    for col in (dataset.uid_field, dataset.iid_field, dataset.splitting_label):
        h.update(np.ascontiguousarray(df[col].to_numpy(dtype=np.int64)).tobytes())
    for path in sorted(feature_paths):
        with open(path, "rb") as f:
            h.update(hashlib.sha1(f.read()).digest())
    return h.hexdigest()[:20]


def save_checkpoint(folder: Path, state: dict, config: dict, fingerprint: str, meta: dict) -> Path:
    payload = {"state_dict": state, "config": config, "dataset_fingerprint": fingerprint, **meta}
    path = Path(folder) / CHECKPOINT_FILE
    atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return path


def load_checkpoint(folder: Path, fingerprint: str, dataset_name: str) -> dict:
    path = Path(folder) / CHECKPOINT_FILE if Path(folder).is_dir() else Path(folder)
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserInputError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or "dataset_fingerprint" not in payload:
        raise UserInputError(f"{path}: not a checkpoint written by mmrec-ld4mrec")
    if payload["dataset_fingerprint"] != fingerprint:
        raise UserInputError(
            f"{path}: refusing to load: it was trained on dataset '{payload.get('dataset')}' "
            f"(fingerprint {payload['dataset_fingerprint']}), but '{dataset_name}' has fingerprint {fingerprint}")
    return payload


def save_topk_csv(folder: Path, model: str, dataset: str, idx: int, users: np.ndarray, topk: np.ndarray) -> Path:
    """MMRec's layout: tab-separated, columns ``id, top_0 .. top_{k-1}``, named
    ``{model}-{dataset}-idx{idx}-top{k}-{time}.csv``."""
    k = topk.shape[1]
    stamp = time.strftime("%b-%d-%Y-%H-%M-%S")
    path = Path(folder) / f"{model}-{dataset}-idx{idx}-top{k}-{stamp}.csv"
    frame = pd.DataFrame(topk.astype(int), columns=[f"top_{i}" for i in range(k)])
    frame.insert(0, "id", users.astype(int))
    atomic_write(path, lambda tmp: frame.to_csv(tmp, sep="\t", index=False))
    return path
