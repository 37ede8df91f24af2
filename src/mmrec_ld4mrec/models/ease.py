"""EASE (Steck, WWW 2019): the closed-form item-item model.

B = argmin ||X - X B||^2 + lambda ||B||^2 subject to diag(B) = 0, which is
B = I - P diag(1 / diag(P)) with P = (X^T X + lambda I)^-1. Scores are X_u B. The L2
strength ``reg_weight`` is grid-searched on validation like any MMRec hyper-parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..errors import ConfigError
from .base import config_get, general_recommender_base
from .rows import DeviceRows


def ease_weights(X: sp.spmatrix, reg: float) -> np.ndarray:
    gram = np.asarray((X.T @ X).todense(), dtype=np.float64)
    gram[np.diag_indices_from(gram)] += reg
    P = np.linalg.inv(gram)
    B = -P / np.diag(P)[None, :]
    B[np.diag_indices_from(B)] = 0.0
    return B.astype(np.float32)


class EASE(general_recommender_base()):
    needs_training = False

    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        self.check_settings(lambda key: config_get(config, key))
        reg = config_get(config, "reg_weight", 250.0)
        self.train_matrix = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        self.rows = DeviceRows(self.train_matrix, self.device)
        self.register_buffer("item_weights", torch.from_numpy(ease_weights(self.train_matrix, float(reg))))
        self.unused = nn.Parameter(torch.zeros(1))  # MMRec's trainer steps an optimizer
        self.to(self.device)

    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """``reg_weight`` (lambda) is a positive number; checked before any data is read."""
        reg = get("reg_weight")
        reg = 250.0 if reg is None else reg
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg > 0:
            raise ConfigError(f"config key 'reg_weight': expected a positive number, got {reg!r}", key="reg_weight")

    def calculate_loss(self, interaction):
        return self.unused.sum() * 0.0

    @torch.no_grad()
    def full_sort_predict(self, interaction) -> torch.Tensor:
        return self.rows.dense(interaction[0]) @ self.item_weights
