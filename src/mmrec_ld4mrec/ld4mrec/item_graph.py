"""A frozen item-item graph from item content (an open choice of LD4MRec, off in the paper's
reading): each item's top-k cosine neighbours per modality, as LATTICE and FREEDOM build
their item graphs, symmetric-normalised and averaged over the modalities.

    S^m[i, j] = 1 if j is among the k items most cosine-similar to i in modality m (j != i)
    S = mean_m D_r^-1/2 S^m D_c^-1/2

C-Net uses it to give an item the weights of its content neighbours (``cnet.ItemGraph``): an
item seen in few training rows borrows from items that look and sound like it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .signals import normalized_adjacency


def knn_adjacency(features: np.ndarray, k: int, chunk: int = 2048) -> sp.csr_matrix:
    """Binary ``[|I|, |I|]`` matrix: row i marks the ``k`` items of highest cosine similarity to
    item i, i itself excluded. Rows of all-zero features get no neighbours. Similarities are
    computed ``chunk`` rows at a time, so memory stays at ``chunk`` x |I|."""
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"item_graph_k: expected 1 <= k < |I| = {n}, got {k}")
    f = torch.from_numpy(np.asarray(features, dtype=np.float32))
    norm = f.norm(dim=1, keepdim=True)
    f = torch.where(norm > 0, f / norm.clamp_min(1e-12), torch.zeros_like(f))
    empty = (norm.squeeze(1) == 0).numpy()
    rows, cols = [], []
    for start in range(0, n, chunk):
        sim = f[start:start + chunk] @ f.T
        idx = torch.arange(start, min(start + chunk, n))
        sim[idx - start, idx] = -np.inf  # no self-loop
        top = sim.topk(k, dim=1).indices.numpy()
        rows.append(np.repeat(idx.numpy(), k))
        cols.append(top.ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    keep = ~empty[rows] & ~empty[cols]
    data = np.ones(int(keep.sum()), dtype=np.float64)
    return sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(n, n))


def content_item_graph(features: list[np.ndarray], k: int) -> sp.csr_matrix:
    """S: the mean over modalities of the symmetric-normalised kNN graphs (module docstring)."""
    if not features:
        raise ValueError("item_graph_k > 0 needs item features (a multimodal dataset)")
    graphs = [normalized_adjacency(knn_adjacency(f, k)) for f in features]
    return sp.csr_matrix(sum(graphs) / len(graphs))


def to_torch_csr(S: sp.csr_matrix, device) -> torch.Tensor:
    """``S`` as a float32 torch sparse COO tensor on ``device`` (coalesced)."""
    coo = S.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=False).coalesce().to(device)
