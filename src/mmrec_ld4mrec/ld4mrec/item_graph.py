"""A frozen item-item graph (an open choice of LD4MRec, off in the paper's reading): each
item's top-k cosine neighbours per modality, after the item graphs of LATTICE and FREEDOM (here
without self-loops), degree-normalised and averaged over the modalities.

    S^m[i, j] = 1 if j is among the k items most cosine-similar to i in modality m (j != i)
    S = mean_m D_r^-1/2 S^m D_c^-1/2

``item_graph_source`` picks what the neighbours are drawn from: the modality features
(``content``), the items' columns of the training matrix (``interactions``: items bought by
the same users, the item-kNN neighbourhood), or the mean of the two graphs (``both``).

C-Net uses it to give an item the weights of its neighbours (``cnet.ItemGraph``): an item seen
in few training rows borrows from items that look and sound like it, or that its few users'
other items resemble.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import torch

from .signals import fingerprint, matrix_fingerprint, normalized_adjacency

_CACHE: OrderedDict[tuple, sp.csr_matrix] = OrderedDict()
_CACHE_SIZE = 4


def knn_adjacency(features: np.ndarray | sp.spmatrix, k: int, chunk: int = 2048) -> sp.csr_matrix:
    """Binary ``[|I|, |I|]`` matrix: row i marks the ``k`` items of highest cosine similarity to
    item i, i itself excluded. ``features`` has one row per item, dense or scipy sparse (the
    transposed training matrix). Items with an all-zero row get no neighbours and are nobody's
    neighbour; with sparse rows, items of similarity 0 (no shared user) are no neighbours
    either. Similarities are computed ``chunk`` rows at a time, so memory stays at ``chunk`` x
    |I|. Cosine ignores each row's scale: pass the raw features."""
    n = features.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"item_graph_k: expected 1 <= k < |I| = {n}, got {k}")
    if sp.issparse(features):
        f_sp = sp.csr_matrix(features, dtype=np.float32)
        norm_np = np.sqrt(np.asarray(f_sp.multiply(f_sp).sum(axis=1), dtype=np.float32).ravel())
        f_sp = sp.diags(np.where(norm_np > 0, 1.0 / np.maximum(norm_np, 1e-12), 0.0).astype(np.float32)) @ f_sp
        f_sp_t = sp.csr_matrix(f_sp.T)
        norm = torch.from_numpy(norm_np).unsqueeze(1)

        def similarities(start: int, stop: int) -> torch.Tensor:
            return torch.from_numpy(np.asarray((f_sp[start:stop] @ f_sp_t).todense(), dtype=np.float32))
    else:
        f = torch.from_numpy(np.asarray(features, dtype=np.float32))
        norm = f.norm(dim=1, keepdim=True)
        f = torch.where(norm > 0, f / norm.clamp_min(1e-12), torch.zeros_like(f))

        def similarities(start: int, stop: int) -> torch.Tensor:
            return f[start:stop] @ f.T
    empty_t = norm.squeeze(1) == 0
    empty = empty_t.numpy()
    rows, cols, sims = [], [], []
    for start in range(0, n, chunk):
        sim = similarities(start, min(start + chunk, n))
        idx = torch.arange(start, min(start + chunk, n))
        sim[idx - start, idx] = -np.inf  # no self-loop
        sim[:, empty_t] = -np.inf  # an item without features is nobody's neighbour
        top = sim.topk(k, dim=1)
        rows.append(np.repeat(idx.numpy(), k))
        cols.append(top.indices.numpy().ravel())
        sims.append(top.values.numpy().ravel())
    rows, cols, sims = np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)
    keep = ~empty[rows] & ~empty[cols]
    if sp.issparse(features):
        # interaction columns are non-negative: similarity 0 means no shared user, not a neighbour
        keep &= sims > 0
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


def interaction_item_graph(train_matrix: sp.spmatrix, k: int) -> sp.csr_matrix:
    """S from interactions: the degree-normalised kNN graph of the items' columns of the
    ``[|U|, |I|]`` training matrix (cosine over the users who hold them), memoised like
    :func:`content_item_graph`. Only training interactions enter it."""
    X = sp.csr_matrix(train_matrix)
    key = ("interactions", matrix_fingerprint(X), k)
    return _memoised(key, lambda: sp.csr_matrix(normalized_adjacency(knn_adjacency(X.T, k))))


def build_item_graph(source: str, features: list[np.ndarray], train_matrix: sp.spmatrix, k: int) -> sp.csr_matrix:
    """S for ``item_graph_source``: ``content``, ``interactions``, or ``both`` (the mean of the
    two graphs, so content and interactions weigh alike whatever the number of modalities)."""
    if source == "content":
        return content_item_graph(features, k)
    if source == "interactions":
        return interaction_item_graph(train_matrix, k)
    if source == "both":
        return sp.csr_matrix((content_item_graph(features, k) + interaction_item_graph(train_matrix, k)) / 2)
    raise ValueError(f"item_graph_source: expected content, interactions or both, got {source!r}")


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
