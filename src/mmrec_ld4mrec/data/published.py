"""Importers for published splits, kept as published (no re-filtering, no re-splitting).

* ``diffmm``: DiffMM's release (``trnMat.pkl``, ``valMat.pkl``, ``tstMat.pkl``: pickled scipy
  sparse user x item matrices; ``*_feat.npy``: item features, row i = item i).
* ``diffrec``: DiffRec's release (``train_list.npy``, ``valid_list.npy``, ``test_list.npy``:
  int arrays of (user, item) pairs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError
from .features import load_feature_file, load_npy
from .layout import check_output, write_dataset
from .safe_pickle import load_sparse_pickle

DIFFMM_SPLITS = ("trnMat.pkl", "valMat.pkl", "tstMat.pkl")
DIFFMM_FEATURES = {"image_feat.npy": "image_feat.npy", "text_feat.npy": "text_feat.npy",
                   "audio_feat.npy": "audio_feat.npy"}  # MMRec slots: vision, then text, then extra
DIFFREC_SPLITS = ("train_list.npy", "valid_list.npy", "test_list.npy")
MAX_IDS = 2**31 - 1  # torch indexes embedding rows with int32 kernels beyond this


def _pairs_from_matrix(path: Path, m: sp.coo_matrix) -> np.ndarray:
    if m.nnz == 0:
        raise DataError(f"{path}: the split is empty")
    if not np.issubdtype(m.dtype, np.number):
        raise DataError(f"{path}: expected a numeric matrix, got dtype {m.dtype}")
    data = np.asarray(m.data, dtype=np.float64)
    if not np.isfinite(data).all() or (data <= 0).any():
        raise DataError(f"{path}: interaction values must be positive and finite (implicit feedback)")
    pairs = np.stack([m.row, m.col], axis=1).astype(np.int64)
    if len(np.unique(pairs, axis=0)) != len(pairs):
        raise DataError(f"{path}: holds duplicate (user, item) entries")
    return pairs


def _check_disjoint(frames: list[np.ndarray], names: tuple[str, ...], src: Path) -> None:
    """No (user, item) pair may sit in two splits."""
    pairs = np.concatenate(frames)  # compared as rows: a user * width + item key wraps in int64 near 2**32 ids
    owner = np.concatenate([np.full(len(p), k) for k, p in enumerate(frames)])
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    if (counts > 1).any():
        u, i = (int(v) for v in uniq[counts > 1][0])
        where = np.flatnonzero((pairs[:, 0] == u) & (pairs[:, 1] == i))
        raise DataError(f"{src / names[owner[where[1]]]}: pair (user {u}, item {i}) is also in {names[owner[where[0]]]}")


def prepare_diffmm(src: Path, out: Path, overwrite: bool = False) -> dict:
    """DiffMM's release; without feature files (an interactions-only release) the dataset is
    written with ``is_multimodal_model: False``, as for ML-1M."""
    src, out = Path(src), Path(out)
    check_output(out, overwrite, source=src)
    matrices = [load_sparse_pickle(src / name) for name in DIFFMM_SPLITS]
    shapes = {m.shape for m in matrices}
    if len(shapes) != 1:
        raise DataError(f"{src}: the split matrices disagree on shape: "
                        + ", ".join(f"{n} {m.shape}" for n, m in zip(DIFFMM_SPLITS, matrices)))
    n_users, n_items = shapes.pop()
    if max(n_users, n_items) > MAX_IDS:  # a model would size its tables by them
        raise DataError(f"{src}: the split matrices are {n_users} x {n_items}; more than {MAX_IDS:,} users or items "
                        "cannot be indexed")
    pairs = [_pairs_from_matrix(src / n, m) for n, m in zip(DIFFMM_SPLITS, matrices)]
    _check_disjoint(pairs, DIFFMM_SPLITS, src)
    features = {}
    for name, target in DIFFMM_FEATURES.items():
        if (src / name).is_file():
            features[target] = load_feature_file(str(src / name), n_items)
    inter = _frame(pairs)
    _check_full_range(inter, n_users, n_items, src)
    return write_dataset(out, inter, features, overwrite, source=f"DiffMM release at {src.resolve()}")


def _frame(pairs: list[np.ndarray]) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"userID": p[:, 0], "itemID": p[:, 1], "x_label": label})
                      for label, p in enumerate(pairs)], ignore_index=True)


def _check_full_range(inter: pd.DataFrame, n_users: int, n_items: int, src: Path) -> None:
    """MMRec sizes the model by the largest id, so the last user and item must occur."""
    if inter["userID"].max() != n_users - 1 or inter["itemID"].max() != n_items - 1:
        raise DataError(f"{src}: the matrices are {n_users} x {n_items} but the largest ids seen are "
                        f"user {inter['userID'].max()} and item {inter['itemID'].max()}; MMRec would "
                        "size the model wrongly")


def _load_pairs(path: Path) -> np.ndarray:
    arr = load_npy(path)
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise DataError(f"{path}: not a .npy array (an .npz archive?)")
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: expected an integer array of shape (n, 2), got shape {arr.shape} dtype {arr.dtype}")
    if len(arr) == 0:
        raise DataError(f"{path}: the split is empty")
    if (arr < 0).any():
        raise DataError(f"{path}: holds negative ids")
    if len(np.unique(arr, axis=0)) != len(arr):
        raise DataError(f"{path}: holds duplicate (user, item) pairs")
    return arr.astype(np.int64)


def prepare_diffrec(src: Path, out: Path, overwrite: bool = False) -> dict:
    src, out = Path(src), Path(out)
    check_output(out, overwrite, source=src)
    pairs = [_load_pairs(src / name) for name in DIFFREC_SPLITS]
    _check_disjoint(pairs, DIFFREC_SPLITS, src)
    inter = _frame(pairs)
    for col in ("userID", "itemID"):
        n_distinct, top = inter[col].nunique(), int(inter[col].max())
        if top + 1 != n_distinct:
            raise DataError(f"{src}: {col.replace('ID', '')} ids are not 0..n-1 ({n_distinct} distinct, largest {top})")
    return write_dataset(out, inter, {}, overwrite, source=f"DiffRec release at {src.resolve()}")
