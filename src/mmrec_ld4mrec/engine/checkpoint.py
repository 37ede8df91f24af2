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


def checkpoint_path(folder: Path) -> Path:
    """The checkpoint file of ``--load``: ``folder/model.pt``, or ``folder`` itself when it is a file."""
    return Path(folder) / CHECKPOINT_FILE if Path(folder).is_dir() else Path(folder)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise UserInputError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or "dataset_fingerprint" not in payload:
        raise UserInputError(f"{path}: not a checkpoint written by mmrec-ld4mrec")
    return payload


def checkpoint_model(path: Path) -> tuple[str, str, str | None]:
    """(model, engine, dataset) a checkpoint names, read before the data it was trained on is
    loaded; engine is ``standalone`` or ``mmrec`` (a model trained in MMRec's pipeline)."""
    payload = _read(path)
    model, engine = payload.get("model"), payload.get("engine", "standalone")
    if not isinstance(model, str) or not model or engine not in ("standalone", "mmrec"):
        raise UserInputError(f"{path}: does not say which model and engine made it; "
                             "not a checkpoint written by mmrec-ld4mrec run --save")
    dataset = payload.get("dataset")
    return model, engine, dataset if isinstance(dataset, str) else None


def load_checkpoint(folder: Path, fingerprint: str, dataset_name: str, model_name: str | None = None) -> dict:
    """A checkpoint written by ``run --save``, refused (one line naming the file) when it is not
    one, when another model made it (checked first), or when it was trained on other data."""
    path = checkpoint_path(folder)
    payload = _read(path)
    if model_name is not None:
        made_by = payload.get("model")
        if not isinstance(made_by, str):
            raise UserInputError(f"{path}: does not say which model made it (no 'model' entry); "
                                 "not a checkpoint written by mmrec-ld4mrec run --save")
        if made_by != model_name:
            raise UserInputError(f"{path}: made by model {made_by[:80]!r}, not {model_name!r}; "
                                 f"load it with -m {made_by[:80]}")
    if payload["dataset_fingerprint"] != fingerprint:
        raise UserInputError(
            f"{path}: refusing to load: it was trained on dataset '{payload.get('dataset')}' "
            f"(fingerprint {payload['dataset_fingerprint']}), but '{dataset_name}' has fingerprint {fingerprint}")
    state, config = payload.get("state_dict"), payload.get("config")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserInputError(f"{path}: its 'state_dict' is not a mapping of names to tensors")
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise UserInputError(f"{path}: its 'config' is not a mapping of keys to values")
    return payload


def _some(names: list[str]) -> str:
    shown = ", ".join(repr(n[:60]) for n in names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def load_state(model: torch.nn.Module, state: dict, path: Path, model_name: str) -> None:
    """Load ``state`` into ``model``; a state dict of another architecture or size is one short
    ``UserInputError`` (which weights are missing, unexpected or of another shape) instead of
    torch's many-line error."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resizable = set(getattr(model, "resizable_state_keys", ()))  # e.g. DiffMM's generated graphs
    shapes = [k for k in own if k in state and k not in resizable and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({_some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({_some(unexpected)})")
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} of another shape ({k!r}: {tuple(state[k].shape)} in the file, "
                        f"{tuple(own[k].shape)} here)")
    if problems:
        raise UserInputError(f"{path}: its weights do not fit {model_name} with this config: {'; '.join(problems)}")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"{path}: its weights do not fit {model_name}: {first}") from None


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
