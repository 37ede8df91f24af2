"""SimGCL (Yu et al., SIGIR 2022): LightGCN whose propagated embeddings get small random
perturbations, and an InfoNCE loss between two perturbed views.

Each layer of a perturbed pass adds sign(e) * normalize(U(0, 1)) * eps to every embedding;
the final embedding is the mean of the L propagated layers (layer 0 excluded, as in SimGCL).
Loss = BPR on the unperturbed pass + cl_rate * (InfoNCE over the batch's distinct users +
the same over its distinct items, temperature tau) + reg_weight * L2 of the batch's
layer-0 embeddings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .base import config_get, general_recommender_base
from .graph import bipartite_adjacency, info_nce, symmetric_spmm


class SimGCL(general_recommender_base()):
    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        get = lambda key, default: config_get(config, key, default)  # noqa: E731
        self.n_layers = int(get("n_layers", 2))
        self.eps = float(get("eps", 0.1))
        self.cl_rate = float(get("cl_rate", 0.5))
        self.temperature = float(get("temperature", 0.2))
        self.reg_weight = float(get("reg_weight", 1e-4))
        dim = int(get("embedding_size", 64))
        self.check_settings(lambda key: config_get(config, key))
        X = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        self.register_buffer("adjacency", bipartite_adjacency(X).to(self.device), persistent=False)
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, dim)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, dim)))
        self.to(self.device)

    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """SimGCL's keys, checked before any data is read."""
        value = lambda key, default: default if get(key) is None else get(key)  # noqa: E731
        n_layers, dim = int(value("n_layers", 2)), int(value("embedding_size", 64))
        temperature, eps = float(value("temperature", 0.2)), float(value("eps", 0.1))
        if n_layers < 1 or dim < 1 or temperature <= 0 or eps < 0:
            raise ConfigError("SimGCL: n_layers and embedding_size must be >= 1, temperature > 0, eps >= 0 "
                              f"(got {n_layers}, {dim}, {temperature}, {eps})")
        if bool(value("use_full_sampling", False)):
            raise ConfigError("SimGCL trains on (user, positive, negative) triples: set use_full_sampling: False")

    def propagate(self, perturbed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding, self.item_embedding], dim=0)
        layers = []
        for _ in range(self.n_layers):
            ego = symmetric_spmm(self.adjacency, ego)
            if perturbed:
                ego = ego + torch.sign(ego) * F.normalize(torch.rand_like(ego), dim=-1) * self.eps
            layers.append(ego)
        final = torch.stack(layers, dim=0).mean(dim=0)
        return final[: self.n_users], final[self.n_users:]

    def calculate_loss(self, interaction) -> torch.Tensor:
        users, pos, neg = interaction[0], interaction[1], interaction[2]
        user_all, item_all = self.propagate()
        u, p, n = user_all[users], item_all[pos], item_all[neg]
        bpr = F.softplus(-((u * p).sum(1) - (u * n).sum(1))).mean()
        reg = (self.user_embedding[users].pow(2).sum() + self.item_embedding[pos].pow(2).sum()
               + self.item_embedding[neg].pow(2).sum()) / (2 * len(users))
        u1, i1 = self.propagate(perturbed=True)
        u2, i2 = self.propagate(perturbed=True)
        uu, ii = torch.unique(users), torch.unique(pos)
        cl = info_nce(u1[uu], u2[uu], self.temperature) + info_nce(i1[ii], i2[ii], self.temperature)
        return bpr + self.cl_rate * cl + self.reg_weight * reg

    @torch.no_grad()
    def full_sort_predict(self, interaction) -> torch.Tensor:
        user_all, item_all = self.propagate()
        return user_all[interaction[0]] @ item_all.T
