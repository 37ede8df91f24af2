"""Graph pieces the graph models share (SimGCL, MMSSL, DiffMM): the normalised user-item
graph, a sparse product with a cheap backward for symmetric graphs, and InfoNCE."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from ..ld4mrec.signals import normalized_adjacency


def bipartite_adjacency(X: sp.spmatrix, self_loops: bool = False) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of the user-item graph A = [[0, X], [X^T, 0]] (plus I when
    ``self_loops``), as a torch CSR tensor (half the time of COO in the propagation's sparse
    products on CPU)."""
    n_users, n_items = X.shape
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)  # binarised below: never the caller's
    X.data[:] = 1.0
    A = sp.bmat([[None, X], [X.T, None]], format="csr", dtype=np.float32)
    if self_loops:
        A = A + sp.identity(n_users + n_items, dtype=np.float32, format="csr")
    A = normalized_adjacency(A).tocoo()
    index = torch.from_numpy(np.vstack([A.row, A.col]).astype(np.int64))
    coo = torch.sparse_coo_tensor(index, torch.from_numpy(A.data.astype(np.float32)), A.shape,
                                  check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def row_scaled(X: sp.spmatrix, device) -> torch.Tensor:
    """D^-1/2 X (each row divided by the square root of its length; empty rows stay zero) as a
    coalesced torch COO tensor on ``device``."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)  # binarised below: never the caller's
    X.data[:] = 1.0
    degree = np.asarray(X.sum(axis=1)).ravel()
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    coo = sp.coo_matrix(sp.diags(scale) @ X)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data.astype(np.float32)), coo.shape,
                                   check_invariants=False).coalesce().to(device)


def sparse_mm(sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``sparse @ dense`` in float32 even under bfloat16 autocast (torch's sparse kernels and
    their backward want one dtype; the product is cheap next to the dense ones)."""
    with torch.autocast(device_type=dense.device.type, enabled=False):
        return torch.sparse.mm(sparse, dense.float())


class _SymmetricSpMM(torch.autograd.Function):
    """A @ E for a symmetric sparse A; the backward reuses A (= A^T), which on CPU is about
    three times faster than torch's generic sparse backward."""

    @staticmethod
    def forward(ctx, adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.adjacency = adjacency
        return torch.sparse.mm(adjacency, dense)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, torch.sparse.mm(ctx.adjacency, grad.float())


def symmetric_spmm(adjacency: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=dense.device.type, enabled=False):
        return _SymmetricSpMM.apply(adjacency, dense.float())


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with in-batch negatives: row i of ``view1`` against every row of ``view2``,
    row i of ``view2`` the positive; cosine similarity over ``temperature``."""
    v1, v2 = F.normalize(view1, dim=1), F.normalize(view2, dim=1)
    logits = v1 @ v2.T / temperature
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


def info_nce_all(anchors: torch.Tensor, candidates: torch.Tensor, index: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of ``anchors[index]`` against every row of ``candidates`` (the same row the
    positive): cosine similarity over ``temperature``, averaged over ``index``.

    Written as a cross-entropy over the candidates with the temperature folded into the
    anchors: the same value, without dividing the |index| x |candidates| logits."""
    a = F.normalize(anchors[index], dim=1) / temperature
    c = F.normalize(candidates, dim=1)
    return F.cross_entropy(a @ c.T, index)
