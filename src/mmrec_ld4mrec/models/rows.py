"""Helpers the user-row models share: batch user ids and their training rows."""

from __future__ import annotations

import scipy.sparse as sp
import torch


def batch_users(interaction) -> torch.Tensor:
    """User ids of a batch: MMRec's full sampling gives a 1-D tensor, other loaders ``[users, ...]``."""
    return interaction if torch.is_tensor(interaction) and interaction.dim() == 1 else interaction[0]


def dense_rows(matrix: sp.csr_matrix, users: torch.Tensor, device) -> torch.Tensor:
    """The training rows of ``users`` as a dense float tensor [B, |I|]."""
    return torch.from_numpy(matrix[users.cpu().numpy()].toarray()).to(device)
