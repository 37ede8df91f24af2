"""DiffMM (Jiang et al., ACM MM 2024): a diffusion model per modality generates a
modality-aware user-item graph, which a graph recommender propagates ID and content
embeddings over, with cross-modal contrastive learning.

Each epoch, in this order (as the authors' release does it):

1. **Denoisers** (``pre_epoch_processing``): one pass over all users, shuffled, in batches of
   ``denoiser_batch_size``. Per modality m a DiffRec-style MLP denoiser predicts x_0 from the
   corrupted interaction row x_t (uniform step t); its loss is the SNR-reweighted x_0 MSE plus
   ``e_loss`` times the modality-aware signal injection (MSI) term
   mean_d ((x̂_0 F_m)_d - (x_0 E_I)_d)^2, with F_m the item features of m after its linear map
   and E_I the item ID embeddings, both detached: MSI trains the denoiser only. Each denoiser
   has its own Adam (``denoiser_learning_rate``).
2. **Graph rebuild**: every user's clean row runs the T reverse steps; the ``rebuild_k`` top
   items become edges of the modality graph A_m = D^-1/2 (B_m + I) D^-1/2, whose stored entries
   are then kept with probability ``keep_rate`` (scaled by 1 / keep_rate) for the whole epoch.
3. **Recommender** (``calculate_loss``, MMRec's (user, positive, negative) batches):
   with A the normalised user-item graph with self-loops, X = [E_U; E_I] and f_m = F_m
   L2-normalised per item,
   P_m = A [E_U; f_m],  Q_m = A [P_m^users; E_I],  H_m = P_m + Q_m + ris_adj_lambda A_m X,
   M = sum_m softmax(w)_m H_m,  G = M + sum_{l=1..L} A^l M,
   final = G + ris_lambda * normalize(M).
   Loss = BPR (summed, divided by train_batch_size) + reg_weight (|E_U|^2 + |E_I|^2)
   + ssl_reg * InfoNCE (temperature) between views: ``cl_method`` 1 pairs the final
   embeddings with each modality view Z_m = C_m + sum_l A^l C_m, C_m = A_m [E_U; f_m]
   (users of the batch, and its positive items, against all users / items); 0 pairs the
   modality views with each other.

Any number of modalities (MMRec's text and vision slots, then ``extra_feature_files``).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..ld4mrec.diffusion import NoiseSchedule
from ..mmrec.host import config_get, general_recommender_base
from .diffrec import DiffRecDenoiser, reverse_chain, snr_step_weight
from .graph import info_nce_all, sparse_mm, symmetric_spmm
from .modalities import item_modalities, require_modalities
from .rows import DeviceRows


def normalized_graph(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int,
                     keep_rate: float = 1.0) -> torch.Tensor:
    """D^-1/2 (B + I) D^-1/2 of the bipartite graph B with edges (users[k], items[k]), as a
    coalesced COO tensor; with ``keep_rate`` < 1 every stored entry (either direction of an
    edge, and the self-loops) is kept with that probability and scaled by 1 / keep_rate."""
    n = n_users + n_items
    device = users.device
    loops = torch.arange(n, device=device)
    rows = torch.cat([users, items + n_users, loops])
    cols = torch.cat([items + n_users, users, loops])
    degree = torch.bincount(rows, minlength=n).float()
    values = degree[rows].rsqrt() * degree[cols].rsqrt()
    if keep_rate < 1.0:
        kept = torch.rand(values.numel(), device=device) < keep_rate
        rows, cols, values = rows[kept], cols[kept], values[kept] / keep_rate
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n, n), check_invariants=False).coalesce()


class DiffMM(general_recommender_base()):
    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        get = lambda key, default: config_get(config, key, default)  # noqa: E731
        if bool(get("use_full_sampling", False)):
            raise ConfigError("DiffMM trains on (user, positive, negative) triples: set use_full_sampling: False")
        dim = int(get("embedding_size", 64))
        self.n_layers = int(get("n_layers", 1))
        self.reg_weight = float(get("reg_weight", 1e-4))
        self.ssl_reg = float(get("ssl_reg", 0.01))
        self.temperature = float(get("temperature", 0.5))
        self.ris_lambda = float(get("ris_lambda", 0.5))
        self.ris_adj_lambda = float(get("ris_adj_lambda", 0.2))
        self.e_loss = float(get("e_loss", 0.1))
        self.keep_rate = float(get("keep_rate", 0.5))
        self.rebuild_k = int(get("rebuild_k", 1))
        self.cl_method = int(get("cl_method", 1))
        self.bpr_divisor = int(get("train_batch_size", 1024))
        self.denoiser_batch_size = int(get("denoiser_batch_size", 1024))
        self.denoiser_lr = float(get("denoiser_learning_rate", 0.001))
        self.steps = int(get("steps", 5))
        dims = list(get("dims", [1000]))
        problems = []
        if dim < 1 or self.n_layers < 0:
            problems.append(f"embedding_size >= 1 and n_layers >= 0 (got {dim}, {self.n_layers})")
        if self.temperature <= 0:
            problems.append(f"temperature > 0 (got {self.temperature})")
        if not 0.0 < self.keep_rate <= 1.0:
            problems.append(f"keep_rate in (0, 1] (got {self.keep_rate})")
        if not 1 <= self.rebuild_k <= self.n_items:
            problems.append(f"rebuild_k in 1..{self.n_items} (got {self.rebuild_k})")
        if self.cl_method not in (0, 1):
            problems.append(f"cl_method 0 (modality pairs) or 1 (final vs each modality) (got {self.cl_method})")
        if self.steps < 2:
            problems.append(f"steps >= 2 (got {self.steps})")
        if not dims or any(not isinstance(d, int) or d < 1 for d in dims):
            problems.append(f"dims a list of positive integers (got {dims!r})")
        if self.denoiser_batch_size < 1 or self.denoiser_lr <= 0:
            problems.append("denoiser_batch_size >= 1 and denoiser_learning_rate > 0 "
                            f"(got {self.denoiser_batch_size}, {self.denoiser_lr})")
        if problems:
            raise ConfigError("DiffMM: expected " + "; ".join(problems))

        features = item_modalities(self, config, list(get("extra_feature_files", []) or []))
        require_modalities(features, "DiffMM", config)
        if self.cl_method == 0 and len(features) < 2:
            raise ConfigError("DiffMM: cl_method 0 contrasts modalities with each other and needs two or more")
        self.n_modalities = len(features)
        X = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        self.rows = DeviceRows(X, self.device)
        coo = X.tocoo()
        self.adjacency = normalized_graph(torch.from_numpy(coo.row.astype(np.int64)),
                                          torch.from_numpy(coo.col.astype(np.int64)),
                                          self.n_users, self.n_items).to(self.device)
        for m, f in enumerate(features):
            self.register_buffer(f"feature_{m}", torch.from_numpy(np.asarray(f, dtype=np.float32)), persistent=False)
        self.feature_maps = nn.ModuleList(nn.Linear(f.shape[1], dim) for f in features)
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, dim)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, dim)))
        self.modal_weight = nn.Parameter(torch.full((self.n_modalities,), 1.0 / self.n_modalities))
        try:
            self.schedule = NoiseSchedule(self.steps, float(get("noise_scale", 0.1)), float(get("noise_min", 1e-4)),
                                          float(get("noise_max", 0.02)))
        except ValueError as exc:
            raise ConfigError(f"DiffMM schedule: {exc}") from None
        self.denoisers = nn.ModuleList(
            DiffRecDenoiser(self.n_items, dims, int(get("step_emb_size", 10)), bool(get("norm", False)),
                            float(get("dropout", 0.5)))
            for _ in features)
        self.modal_graphs: list[torch.Tensor] | None = None
        self._denoiser_optimizers: list[torch.optim.Optimizer] | None = None
        self.to(self.device)

    # ---- 1. denoisers ----------------------------------------------------------------------
    def modality_features(self) -> list[torch.Tensor]:
        """F_m: each modality's item features after its linear map."""
        return [proj(getattr(self, f"feature_{m}")) for m, proj in enumerate(self.feature_maps)]

    def denoiser_loss(self, users: torch.Tensor, features: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """Sum over modalities of the reweighted x_0 MSE plus e_loss * MSI for ``users``' rows
        (``features`` and ``items`` are detached targets)."""
        x0, _, _ = self.rows.dense(users)
        target = x0 @ items
        total = x0.new_zeros(())
        for denoiser, f in zip(self.denoisers, features):
            t = torch.randint(1, self.steps + 1, (len(users),), device=self.device)
            x0_pred = denoiser(self.schedule.q_sample(x0, t), t - 1)
            mse = ((x0_pred - x0) ** 2).mean(dim=1) * snr_step_weight(self.schedule, t)
            msi = ((x0_pred @ f - target) ** 2).mean(dim=1)
            total = total + mse.mean() + self.e_loss * msi.mean()
        return total

    def train_denoisers(self) -> float:
        """One pass over all users (shuffled); returns the summed loss."""
        if self._denoiser_optimizers is None:
            self._denoiser_optimizers = [torch.optim.Adam(d.parameters(), lr=self.denoiser_lr) for d in self.denoisers]
        self.denoisers.train()
        with torch.no_grad():
            features = [f.detach() for f in self.modality_features()]
            items = self.item_embedding.detach()
        order = torch.randperm(self.n_users, device=self.device)
        total = 0.0
        for start in range(0, self.n_users, self.denoiser_batch_size):
            for opt in self._denoiser_optimizers:
                opt.zero_grad()
            loss = self.denoiser_loss(order[start:start + self.denoiser_batch_size], features, items)
            loss.backward()
            for opt in self._denoiser_optimizers:
                opt.step()
            total += float(loss.detach())
        for opt in self._denoiser_optimizers:
            opt.zero_grad(set_to_none=True)  # MMRec's optimizer then leaves the denoisers alone
        return total

    # ---- 2. graph rebuild ------------------------------------------------------------------
    @torch.no_grad()
    def rebuild_graphs(self) -> None:
        """A_m from each denoiser's reverse chain over every user's clean row: top rebuild_k
        items per user, self-loops, symmetric normalisation, then edge dropout."""
        self.denoisers.eval()
        users = torch.arange(self.n_users, device=self.device)
        graphs = []
        for denoiser in self.denoisers:
            tops = []
            for start in range(0, self.n_users, self.denoiser_batch_size):
                x0, _, _ = self.rows.dense(users[start:start + self.denoiser_batch_size])
                tops.append(torch.topk(reverse_chain(denoiser, self.schedule, x0), self.rebuild_k, dim=1).indices)
            items = torch.cat(tops).reshape(-1)
            graphs.append(normalized_graph(users.repeat_interleave(self.rebuild_k), items, self.n_users, self.n_items,
                                           self.keep_rate))
        self.modal_graphs = graphs

    def pre_epoch_processing(self):
        loss = self.train_denoisers()
        self.rebuild_graphs()
        return loss

    # ---- 3. recommender --------------------------------------------------------------------
    def _propagate(self, x: torch.Tensor) -> torch.Tensor:
        """x + sum_{l=1..L} A^l x."""
        out, layer = x, x
        for _ in range(self.n_layers):
            layer = symmetric_spmm(self.adjacency, layer)
            out = out + layer
        return out

    def forward(self, with_views: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(final [U+I, d], the modality views Z_m [U+I, d] when ``with_views``)."""
        if self.modal_graphs is None:
            self.rebuild_graphs()
        ids = torch.cat([self.user_embedding, self.item_embedding])
        weights = torch.softmax(self.modal_weight, dim=0)
        fused, views = 0, []
        for m, feat in enumerate(self.modality_features()):
            content = torch.cat([self.user_embedding, F.normalize(feat, dim=1)])
            p = symmetric_spmm(self.adjacency, content)
            q = symmetric_spmm(self.adjacency, torch.cat([p[: self.n_users], self.item_embedding]))
            fused = fused + weights[m] * (p + q + self.ris_adj_lambda * sparse_mm(self.modal_graphs[m], ids))
            if with_views:
                views.append(self._propagate(sparse_mm(self.modal_graphs[m], content)))
        final = self._propagate(fused) + self.ris_lambda * F.normalize(fused, dim=1)
        return final, views

    def contrastive_loss(self, final: torch.Tensor, views: list[torch.Tensor], users: torch.Tensor,
                         items: torch.Tensor) -> torch.Tensor:
        n = self.n_users
        pairs = [(final, v) for v in views] if self.cl_method == 1 else list(combinations(views, 2))
        loss = final.new_zeros(())
        for a, b in pairs:
            loss = loss + info_nce_all(a[:n], b[:n], users, self.temperature) \
                + info_nce_all(a[n:], b[n:], items, self.temperature)
        return loss

    def calculate_loss(self, interaction) -> torch.Tensor:
        users, pos, neg = interaction[0], interaction[1], interaction[2]
        final, views = self.forward()
        u, items = final[: self.n_users], final[self.n_users:]
        scores = (u[users] * (items[pos] - items[neg])).sum(1)
        bpr = -F.logsigmoid(scores).sum() / self.bpr_divisor
        reg = self.user_embedding.pow(2).sum() + self.item_embedding.pow(2).sum()
        cl = self.contrastive_loss(final, views, users, pos)
        return bpr + self.reg_weight * reg + self.ssl_reg * cl

    @torch.no_grad()
    def full_sort_predict(self, interaction) -> torch.Tensor:
        final, _ = self.forward(with_views=False)
        return final[interaction[0]] @ final[self.n_users:].T
