"""Condition signals of LD4MRec, computed once from the training matrix X (Eq. 14-16).

* Collaborative signal (Eq. 14-15): a randomized SVD X ~ U_q S_q V_q^T (Halko et al.,
  ``torch.svd_lowrank``), fused as c_u = [U_q[u] || (D_u^-1/2 X D_i^-1/2 V_q)[u]].
* Modality preference (Eq. 16): p^m_u = sum_{i in N_u} (|N_u| |N_i|)^-1/2 f^m_i.

Both are fixed tensors. :func:`cached_signals` memoises them per (X, features, settings)
so a hyper-parameter grid or repeated model construction does not recompute them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import torch

FEATURE_NORMS = ("none", "l2", "standard")


def normalized_adjacency(X: sp.spmatrix) -> sp.csr_matrix:
    """D_u^-1/2 X D_i^-1/2, zero-degree rows/columns left at zero."""
    X = sp.csr_matrix(X, dtype=np.float64)
    du = np.asarray(X.sum(axis=1)).ravel()
    di = np.asarray(X.sum(axis=0)).ravel()
    inv_u = np.divide(1.0, np.sqrt(du), out=np.zeros_like(du), where=du > 0)
    inv_i = np.divide(1.0, np.sqrt(di), out=np.zeros_like(di), where=di > 0)
    return sp.csr_matrix(sp.diags(inv_u) @ X @ sp.diags(inv_i))


def _to_torch_sparse(X: sp.spmatrix) -> torch.Tensor:
    coo = sp.coo_matrix(X)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data.astype(np.float64)), coo.shape,
                                   check_invariants=False).coalesce()


def _sparse_times_dense(A: sp.spmatrix, dense: np.ndarray, device: str | torch.device) -> np.ndarray:
    """``A @ dense`` in float64: scipy on the CPU, a torch sparse product on a GPU (at full-H&M
    size the GPU takes seconds where scipy's single thread takes minutes)."""
    if torch.device(device).type == "cpu":
        return np.asarray(A @ dense)
    product = _to_torch_sparse(A).to(device) @ torch.from_numpy(np.asarray(dense, dtype=np.float64)).to(device)
    return product.cpu().numpy()


def collaborative_signal(X: sp.spmatrix, rank: int, seed: int = 0, power_iterations: int = 8,
                         oversampling: int = 100, device: str | torch.device = "cpu") -> np.ndarray:
    """Eq. 14-15: ``[|U|, 2q]`` matrix of c_u = [U_q[u] || (D_u^-1/2 X D_i^-1/2 V_q)[u]].

    Eq. 14 asks for the top-q singular vectors. A randomized SVD with exactly q test vectors
    and 4 power iterations misses much of that subspace on rating-like matrices, whose spectra
    are flat past their few strong factors; it draws ``q + oversampling`` test vectors, runs
    ``power_iterations`` and keeps the top q (Halko et al., 2011, Sec. 4; tests/ld4mrec/test_signals.py
    checks the subspace against an exact SVD). It runs on ``device``; its random test matrix
    comes from that device's generator (seeded with ``seed``), so a GPU's signal spans the same
    top-q subspace as the CPU's but is not bit-identical to it."""
    n_users, n_items = X.shape
    if not 1 <= rank <= min(n_users, n_items):
        raise ValueError(f"svd_rank: expected 1 <= q <= min(|U|, |I|) = {min(n_users, n_items)}, got {rank}")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        width = min(rank + oversampling, n_users, n_items)
        u, _, v = torch.svd_lowrank(_to_torch_sparse(X).to(device), q=width, niter=power_iterations)
    u, v = u[:, :rank].cpu().numpy(), v[:, :rank].cpu().numpy()  # singular values come sorted, largest first
    # Singular vectors are defined up to sign; fix it so the signal is reproducible.
    signs = np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(rank)])
    signs[signs == 0] = 1.0
    u, v = u * signs, v * signs
    fused = _sparse_times_dense(normalized_adjacency(X), v, device)
    return np.hstack([u, fused]).astype(np.float32)


def normalize_features(features: np.ndarray, how: str) -> np.ndarray:
    """Feature normalisation applied before Eq. 16 (an open choice: ``feature_norm``)."""
    f = np.asarray(features, dtype=np.float64)
    if how == "none":
        return f
    if how == "l2":
        norm = np.linalg.norm(f, axis=1, keepdims=True)
        return np.divide(f, norm, out=np.zeros_like(f), where=norm > 0)
    if how == "standard":
        std = f.std(axis=0, keepdims=True)
        return np.divide(f - f.mean(axis=0, keepdims=True), std, out=np.zeros_like(f), where=std > 0)
    raise ValueError(f"feature_norm: expected one of {FEATURE_NORMS}, got {how!r}")


def modality_preference_signal(X: sp.spmatrix, features: np.ndarray, feature_norm: str = "l2",
                               device: str | torch.device = "cpu") -> np.ndarray:
    """Eq. 16: ``[|U|, d_m]`` matrix of p^m_u = sum_{i in N_u} (|N_u| |N_i|)^-1/2 f^m_i (the
    product on ``device``)."""
    if features.shape[0] != X.shape[1]:
        raise ValueError(f"features have {features.shape[0]} rows, expected one per item ({X.shape[1]})")
    normalized = normalize_features(features, feature_norm)
    return np.asarray(_sparse_times_dense(normalized_adjacency(X), normalized, device), dtype=np.float32)


def fingerprint(*arrays: np.ndarray) -> str:
    """A short content hash of arrays (shape, dtype and bytes)."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def matrix_fingerprint(X: sp.spmatrix) -> str:
    X = sp.csr_matrix(X)
    X.sort_indices()
    return fingerprint(np.asarray(X.shape), X.indptr, X.indices)


_CACHE: OrderedDict[tuple, tuple[np.ndarray, list[np.ndarray]]] = OrderedDict()
_CACHE_SIZE = 4


def cached_signals(
    X: sp.spmatrix, features: list[np.ndarray], svd_rank: int, feature_norm: str, seed: int = 0,
    device: str | torch.device = "cpu", oversampling: int = 100, power_iterations: int = 8,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Collaborative and modality signals computed on ``device``, memoised by content of X and
    the features (and the device type, whose random stream the SVD draws from)."""
    key = (matrix_fingerprint(X), tuple(fingerprint(f) for f in features), svd_rank, feature_norm, seed,
           torch.device(device).type, oversampling, power_iterations)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = (
        collaborative_signal(X, svd_rank, seed=seed, power_iterations=power_iterations, oversampling=oversampling,
                             device=device),
        [modality_preference_signal(X, f, feature_norm, device=device) for f in features],
    )
    _CACHE[key] = value
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def clear_signal_cache() -> None:
    _CACHE.clear()


def signal_cache_size() -> int:
    return len(_CACHE)
