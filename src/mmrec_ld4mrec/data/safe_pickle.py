"""Load foreign pickles (DiffMM's ``trnMat.pkl`` ...) admitting only numpy/scipy array
classes: anything else, e.g. a pickle that would call ``os.system``, is refused."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import DataError

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("scipy.sparse.coo", "coo_matrix"): sp.coo_matrix,
    ("scipy.sparse._coo", "coo_matrix"): sp.coo_matrix,
    ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
    ("scipy.sparse._csr", "csr_matrix"): sp.csr_matrix,
}
_RECONSTRUCT_MODULES = {"numpy.core.multiarray", "numpy._core.multiarray"}


class ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _RECONSTRUCT_MODULES and name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct  # numpy 2's private module: on demand only

            return _reconstruct
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy/scipy arrays are allowed")


def load_sparse_pickle(path: str | Path) -> sp.coo_matrix:
    """A pickled scipy sparse matrix, refused (``DataError`` naming the file) if it is
    anything else, truncated, or would run code."""
    path = Path(path)
    try:
        obj = ArrayOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:  # any unpickling failure is bad input here
        raise DataError(f"{path}: not a pickled scipy sparse matrix ({exc})") from None
    if not sp.issparse(obj):
        raise DataError(f"{path}: expected a scipy sparse matrix, got {type(obj).__name__}")
    _check_arrays(path, obj)
    try:
        return sp.coo_matrix(obj)
    except Exception as exc:  # a matrix whose parts disagree (lengths, bounds) built by hand
        raise DataError(f"{path}: not a well-formed scipy sparse matrix ({exc})") from None


def _check_arrays(path: Path, matrix) -> None:
    """The unpickled parts bypass scipy's own checks: numeric values, integer indices that
    lie inside the shape, one index per value."""
    values = getattr(matrix, "data", None)
    if not isinstance(values, np.ndarray) or values.dtype.kind not in "biuf":
        kind = values.dtype if isinstance(values, np.ndarray) else type(values).__name__
        raise DataError(f"{path}: the matrix's values must be numbers (bool, int or float), got {kind}")
    if not np.isfinite(values.astype(np.float64, copy=False)).all():
        raise DataError(f"{path}: the matrix holds non-finite values (nan or inf)")
    shape = getattr(matrix, "shape", None)
    if not (isinstance(shape, tuple) and len(shape) == 2
            and all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape)):
        raise DataError(f"{path}: the matrix's shape must be two non-negative integers, got {shape!r}")
    if matrix.format == "coo":
        parts = {"row": (matrix.row, shape[0]), "col": (matrix.col, shape[1])}
    else:  # CSR, the only other class the unpickler admits
        parts = {"indices": (matrix.indices, shape[1]), "indptr": (matrix.indptr, values.size + 1)}
    for name, (index, bound) in parts.items():
        if not isinstance(index, np.ndarray) or index.dtype.kind not in "iu":
            kind = index.dtype if isinstance(index, np.ndarray) else type(index).__name__
            raise DataError(f"{path}: the matrix's {name} must be integers, got {kind}")
        if index.size and (index.min() < 0 or index.max() >= bound):
            raise DataError(f"{path}: the matrix's {name} holds {int(index.min())}..{int(index.max())}, "
                            f"outside 0..{bound - 1}")
    if matrix.format == "csr" and (matrix.indptr.size != shape[0] + 1 or matrix.indptr[0] != 0
                                   or matrix.indptr[-1] != values.size or (np.diff(matrix.indptr) < 0).any()):
        raise DataError(f"{path}: the matrix's indptr must rise from 0 to its {values.size} values in "
                        f"{shape[0] + 1} steps")
