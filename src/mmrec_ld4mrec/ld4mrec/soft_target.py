"""Soft-reconstruction target of LD4MRec (Eq. 6-7).

From the observed row x_u draw S1 (clicked items, each kept with probability p) and S0
(unclicked items, each with probability p); then the target is 1 - gamma on S1, gamma on
S0 and x_u elsewhere. S0 is drawn exactly without a dense random matrix: a binomial count
per user, then that many distinct uniform positions among the user's unclicked items.
Everything runs on the device of its inputs: no host round trip per batch.

:func:`soft_reconstruction_target_padded` draws the same distribution with shapes fixed by
the batch alone (an independent coin per clicked slot and per item), which a GPU runs without
waiting on the host and which a CUDA graph can capture.
"""

from __future__ import annotations

import torch


def _distinct_uniform_ranks(
    counts: torch.Tensor, population: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For row r draw ``counts[r]`` distinct integers uniform in [0, population[r]).

    Colliding draws are redrawn until all are distinct; the procedure is symmetric in the
    population's members, so every subset of the requested size is equally likely.
    Returns (row index, rank) pairs.
    """
    device = counts.device
    rows = torch.repeat_interleave(torch.arange(counts.shape[0], device=device), counts)
    pop = population[rows]
    ranks = (torch.rand(rows.shape[0], generator=generator, dtype=torch.float64, device=device) * pop).long()
    ranks = torch.minimum(ranks, pop - 1)
    while rows.numel():
        key = rows * (int(population.max()) + 1) + ranks
        sorted_key, order = torch.sort(key)
        dup = torch.zeros_like(key, dtype=torch.bool)
        dup[order[1:]] = sorted_key[1:] == sorted_key[:-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            break
        redraw = (torch.rand(n_dup, generator=generator, dtype=torch.float64, device=device) * pop[dup]).long()
        ranks[dup] = torch.minimum(redraw, pop[dup] - 1)
    return rows, ranks


def sample_unclicked(
    indptr: torch.Tensor, indices: torch.Tensor, n_items: int, prob: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """S0 of Eq. 6 for a batch given in CSR form (sorted column indices per row).

    Returns (row, item) pairs of unclicked items, each chosen independently with ``prob``.
    """
    n_clicked = indptr[1:] - indptr[:-1]
    n_unclicked = n_items - n_clicked
    counts = torch.binomial(n_unclicked.double(), torch.full_like(n_unclicked, prob, dtype=torch.float64),
                            generator=generator).long()
    rows, ranks = _distinct_uniform_ranks(counts, n_unclicked.clamp(min=1), generator)
    rows, ranks = rows[counts[rows] > 0], ranks[counts[rows] > 0]
    # The j-th unclicked item of a row is j + #{clicked c_k : c_k - k <= j}, where c_k is the
    # k-th clicked item (0-based, sorted); c_k - k counts the unclicked items before c_k.
    device = indices.device
    within = torch.arange(indices.shape[0], device=device) - torch.repeat_interleave(indptr[:-1], n_clicked)
    row_of_click = torch.repeat_interleave(torch.arange(n_clicked.shape[0], device=device), n_clicked)
    shifted_key = row_of_click * (n_items + 1) + (indices - within)
    query = rows * (n_items + 1) + ranks
    below = torch.searchsorted(shifted_key, query, right=True) - indptr[rows]
    return rows, ranks + below


def soft_reconstruction_target(
    x: torch.Tensor, indptr: torch.Tensor, indices: torch.Tensor, prob: float, smooth: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Eq. 7: dense target rows ``x~`` for the binary rows ``x`` ([B, |I|], dense).

    ``indptr``/``indices`` describe the same rows in CSR form (sorted indices).
    """
    target = x.clone()
    if prob <= 0:
        return target
    clicked_rows = torch.repeat_interleave(torch.arange(indptr.shape[0] - 1, device=x.device), indptr[1:] - indptr[:-1])
    keep = torch.rand(indices.shape[0], generator=generator, device=x.device) < prob
    target[clicked_rows[keep], indices[keep]] = 1.0 - smooth
    rows, items = sample_unclicked(indptr, indices, x.shape[1], prob, generator)
    target[rows, items] = smooth
    return target


def soft_reconstruction_target_padded(
    x: torch.Tensor, cols: torch.Tensor, valid: torch.Tensor, prob: float, smooth: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Eq. 7 with static shapes: the same distribution as :func:`soft_reconstruction_target`.

    ``x`` is the binary rows [B, |I|]; ``cols``/``valid`` the same rows padded ([B, L], see
    ``DeviceRows.padded``). S1: each clicked item kept with ``prob`` (a coin per real slot);
    S0: each unclicked item with ``prob`` (a coin per item, kept where x is 0)."""
    if prob <= 0:
        return x.clone()
    s1 = (torch.rand(cols.shape, generator=generator, device=x.device) < prob) & valid
    in_s1 = torch.zeros_like(x).scatter_add_(1, cols, s1.to(x.dtype))  # 1 on S1, 0 elsewhere
    target = x - smooth * in_s1  # 1 - gamma on S1
    in_s0 = (torch.rand(x.shape, generator=generator, device=x.device) < prob) & (x == 0)
    return torch.where(in_s0, torch.full_like(x, smooth), target)
