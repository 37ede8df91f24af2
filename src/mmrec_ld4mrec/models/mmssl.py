"""MMSSL (Wei et al., WWW 2023): multi-modal self-supervised learning for recommendation, a
graph recommender whose modality-aware user-item graphs come from an adversarially trained
generator, with cross-modal contrastive learning.

With R the training matrix, R_U = D_U^-1/2 R and R_I = D_I^-1/2 R^T (rows scaled), for
every modality m (any number; MMRec's text and vision slots, then ``extra_feature_files``):

* content: F_m = dropout(W_m x_m) per item; user side U_m = R_U F_m, item side I_m = R_I U_m.
* generator: a user's modality-aware interaction row is U_m[u] I_m^T with the training
  items zeroed, L2-normalised over the items (the "fake" rows). From the second epoch on,
  each epoch starts by rebuilding G_m from each user's top ``m_topk_rate`` * |I| unseen
  items by these scores (the first epoch uses G_m = R).
* modality ID embeddings: G_m's rows scaled, users G_m E_I, items G_m^T E_U; multi-head
  attention across the modalities (``head_num`` heads, softmax over modalities, values the
  embeddings themselves, heads concatenated and projected), averaged over modalities.
* e^0 = E + id_cat_rate * normalize(attention); ``n_layers`` alternating propagation
  u^l = R_U i^{l-1}, i^l = R_I u^l, the last layer soft-maxed over the embedding dimension
  (as the authors' code does); the mean of layers 0..L, plus model_cat_rate * sum_m
  normalize(U_m) (users) or normalize(I_m) (items).
* adversarial structure learning (WGAN-GP): the "real" rows are a Gumbel-softmax of the
  user's training row at temperature ``real_data_tau`` plus ui_pre_scale * the model's own
  (detached, training items zeroed, L2-normalised) scores, L2-normalised. Per batch the
  discriminator (an MLP |I| -> |I|/4 -> |I|/8 -> 1, batch norm, dropout, 100 * sigmoid) takes
  one Adam step (``d_learning_rate``, betas 0.5/0.9) on -D(real) + D(fake) + gp_weight * GP;
  then the model's loss gets G_rate * -D(fake).
* loss: BPR + reg_weight * |e_u, e_i+, e_i-|^2 / 2B (final embeddings) + feat_reg_decay *
  sum_m (|U_m|^2 + |I_m|^2) / 2|I| + cl_rate * InfoNCE(temperature) between each modality's
  user ID embedding and the final user embedding over the batch's users + the G term.

Choices where the authors' code and paper differ (docs/baselines.md#mmssl): attention keys use
their own projection; the discriminator's activation is LeakyReLU(0.2); the Gumbel softmax
divides the whole logit by its temperature; graphs are rebuilt once an epoch over all users.
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
from .graph import info_nce, row_scaled, sparse_mm
from .keys import GetView, real_list_key, triple_trained_keys
from .modalities import item_modalities, require_modalities
from .optimizer_state import optimizer_misfit
from .rows import DeviceRows


class Discriminator(nn.Module):
    """Scores a user's interaction row: |I| -> |I|/4 -> |I|/8 -> 1, 100 * sigmoid."""

    def __init__(self, n_items: int, dropouts: tuple[float, float]):
        super().__init__()
        h1, h2 = max(1, n_items // 4), max(1, n_items // 8)
        self.net = nn.Sequential(
            nn.Linear(n_items, h1), nn.LeakyReLU(0.2), nn.BatchNorm1d(h1), nn.Dropout(dropouts[0]),
            nn.Linear(h1, h2), nn.LeakyReLU(0.2), nn.BatchNorm1d(h2), nn.Dropout(dropouts[1]),
            nn.Linear(h2, 1))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return 100.0 * torch.sigmoid(self.net(rows)).squeeze(-1)


class ModalityAttention(nn.Module):
    """Multi-head attention across modalities: queries and keys projected, values the
    modality embeddings; the heads' outputs concatenated and projected back to d."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"MMSSL: embedding_size ({dim}) must be divisible by head_num ({heads})")
        self.heads = heads
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(heads * dim, dim, bias=False)
        for layer in (self.query, self.key, self.out):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [N, M, d] -> [N, d] (the attended modalities, averaged)."""
        n, m, d = x.shape
        q = self.query(x).view(n, m, self.heads, d // self.heads).transpose(1, 2)  # [N, h, M, dk]
        k = self.key(x).view(n, m, self.heads, d // self.heads).transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)  # [N, h, M, M]
        heads = weights @ x.unsqueeze(1)  # [N, h, M, d]
        return self.out(heads.permute(0, 2, 1, 3).reshape(n, m, self.heads * d)).mean(dim=1)


def mmssl_keys(config) -> dict:
    """MMSSL's keys, each checked: the model's attributes by name, and the layer sizes."""
    real, integer = triple_trained_keys("MMSSL", config)
    keys = {
        "dim": integer("embedding_size", 64, low=1),
        "n_layers": integer("n_layers", 2, low=0),
        "model_cat_rate": real("model_cat_rate", 0.55, low=0),
        "id_cat_rate": real("id_cat_rate", 0.36, low=0),
        "reg_weight": real("reg_weight", 1e-5, low=0),
        "feat_reg_decay": real("feat_reg_decay", 1e-5, low=0),
        "cl_rate": real("cl_rate", 0.03, low=0),
        "temperature": real("temperature", 0.5, low=0, low_open=True),
        "g_rate": real("G_rate", 0.0018, low=0),
        "gp_weight": real("gp_weight", 0.3, low=0),
        "real_data_tau": real("real_data_tau", 0.002, low=0, low_open=True),
        "ui_pre_scale": real("ui_pre_scale", 100.0, low=0),
        "log_log_scale": real("log_log_scale", 1e-5, low=0),
        "d_lr": real("d_learning_rate", 3e-4, low=0, low_open=True),
        "topk_rate": real("m_topk_rate", 0.01, low=0, high=1, low_open=True),
        "heads": integer("head_num", 4, low=1),
        "drop": real("drop_rate", 0.2, low=0, high=1, high_open=True),
        "d_drops": real_list_key("MMSSL", config, "d_dropout", [0.31, 0.5], 2, 0.0, 1.0),
    }
    if keys["dim"] % keys["heads"]:
        raise ConfigError(f"MMSSL: embedding_size ({keys['dim']}) must be divisible by head_num ({keys['heads']})")
    return keys


class MMSSL(general_recommender_base()):
    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """MMSSL's keys, checked before any data is read."""
        mmssl_keys(GetView(get))

    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        k = mmssl_keys(config)
        self.n_layers = k["n_layers"]
        self.model_cat_rate = k["model_cat_rate"]
        self.id_cat_rate = k["id_cat_rate"]
        self.reg_weight = k["reg_weight"]
        self.feat_reg_decay = k["feat_reg_decay"]
        self.cl_rate = k["cl_rate"]
        self.temperature = k["temperature"]
        self.g_rate = k["g_rate"]
        self.gp_weight = k["gp_weight"]
        self.real_data_tau = k["real_data_tau"]
        self.ui_pre_scale = k["ui_pre_scale"]
        self.log_log_scale = k["log_log_scale"]
        self.d_lr = k["d_lr"]
        dim, topk_rate, heads, drop, d_drops = (k[n] for n in ("dim", "topk_rate", "heads", "drop", "d_drops"))
        self.graph_topk = max(1, int(self.n_items * topk_rate))

        features = item_modalities(self, config, list(config_get(config, "extra_feature_files", []) or []))
        require_modalities(features, "MMSSL", config)
        self.n_modalities = len(features)
        X = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        self.rows = DeviceRows(X, self.device)
        self.register_buffer("user_items", row_scaled(X, self.device), persistent=False)    # R_U
        self.register_buffer("item_users", row_scaled(X.T, self.device), persistent=False)  # R_I
        # G_m as each user's top items (buffers, so a checkpoint or the best epoch's state brings
        # back the graphs its embeddings were trained on); G_m = R until the first rebuild
        self.register_buffer("graph_items", torch.zeros(self.n_modalities, self.n_users, self.graph_topk,
                                                        dtype=torch.long))
        self.register_buffer("graph_built", torch.zeros((), dtype=torch.bool))
        self._graphs: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._epochs_started = 0
        for m, f in enumerate(features):
            self.register_buffer(f"feature_{m}", torch.from_numpy(np.asarray(f, dtype=np.float32)), persistent=False)
        self.feature_maps = nn.ModuleList(nn.Linear(f.shape[1], dim) for f in features)
        for layer in self.feature_maps:
            nn.init.xavier_uniform_(layer.weight)
        self.feature_dropout = nn.Dropout(drop)
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, dim)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, dim)))
        self.user_attention = ModalityAttention(dim, heads)
        self.item_attention = ModalityAttention(dim, heads)
        self.discriminator = Discriminator(self.n_items, (d_drops[0], d_drops[1]))
        self._d_optimizer: torch.optim.Optimizer | None = None
        self.to(self.device)

    # ---- content and generator ----------------------------------------------------------
    def modality_content(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(U_m [U, d], I_m [I, d]) per modality."""
        out = []
        for m, proj in enumerate(self.feature_maps):
            items = self.feature_dropout(proj(getattr(self, f"feature_{m}")))
            users = sparse_mm(self.user_items, items)
            out.append((users, sparse_mm(self.item_users, users)))
        return out

    def generated_rows(self, users: torch.Tensor, content, seen: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Each modality's "fake" interaction rows of ``users``: U_m[u] I_m^T, training items
        zeroed, L2-normalised over the items (``seen``: the users' dense training rows, if at hand)."""
        if seen is None:
            seen = self.rows.dense(users)
        return [F.normalize((u[users] @ i.T) * (1.0 - seen), dim=1) for u, i in content]

    @torch.no_grad()
    def rebuild_graphs(self, batch: int = 2048) -> None:
        """G_m: every user's top ``graph_topk`` unseen items by the generator's scores."""
        was_training = self.training
        self.eval()
        content = self.modality_content()
        for m, (user_content, item_content) in enumerate(content):
            for start in range(0, self.n_users, batch):
                users = torch.arange(start, min(start + batch, self.n_users), device=self.device)
                seen = self.rows.dense(users)
                scores = (user_content[users] @ item_content.T).masked_fill(seen > 0, float("-inf"))
                self.graph_items[m, start:start + len(users)] = torch.topk(scores, self.graph_topk, dim=1).indices
        self.graph_built.fill_(True)
        self._graphs = None
        self.train(was_training)

    @property
    def modal_graphs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(G_m rows scaled [U, I], G_m^T rows scaled [I, U]) per modality."""
        if not bool(self.graph_built):
            return [(self.user_items, self.item_users)] * self.n_modalities
        if self._graphs is None:
            users = np.repeat(np.arange(self.n_users), self.graph_topk)
            self._graphs = []
            for m in range(self.n_modalities):
                items = self.graph_items[m].reshape(-1).cpu().numpy()
                G = sp.csr_matrix((np.ones(len(items), dtype=np.float32), (users, items)),
                                  shape=(self.n_users, self.n_items))
                self._graphs.append((row_scaled(G, self.device), row_scaled(G.T, self.device)))
        return self._graphs

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        items = state_dict.get(prefix + "graph_items")
        if items is not None and items.numel() and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"graph_items: expected item ids within 0..{self.n_items - 1}")
        self._graphs = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pre_epoch_processing(self) -> None:
        """The first epoch trains on G_m = R (as the authors' code starts); each later one
        first rebuilds G_m from the generator trained so far."""
        if self._epochs_started:
            self.rebuild_graphs()
        self._epochs_started += 1

    # ---- recommender --------------------------------------------------------------------
    def embeddings(self, content) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(final users [U, d], final items [I, d], each modality's user ID embedding [U, d])."""
        user_ids = [sparse_mm(g_u, self.item_embedding) for g_u, _ in self.modal_graphs]
        item_ids = [sparse_mm(g_i, self.user_embedding) for _, g_i in self.modal_graphs]
        u = self.user_embedding + self.id_cat_rate * F.normalize(self.user_attention(torch.stack(user_ids, 1)), dim=1)
        i = self.item_embedding + self.id_cat_rate * F.normalize(self.item_attention(torch.stack(item_ids, 1)), dim=1)
        users, items = [u], [i]
        for layer in range(self.n_layers):
            u = sparse_mm(self.user_items, i)
            i = sparse_mm(self.item_users, u)
            if layer == self.n_layers - 1:
                u, i = torch.softmax(u, dim=-1), torch.softmax(i, dim=-1)
            users.append(u)
            items.append(i)
        u, i = torch.stack(users).mean(0), torch.stack(items).mean(0)
        for cu, ci in content:
            u = u + self.model_cat_rate * F.normalize(cu, dim=1)
            i = i + self.model_cat_rate * F.normalize(ci, dim=1)
        return u, i, user_ids

    def real_rows(self, users: torch.Tensor, user_final: torch.Tensor, item_final: torch.Tensor,
                  seen: torch.Tensor) -> torch.Tensor:
        """The discriminator's "real" rows: Gumbel-softmax of the training row ``seen`` plus the
        model's own scores (detached, training items zeroed), L2-normalised."""
        with torch.no_grad():
            scores = F.normalize((user_final[users] @ item_final.T) * (1.0 - seen), dim=1)
        gumbel = -torch.log(-torch.log(torch.rand_like(seen).clamp(1e-10, 1 - 1e-7)))
        real = torch.softmax((seen + self.log_log_scale * gumbel) / self.real_data_tau, dim=1)
        return F.normalize(real + self.ui_pre_scale * scores, dim=1)

    def discriminator_optimizer(self) -> torch.optim.Optimizer:
        """The discriminator's own Adam (made on first use)."""
        if self._d_optimizer is None:
            self._d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr, betas=(0.5, 0.9))
        return self._d_optimizer

    def training_state(self) -> dict:
        """Training state beyond the weights, for a snapshot (``engine.snapshot``): the epochs
        started (the first trains on G_m = R) and the discriminator's optimizer."""
        return {"epochs_started": self._epochs_started, "discriminator_optimizer": self.discriminator_optimizer().state_dict()}

    def training_state_problem(self, state) -> str | None:
        """Why ``state`` cannot be loaded (checked before any snapshot is put back)."""
        if not isinstance(state, dict) or isinstance(state.get("epochs_started"), bool) or \
                not isinstance(state.get("epochs_started"), int) or state["epochs_started"] < 0:
            return "holds no count of epochs started"
        problem = optimizer_misfit(state.get("discriminator_optimizer"), self.discriminator_optimizer())
        return f"(the discriminator's optimizer) {problem}" if problem else None

    def load_training_state(self, state: dict) -> None:
        self._epochs_started = int(state["epochs_started"])
        self.discriminator_optimizer().load_state_dict(state["discriminator_optimizer"])

    def discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        """One WGAN-GP step of the discriminator on detached rows (its own Adam)."""
        self.discriminator_optimizer().zero_grad()
        alpha = torch.rand(len(real), 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(self.discriminator(mixed).sum(), mixed, create_graph=True)
        penalty = ((grad.norm(2, dim=1) - 1.0) ** 2).mean()
        loss = -self.discriminator(real).mean() + self.discriminator(fake).mean() + self.gp_weight * penalty
        loss.backward()
        self.discriminator_optimizer().step()
        self.discriminator_optimizer().zero_grad(set_to_none=True)  # MMRec's optimizer then leaves D alone

    def calculate_loss(self, interaction: torch.Tensor) -> torch.Tensor:
        users, pos, neg = interaction[0], interaction[1], interaction[2]
        content = self.modality_content()
        u, i, user_ids = self.embeddings(content)
        distinct = torch.unique(users)
        generator = u.new_zeros(())
        if len(distinct) * self.n_modalities >= 2:  # the discriminator's batch norm needs two rows
            seen = self.rows.dense(distinct)
            fake = torch.cat(self.generated_rows(distinct, content, seen))
            real = self.real_rows(distinct, u, i, seen).repeat(self.n_modalities, 1)
            self.discriminator_step(real.detach(), fake.detach())
            self.discriminator.requires_grad_(False)
            try:
                generator = -self.discriminator(fake).mean()
            finally:
                self.discriminator.requires_grad_(True)

        eu, ep, en = u[users], i[pos], i[neg]
        bpr = -F.logsigmoid((eu * ep).sum(1) - (eu * en).sum(1)).mean()
        reg = (eu.pow(2).sum() + ep.pow(2).sum() + en.pow(2).sum()) / (2 * len(users))
        feat_reg = sum(cu.pow(2).sum() + ci.pow(2).sum() for cu, ci in content) / (2 * self.n_items)
        cl = sum(info_nce(ids[distinct], u[distinct], self.temperature) for ids in user_ids)
        return (bpr + self.reg_weight * reg + self.feat_reg_decay * feat_reg + self.cl_rate * cl
                + self.g_rate * generator)

    @torch.no_grad()
    def full_sort_predict(self, interaction: list[torch.Tensor]) -> torch.Tensor:
        u, i, _ = self.embeddings(self.modality_content())
        return u[interaction[0]] @ i.T
