"""Pop: rank items by their number of training interactions (a reference floor)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import general_recommender_base


class Pop(general_recommender_base()):
    needs_training = False

    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        X = dataloader.inter_matrix(form="csr")
        counts = np.asarray(X.sum(axis=0)).ravel().astype(np.float32)
        self.register_buffer("popularity", torch.from_numpy(counts).to(self.device))
        # MMRec's trainer steps an optimizer, which needs at least one parameter.
        self.unused = nn.Parameter(torch.zeros(1))

    def calculate_loss(self, interaction):
        return self.unused.sum() * 0.0

    def full_sort_predict(self, interaction):
        users = interaction[0]
        return self.popularity.unsqueeze(0).expand(len(users), -1).clone()
