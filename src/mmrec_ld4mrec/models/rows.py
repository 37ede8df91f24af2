"""Helpers the user-row models share: batch user ids and their training rows.

:class:`DeviceRows` keeps the training matrix on the model's device once, in CSR form, so a
batch's rows are gathered there with tensor operations: no host round trip and no Python
loop over users per batch.

Two gathers: :meth:`DeviceRows.batch` returns the batch's own CSR (its length depends on the
data, so on a GPU the host waits to learn it), :meth:`DeviceRows.padded` every row padded to
the longest training row with a mask (shapes fixed by the batch size alone: no host wait, and
a training step built on it can be captured as a CUDA graph). :class:`CompactBatches` and
:class:`PaddedBatches` wrap the two as the :class:`RowBatch` a training step reads, so the
model is given one of them and never branches on the device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from ..ld4mrec.soft_target import soft_reconstruction_target, soft_reconstruction_target_padded


def batch_users(interaction) -> torch.Tensor:
    """User ids of a batch: MMRec's full sampling gives a 1-D tensor, other loaders ``[users, ...]``."""
    return interaction if torch.is_tensor(interaction) and interaction.dim() == 1 else interaction[0]


class DeviceRows:
    """A binary user x item matrix held on ``device`` as CSR (``indptr``, sorted ``indices``)."""

    def __init__(self, matrix: sp.spmatrix, device):
        csr = sp.csr_matrix(matrix, dtype=np.float32)
        csr.sum_duplicates()
        csr.sort_indices()
        self.shape = csr.shape
        self.device = torch.device(device)
        self.indptr = torch.from_numpy(csr.indptr.astype(np.int64)).to(self.device)
        self.indices = torch.from_numpy(csr.indices.astype(np.int64)).to(self.device)
        # The longest training row (at least 1, so an empty matrix still pads to one slot).
        self.max_row = max(int(np.diff(csr.indptr).max(initial=0)), 1)

    def batch(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CSR of the rows of ``users``: (indptr [B+1], column indices, row of each entry)."""
        users = users.to(self.device)
        starts = self.indptr[users]
        counts = self.indptr[users + 1] - starts
        indptr = torch.zeros(len(users) + 1, dtype=torch.long, device=self.device)
        torch.cumsum(counts, 0, out=indptr[1:])
        rows = torch.repeat_interleave(torch.arange(len(users), device=self.device), counts)
        position = torch.arange(rows.numel(), device=self.device) - indptr[rows] + starts[rows]
        return indptr, self.indices[position], rows

    def padded(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's training items padded to the longest row: (column indices [B, L], mask
        [B, L] of real entries). A padding slot holds some stored column (the next users' or
        the last one) and is masked out."""
        users = users.to(self.device)
        starts = self.indptr[users]
        slot = torch.arange(self.max_row, device=self.device)
        valid = slot < (self.indptr[users + 1] - starts).unsqueeze(1)
        position = (starts.unsqueeze(1) + slot).clamp(max=max(self.indices.numel() - 1, 0))
        cols = self.indices[position] if self.indices.numel() else torch.zeros_like(position)
        return cols, valid

    def scatter_padded(self, cols: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """A dense [B, |I|] matrix holding ``values`` ([B, L], zero on padding) at ``cols``.
        Added, not assigned: a padding slot (value 0) may share its column with a real entry."""
        x = torch.zeros(cols.shape[0], self.shape[1], device=self.device, dtype=values.dtype)
        return x.scatter_add_(1, cols, values)

    def dense(self, users: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """Dense rows [B, |I|] of ``users`` (static shapes: :meth:`padded`); ``normalized``
        scales each row to unit L2 norm."""
        cols, valid = self.padded(users)
        return self.scatter_padded(cols, self.padded_values(valid, normalized))

    @staticmethod
    def padded_values(valid: torch.Tensor, normalized: bool) -> torch.Tensor:
        """Values of padded rows: 1 on real entries (1 / sqrt(row length) when ``normalized``), 0 on padding."""
        values = valid.float()
        return values * values.sum(dim=1, keepdim=True).clamp(min=1).rsqrt() if normalized else values

    def sparse(self, users: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """The rows of ``users`` as a sparse COO tensor [B, |I|] (coalesced: rows and columns sorted)."""
        indptr, cols, rows = self.batch(users)
        values = self.values(indptr, rows, normalized)
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (len(users), self.shape[1]),
                                       is_coalesced=True, check_invariants=False)

    def scatter(self, n_rows: int, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """A dense [n_rows, |I|] matrix holding ``values`` at (``rows``, ``cols``), zeros elsewhere."""
        x = torch.zeros(n_rows, self.shape[1], device=self.device, dtype=values.dtype)
        x[rows, cols] = values
        return x

    @staticmethod
    def values(indptr: torch.Tensor, rows: torch.Tensor, normalized: bool) -> torch.Tensor:
        """The entries' values: 1, or 1 / sqrt(row length) so that each row has unit L2 norm."""
        if not normalized:
            return torch.ones(rows.numel(), device=rows.device)
        counts = (indptr[1:] - indptr[:-1]).clamp(min=1).float()
        return counts.rsqrt()[rows]


@dataclass(frozen=True)
class RowBatch:
    """A batch's observed rows x_u, as the training step of a user-row model reads them.

    ``binary`` is x_u dense [B, |I|]; ``values`` the value of each observed entry (1, or the
    row's 1 / sqrt(|N_u|) under ``input_norm: l2``) in the batch's own sparse layout;
    :meth:`dense` scatters entry values (``values`` after dropout, say) into dense rows;
    :meth:`soft_target` draws Eq. 6-7's target from the same layout."""

    binary: torch.Tensor
    values: torch.Tensor
    dense: Callable[[torch.Tensor], torch.Tensor]
    soft_target: Callable[[float, float], torch.Tensor]


class CompactBatches:
    """Each batch in its own CSR (a CPU's choice: the fewest entries drawn). Its sizes depend
    on the data, so on a GPU the host would wait to learn them."""

    static = False  # shapes known only after the gather

    def __init__(self, rows: DeviceRows):
        self.rows = rows

    def draw(self, users: torch.Tensor, normalized: bool) -> RowBatch:
        indptr, cols, rows = self.rows.batch(users)
        scatter = functools.partial(self.rows.scatter, len(users), rows, cols)
        binary = scatter(torch.ones(len(cols), device=cols.device))
        return RowBatch(binary, self.rows.values(indptr, rows, normalized), scatter,
                        lambda p, gamma: soft_reconstruction_target(binary, indptr, cols, p, gamma))


class PaddedBatches:
    """Every row padded to the longest training row: shapes fixed by the batch size alone (a
    GPU's choice), so no step waits on the host and the trainer can capture it as a CUDA graph.
    The same distributions as :class:`CompactBatches` (a coin per slot and per item)."""

    static = True

    def __init__(self, rows: DeviceRows):
        self.rows = rows

    def draw(self, users: torch.Tensor, normalized: bool) -> RowBatch:
        cols, valid = self.rows.padded(users)
        scatter = functools.partial(self.rows.scatter_padded, cols)
        binary = scatter(valid.float())
        return RowBatch(binary, self.rows.padded_values(valid, normalized), scatter,
                        lambda p, gamma: soft_reconstruction_target_padded(binary, cols, valid, p, gamma))


def row_batches(rows: DeviceRows, static: bool = True) -> CompactBatches | PaddedBatches:
    """Padded batches on a GPU (where ``static``), compact ones elsewhere."""
    return PaddedBatches(rows) if static and rows.device.type == "cuda" else CompactBatches(rows)
