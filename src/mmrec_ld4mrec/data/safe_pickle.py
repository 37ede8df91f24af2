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
    return sp.coo_matrix(obj)
