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

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..ld4mrec.diffusion import NoiseSchedule, check_schedule
from .base import config_get, general_recommender_base
from .diffrec import DiffRecDenoiser, reverse_chain, snr_step_weight
from .graph import info_nce_all, sparse_mm, symmetric_spmm
from .keys import GetView, bool_key, int_list_key, triple_trained_keys
from .modalities import item_modalities, require_modalities
from .optimizer_state import optimizer_misfit
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


def diffmm_keys(config, n_items: int | None = None) -> dict:
    """DiffMM's keys, each checked (``rebuild_k`` against ``n_items`` once the data is known),
    and its noise schedule: the model's attributes by name, and the layer sizes."""
    real, integer = triple_trained_keys("DiffMM", config)
    keys = {
        "dim": integer("embedding_size", 64, low=1),
        "n_layers": integer("n_layers", 1, low=0),
        "reg_weight": real("reg_weight", 1e-4, low=0),
        "ssl_reg": real("ssl_reg", 0.01, low=0),
        "temperature": real("temperature", 0.5, low=0, low_open=True),
        "ris_lambda": real("ris_lambda", 0.5, low=0),
        "ris_adj_lambda": real("ris_adj_lambda", 0.2, low=0),
        "e_loss": real("e_loss", 0.1, low=0),
        "keep_rate": real("keep_rate", 0.5, low=0, high=1, low_open=True),
        "rebuild_k": integer("rebuild_k", 1, low=1, high=n_items),
        "cl_method": integer("cl_method", 1, low=0, high=1),
        "bpr_divisor": integer("train_batch_size", 1024, low=1),
        "denoiser_batch_size": integer("denoiser_batch_size", 1024, low=1),
        "denoiser_lr": real("denoiser_learning_rate", 0.001, low=0, low_open=True),
        "steps": integer("steps", 5, low=2),
        "dims": int_list_key("DiffMM", config, "dims", [1000]),
        "step_emb_size": integer("step_emb_size", 10, low=1),
        "dropout": real("dropout", 0.5, low=0, high=1, high_open=True),
        "norm": bool_key("DiffMM", config, "norm", False),
        "noise": [real(k, d, low=0) for k, d in (("noise_scale", 0.1), ("noise_min", 1e-4), ("noise_max", 0.02))],
    }
    try:
        check_schedule(keys["steps"], *keys["noise"])
    except ValueError as exc:
        raise ConfigError(f"DiffMM schedule (noise_scale, noise_min, noise_max): {exc}") from None
    return keys


class DiffMM(general_recommender_base()):
    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """DiffMM's keys, checked before any data is read."""
        diffmm_keys(GetView(get))

    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        k = diffmm_keys(config, self.n_items)
        self.n_layers = k["n_layers"]
        self.reg_weight = k["reg_weight"]
        self.ssl_reg = k["ssl_reg"]
        self.temperature = k["temperature"]
        self.ris_lambda = k["ris_lambda"]
        self.ris_adj_lambda = k["ris_adj_lambda"]
        self.e_loss = k["e_loss"]
        self.keep_rate = k["keep_rate"]
        self.rebuild_k = k["rebuild_k"]
        self.cl_method = k["cl_method"]
        self.bpr_divisor = k["bpr_divisor"]
        self.denoiser_batch_size = k["denoiser_batch_size"]
        self.denoiser_lr = k["denoiser_lr"]
        self.steps = k["steps"]
        dim, dims, step_emb_size, dropout, norm, noise = (k[n] for n in ("dim", "dims", "step_emb_size", "dropout",
                                                                         "norm", "noise"))

        features = item_modalities(self, config, list(config_get(config, "extra_feature_files", []) or []))
        require_modalities(features, "DiffMM", config)
        if self.cl_method == 0 and len(features) < 2:
            raise ConfigError("DiffMM: cl_method 0 contrasts modalities with each other and needs two or more")
        self.n_modalities = len(features)
        X = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        self.rows = DeviceRows(X, self.device)
        coo = X.tocoo()
        self.register_buffer("adjacency", normalized_graph(torch.from_numpy(coo.row.astype(np.int64)),
                                                           torch.from_numpy(coo.col.astype(np.int64)),
                                                           self.n_users, self.n_items), persistent=False)
        for m, f in enumerate(features):
            self.register_buffer(f"feature_{m}", torch.from_numpy(np.asarray(f, dtype=np.float32)), persistent=False)
        self.feature_maps = nn.ModuleList(nn.Linear(f.shape[1], dim) for f in features)
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_users, dim)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(self.n_items, dim)))
        self.modal_weight = nn.Parameter(torch.full((self.n_modalities,), 1.0 / self.n_modalities))
        self.schedule = NoiseSchedule(self.steps, *noise).to(self.device)
        self.denoisers = nn.ModuleList(DiffRecDenoiser(self.n_items, dims, step_emb_size, norm, dropout)
                                       for _ in features)
        # the generated graphs as buffers (entries kept by the epoch's edge dropout), so that a
        # checkpoint or the best epoch's state brings back the graphs its embeddings were trained on
        for m in range(self.n_modalities):
            self.register_buffer(f"graph_index_{m}", torch.zeros(2, 0, dtype=torch.long))
            self.register_buffer(f"graph_value_{m}", torch.zeros(0))
        self._graphs: list[torch.Tensor] | None = None
        self._denoiser_optimizers: list[torch.optim.Optimizer] | None = None
        self.to(self.device)

    # ---- 1. denoisers ----------------------------------------------------------------------
    def modality_features(self) -> list[torch.Tensor]:
        """F_m: each modality's item features after its linear map."""
        return [proj(getattr(self, f"feature_{m}")) for m, proj in enumerate(self.feature_maps)]

    def denoiser_loss(self, users: torch.Tensor, features: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """Sum over modalities of the reweighted x_0 MSE plus e_loss * MSI for ``users``' rows
        (``features`` and ``items`` are detached targets)."""
        x0 = self.rows.dense(users)
        target = x0 @ items
        total = x0.new_zeros(())
        for denoiser, f in zip(self.denoisers, features):
            t = torch.randint(1, self.steps + 1, (len(users),), device=self.device)
            x0_pred = denoiser(self.schedule.q_sample(x0, t), t - 1)
            mse = ((x0_pred - x0) ** 2).mean(dim=1) * snr_step_weight(self.schedule, t)
            msi = ((x0_pred @ f - target) ** 2).mean(dim=1)
            total = total + mse.mean() + self.e_loss * msi.mean()
        return total

    def denoiser_optimizers(self) -> list[torch.optim.Optimizer]:
        """The denoisers' own Adam optimizers (made on first use)."""
        if self._denoiser_optimizers is None:
            self._denoiser_optimizers = [torch.optim.Adam(d.parameters(), lr=self.denoiser_lr) for d in self.denoisers]
        return self._denoiser_optimizers

    def training_state(self) -> dict:
        """Training state beyond the weights, for a snapshot (``engine.snapshot``): the denoisers' optimizers."""
        return {"denoiser_optimizers": [opt.state_dict() for opt in self.denoiser_optimizers()]}

    def training_state_problem(self, state) -> str | None:
        """Why ``state`` cannot be loaded (checked before any snapshot is put back)."""
        saved = state.get("denoiser_optimizers") if isinstance(state, dict) else None
        if not isinstance(saved, list) or len(saved) != len(self.denoiser_optimizers()):
            return "does not hold one optimizer state per denoiser"
        for i, (opt, one) in enumerate(zip(self.denoiser_optimizers(), saved)):
            problem = optimizer_misfit(one, opt)
            if problem:
                return f"(denoiser {i}'s optimizer) {problem}"
        return None

    def load_training_state(self, state: dict) -> None:
        for opt, saved in zip(self.denoiser_optimizers(), state["denoiser_optimizers"], strict=True):
            opt.load_state_dict(saved)

    def train_denoisers(self) -> float:
        """One pass over all users (shuffled); returns the summed loss."""
        self.denoiser_optimizers()
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
        tops: list[list[torch.Tensor]] = [[] for _ in self.denoisers]
        for start in range(0, self.n_users, self.denoiser_batch_size):
            x0 = self.rows.dense(users[start:start + self.denoiser_batch_size])  # once for all modalities
            for m, denoiser in enumerate(self.denoisers):
                tops[m].append(torch.topk(reverse_chain(denoiser, self.schedule, x0), self.rebuild_k, dim=1).indices)
        for m in range(self.n_modalities):
            items = torch.cat(tops[m]).reshape(-1)
            graph = normalized_graph(users.repeat_interleave(self.rebuild_k), items, self.n_users, self.n_items,
                                     self.keep_rate)
            setattr(self, f"graph_index_{m}", graph.indices())
            setattr(self, f"graph_value_{m}", graph.values())
        self._graphs = None

    @property
    def modal_graphs(self) -> list[torch.Tensor]:
        """A_m as sparse tensors, from the buffers (rebuilt first if never built)."""
        if self.graph_index_0.shape[1] == 0:
            self.rebuild_graphs()
        if self._graphs is None:
            n = self.n_users + self.n_items
            self._graphs = [torch.sparse_coo_tensor(getattr(self, f"graph_index_{m}"), getattr(self, f"graph_value_{m}"),
                                                    (n, n), is_coalesced=True, check_invariants=False)
                            for m in range(self.n_modalities)]
        return self._graphs

    @property
    def resizable_state_keys(self) -> tuple[str, ...]:
        """State entries whose size varies (the edge dropout's kept entries)."""
        return tuple(f"graph_{kind}_{m}" for m in range(self.n_modalities) for kind in ("index", "value"))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the graphs' sizes vary with the edge dropout: take the incoming ones, checked, since
        # the sparse tensors are later built without torch's invariant checks
        n = self.n_users + self.n_items
        for m in range(self.n_modalities):
            index, value = state_dict.get(f"{prefix}graph_index_{m}"), state_dict.get(f"{prefix}graph_value_{m}")
            if index is None or value is None:
                continue
            if (index.dim() != 2 or index.shape[0] != 2 or value.dim() != 1 or value.shape[0] != index.shape[1]
                    or index.dtype != torch.long or (index.numel() and (index.min() < 0 or index.max() >= n))
                    or not torch.isfinite(value).all()):
                raise ValueError(f"graph_index_{m} / graph_value_{m}: expected a [2, nnz] index within "
                                 f"0..{n - 1} and nnz finite values")
            setattr(self, f"graph_index_{m}", torch.empty_like(index, device=self.device))
            setattr(self, f"graph_value_{m}", torch.empty_like(value, device=self.device))
        self._graphs = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pre_epoch_processing(self) -> float:
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
        graphs = self.modal_graphs
        ids = torch.cat([self.user_embedding, self.item_embedding])
        weights = torch.softmax(self.modal_weight, dim=0)
        fused, views = 0, []
        for m, feat in enumerate(self.modality_features()):
            content = torch.cat([self.user_embedding, F.normalize(feat, dim=1)])
            p = symmetric_spmm(self.adjacency, content)
            q = symmetric_spmm(self.adjacency, torch.cat([p[: self.n_users], self.item_embedding]))
            fused = fused + weights[m] * (p + q + self.ris_adj_lambda * sparse_mm(graphs[m], ids))
            if with_views:
                views.append(self._propagate(sparse_mm(graphs[m], content)))
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

    def calculate_loss(self, interaction: torch.Tensor) -> torch.Tensor:
        users, pos, neg = interaction[0], interaction[1], interaction[2]
        final, views = self.forward()
        u, items = final[: self.n_users], final[self.n_users:]
        scores = (u[users] * (items[pos] - items[neg])).sum(1)
        bpr = -F.logsigmoid(scores).sum() / self.bpr_divisor
        reg = self.user_embedding.pow(2).sum() + self.item_embedding.pow(2).sum()
        cl = self.contrastive_loss(final, views, users, pos)
        return bpr + self.reg_weight * reg + self.ssl_reg * cl

    @torch.no_grad()
    def full_sort_predict(self, interaction: list[torch.Tensor]) -> torch.Tensor:
        final, _ = self.forward(with_views=False)
        return final[interaction[0]] @ final[self.n_users:].T
