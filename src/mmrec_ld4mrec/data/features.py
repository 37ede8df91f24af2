"""Item-feature files: one ``.npy`` per modality, row i holding item i's features."""

from __future__ import annotations

import os

import numpy as np

from ..errors import DataError


def load_npy(path) -> np.ndarray:
    """``np.load`` of a file that must be numpy's own, never a pickle. numpy reads other bytes,
    and object arrays, as pickles and advises ``allow_pickle``, which is never the fix here:
    those are refused saying what the file is."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not magic.startswith((b"\x93NUMPY", b"PK")):  # a .npy, or an .npz archive (the caller refuses those)
        raise DataError(f"{path}: not a .npy file (it does not start with numpy's header); write it with numpy.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(f"{path}: holds Python objects (an object array), not numbers") from None
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None


def load_feature_file(path: str, n_items: int) -> np.ndarray:
    """Load an item-feature ``.npy`` (row i = item i), refusing anything but a finite 2-D
    array of real numbers with one row per item and at least one column."""
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not a .npy feature file")
    arr = load_npy(path)
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise DataError(f"{path}: not a .npy array (an .npz archive?)")
    real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if arr.ndim != 2 or not real:
        what = " (complex values)" if np.issubdtype(arr.dtype, np.complexfloating) else ""
        raise DataError(f"{path}: expected a 2-D array of real numbers, got shape {arr.shape} dtype {arr.dtype}{what}")
    if arr.shape[0] != n_items:
        raise DataError(f"{path}: has {arr.shape[0]} rows, expected one per item ({n_items})")
    if arr.shape[1] == 0:
        raise DataError(f"{path}: has no columns (shape {arr.shape}); a feature file needs at least one")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: holds NaN or infinite values")
    out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{path}: holds values too large for float32")
    return out


def configured_feature_path(folder: str, key: str, name: str | None) -> str | None:
    """The feature file that config key ``key`` names inside the dataset ``folder``; None when
    the key is empty (no such modality). A name that is configured but absent, or a folder, is
    refused: a multimodal model would otherwise train without that modality, silently."""
    if not name:
        return None
    path = os.path.join(folder, str(name))
    if os.path.isdir(path):
        raise DataError(f"config key '{key}': {path} is a folder, not a .npy feature file")
    if not os.path.isfile(path):
        hint = "leave it out of the list" if key == "extra_feature_files" else f"set {key}: '' in its YAML (or --set {key}=)"
        raise DataError(f"config key '{key}': {path} does not exist; for a dataset without this modality {hint}")
    return path
