"""Item-feature files: one ``.npy`` per modality, row i holding item i's features."""

from __future__ import annotations

import numpy as np

from ..errors import DataError


def load_feature_file(path: str, n_items: int) -> np.ndarray:
    """Load an item-feature ``.npy`` (row i = item i), refusing anything but a finite 2-D
    numeric array with one row per item."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected a 2-D numeric array, got shape {arr.shape} dtype {arr.dtype}")
    if arr.shape[0] != n_items:
        raise DataError(f"{path}: has {arr.shape[0]} rows, expected one per item ({n_items})")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: holds NaN or infinite values")
    return arr.astype(np.float32)
