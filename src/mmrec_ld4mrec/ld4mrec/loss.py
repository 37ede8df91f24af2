"""The per-user denoising loss L_t(u) of Eq. 5, and the multinomial alternative."""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("mse", "multinomial")


def step_loss(x_hat: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """L_t(u) per user.

    ``mse`` is Eq. 5: mean_i (x_hat_ui - x~_ui)^2. ``multinomial`` (an open choice, off in the
    paper's reading) treats x_hat_u as logits over items: -sum_i x~_ui log softmax(x_hat_u)_i,
    the likelihood of Mult-VAE/DAE, which rewards ranking clicked items above the rest.
    """
    if kind == "multinomial":
        return -(target * F.log_softmax(x_hat, dim=1)).sum(dim=1)
    return ((x_hat - target) ** 2).mean(dim=1)
