"""A frozen item-item graph (an open choice of LD4MRec, off in the paper's reading): each
item's top-k cosine neighbours per modality, after the item graphs of LATTICE and FREEDOM (here
without self-loops), degree-normalised and averaged over the modalities.

    S^m[i, j] = 1 if j is among the k items most cosine-similar to i in modality m (j != i)
    S = mean_m D_r^-1/2 S^m D_c^-1/2

C-Net uses it to give an item the weights of its neighbours (``cnet.ItemGraph``): an item seen
in few training rows borrows from items that look and sound like it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import torch

from .signals import fingerprint, normalized_adjacency

_CACHE: OrderedDict[tuple, sp.csr_matrix] = OrderedDict()
_CACHE_SIZE = 4


def knn_adjacency(features: np.ndarray, k: int, chunk: int = 2048) -> sp.csr_matrix:
    """Binary ``[|I|, |I|]`` matrix: row i marks the ``k`` items of highest cosine similarity to
    item i, i itself excluded. ``features`` has one row per item. Items with an all-zero row get
    no neighbours and are nobody's neighbour. Similarities are computed ``chunk`` rows at a time,
    so memory stays at ``chunk`` x |I|. Cosine ignores each row's scale: pass the raw features."""
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"item_graph_k: expected 1 <= k < |I| = {n}, got {k}")
    f = torch.from_numpy(np.asarray(features, dtype=np.float32))
    norm = f.norm(dim=1, keepdim=True)
    f = torch.where(norm > 0, f / norm.clamp_min(1e-12), torch.zeros_like(f))
    empty_t = norm.squeeze(1) == 0
    empty = empty_t.numpy()
    rows, cols = [], []
    for start in range(0, n, chunk):
        sim = f[start:min(start + chunk, n)] @ f.T
        idx = torch.arange(start, min(start + chunk, n))
        sim[idx - start, idx] = -np.inf  # no self-loop
        sim[:, empty_t] = -np.inf  # an item without features is nobody's neighbour
        rows.append(np.repeat(idx.numpy(), k))
        cols.append(sim.topk(k, dim=1).indices.numpy().ravel())
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    keep = ~empty[rows] & ~empty[cols]
    data = np.ones(int(keep.sum()), dtype=np.float64)
    return sp.csr_matrix((data, (rows[keep], cols[keep])), shape=(n, n))


def content_item_graph(features: list[np.ndarray], k: int) -> sp.csr_matrix:
    """S from content: the mean over modalities of the degree-normalised kNN graphs (module
    docstring), memoised by the features' content and k (a study's trials build it once)."""
    if not features:
        raise ValueError("item_graph_k > 0 needs item features (a multimodal dataset)")
    key = ("content", tuple(fingerprint(np.ascontiguousarray(f)) for f in features), k)

    def build() -> sp.csr_matrix:
        graphs = [normalized_adjacency(knn_adjacency(f, k)) for f in features]
        return sp.csr_matrix(sum(graphs) / len(graphs))
    return _memoised(key, build)


def _memoised(key: tuple, build) -> sp.csr_matrix:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    graph = build()
    _CACHE[key] = graph
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return graph


def to_torch_sparse(S: sp.csr_matrix, device) -> torch.Tensor:
    """``S`` as a float32 torch sparse COO tensor on ``device`` (coalesced)."""
    coo = S.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=False).coalesce().to(device)
