"""LD4MRec (Tan et al.): a light diffusion model for multimedia recommendation.

Training (Algorithm 1): for a batch of users, draw steps by importance sampling (Eq. 8),
corrupt the observed rows (Eq. 2), denoise them with C-Net under the step embedding
SinEmb(t) + e_in(u) (Eq. 17) and the collaborative / modality signals (Eq. 14-16), and
regress on the soft-reconstruction target (Eq. 6-7). ``LD4MRecPaper`` is this model with the
paper's reading of every open choice; ``LD4MRec``'s YAML holds the tuned one.
Inference (Algorithm 2): one C-Net pass on the uncorrupted row with SinEmb(0) + e_in(u).

The constructor and methods follow MMRec's contract: ``(config, dataloader)``,
``calculate_loss(user_ids)`` with ``use_full_sampling: True``, and
``full_sort_predict(interaction)`` scoring ``interaction[0]`` against every item.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..errors import ConfigError
from ..ld4mrec.cnet import CNet, ItemGraph
from ..ld4mrec.diffusion import NoiseSchedule, sinusoidal_step_embedding
from ..ld4mrec.item_graph import content_item_graph, to_torch_sparse
from ..ld4mrec.loss import step_loss
from ..ld4mrec.settings import LD4MRecSettings, ld4mrec_settings
from ..ld4mrec.signals import cached_signals
from ..ld4mrec.step_sampler import ImportanceStepSampler
from .base import config_get, general_recommender_base
from .modalities import item_modalities
from .rows import DeviceRows, batch_users, row_batches

log = logging.getLogger(__name__)


class LD4MRec(general_recommender_base()):
    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        s = ld4mrec_settings(lambda key: config_get(config, key))
        X = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        X.sort_indices()
        self.train_matrix = X
        self.rows = DeviceRows(X, self.device)
        features = item_modalities(self, config, s.extra_feature_files)
        if not features and s.item_graph_k > 0:
            log.warning("LD4MRec: the dataset has no item features, so item_graph_k (content-aware) is off for this run")
        self.settings = s = settings_for_data(s, has_features=bool(features))
        # static shapes on a GPU (CUDA-graph capturable); with the item graph, compact batches and
        # eager steps until experiments/gpu/check.sh has shown its sparse products replay right
        self.batches = row_batches(self.rows, static=s.item_graph_k == 0)

        if s.svd_rank > min(X.shape):
            raise ConfigError(f"config key 'svd_rank': expected at most min(|U|, |I|) = {min(X.shape)}, got {s.svd_rank}",
                              key="svd_rank")
        collab, prefs = cached_signals(X, features, s.svd_rank, s.feature_norm, device=self.device,
                                       oversampling=s.svd_oversampling, power_iterations=s.svd_power_iterations)
        self.register_buffer("collab_signal", torch.from_numpy(collab).to(self.device))
        self.n_modalities = len(prefs)
        for m, p in enumerate(prefs):
            self.register_buffer(f"pref_signal_{m}", torch.from_numpy(p).to(self.device))

        self.schedule = NoiseSchedule(s.steps, s.noise_scale, s.noise_min, s.noise_max).to(self.device)
        self.step_sampler = ImportanceStepSampler(s.steps, s.history_num_per_term, s.uniform_mix)
        # e_in(u): the user's unknown inherent diffusion step, zero = "no inherent noise".
        self.initial_step = nn.Embedding(self.n_users, s.step_emb_size)
        nn.init.zeros_(self.initial_step.weight)
        item_graph = None
        if s.item_graph_k > 0:
            if s.item_graph_k >= self.n_items:
                raise ConfigError(f"config key 'item_graph_k': expected fewer than |I| = {self.n_items} neighbours, "
                                  f"got {s.item_graph_k}", key="item_graph_k")
            graph = content_item_graph(features, s.item_graph_k)  # raw features: cosine ignores scale
            item_graph = ItemGraph(to_torch_sparse(graph, self.device), s.item_graph_weight)
        self.cnet = CNet(
            n_items=self.n_items, embedding_size=s.embedding_size, hidden_size=s.hidden_size,
            step_dim=s.step_emb_size, collab_dim=collab.shape[1], pref_dims=[p.shape[1] for p in prefs],
            activation=s.activation, use_cg=s.use_cg, use_pg=s.use_pg, residual=s.residual, item_graph=item_graph,
        ).to(self.device)
        self.to(self.device)

    @property
    def static_batches(self) -> bool:
        """Whether training batches have static shapes (the trainer's CUDA-graph steps read it)."""
        return self.batches.static

    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """Check LD4MRec's keys (``get(key)`` returns a grid point's value) before any data is read."""
        ld4mrec_settings(get)

    # ---- the pieces of Algorithms 1 and 2 -------------------------------------------------
    def _conditions(self, users: torch.Tensor):
        prefs = [getattr(self, f"pref_signal_{m}")[users] for m in range(self.n_modalities)]
        return self.collab_signal[users], prefs

    def denoise(self, x: torch.Tensor, t: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """x_hat = C-Net(x, SinEmb(t) + e_in(u), c_u, {p^m_u}) (Eq. 4)."""
        collab, prefs = self._conditions(users)
        return self.cnet(x, self.step_embedding(t, users), collab, prefs)

    def step_embedding(self, t: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """e_step = SinEmb(t) + e_in(u) (Eq. 17 and section 5.2)."""
        return sinusoidal_step_embedding(t, self.settings.step_emb_size).to(self.device) + self.initial_step(users)

    # ---- MMRec contract -----------------------------------------------------------------
    def calculate_loss(self, interaction) -> torch.Tensor:
        """Algorithm 1, one batch of users (MMRec's full sampling gives their ids)."""
        s = self.settings
        users = batch_users(interaction).to(self.device)
        x = self.batches.draw(users, normalized=s.input_norm == "l2")  # x_u (input_norm: l2 scales it)
        t, weights = self.step_sampler.sample(len(users), inverse_cdf=self.batches.static)  # t ~ p_t, Eq. 8
        values = x.values
        if s.input_dropout > 0 and self.training:
            # dropout on the observed entries only: a dense mask's distribution, |x_u| draws
            keep = torch.rand(values.shape, device=values.device) >= s.input_dropout
            values = values * keep / (1.0 - s.input_dropout)
        x_t = self.schedule.q_sample(x.dense(values), t)  # Eq. 2: dense, the noise touches every item
        x_hat = self.denoise(x_t, t, users)  # Eq. 4
        target = x.soft_target(s.soft_prob, s.smooth) if s.use_soft_target else x.binary  # Eq. 6-7
        per_user = step_loss(x_hat, target, s.loss)  # Eq. 5 (or the multinomial likelihood)
        self.step_sampler.update(t, per_user)  # the loss history behind p_t
        return (per_user * weights).mean()  # Eq. 8: each user weighted 1 / (T p_t)

    @contextlib.contextmanager
    def inference_strategy(self, steps: int) -> Iterator[None]:
        """Rank with ``steps`` (0 = forward-free, k = k-step inference of Fig. 3) inside the
        block, the same trained state: Fig. 3 compares strategies of one model."""
        if not 0 <= steps <= self.settings.steps:
            raise ConfigError(f"config key 'inference_study': expected steps in 0..steps ({self.settings.steps}), "
                              f"got {steps}", key="inference_study")
        kept = self.settings
        self.settings = dataclasses.replace(kept, inference_steps=steps)
        try:
            yield
        finally:
            self.settings = kept

    @torch.no_grad()
    def full_sort_predict(self, interaction) -> torch.Tensor:
        """Algorithm 2 (forward-free): x_hat = C-Net(x_u, SinEmb(0) + e_in(u)) in one pass.

        With ``inference_steps`` = k > 0: corrupt x_u to step k, then k reverse steps with the
        DDPM posterior mean of the predicted x_0 (no sampling noise), as in Fig. 3.
        """
        users = interaction[0].to(self.device)
        x = self.rows.sparse(users, normalized=self.settings.input_norm == "l2")
        k = self.settings.inference_steps
        if k == 0:
            return self.denoise(x, torch.zeros(len(users), dtype=torch.long, device=self.device), users)
        x0 = x.to_dense()
        x_t = self.schedule.q_sample(x0, torch.full((len(users),), k, device=self.device))
        for step in range(k, 0, -1):
            t = torch.full((len(users),), step, dtype=torch.long, device=self.device)
            x0_pred = self.denoise(x_t, t, users)
            if self.settings.loss == "multinomial":
                # logits -> probabilities (rows sum to 1) -> the input row's mass, so that the
                # posterior mixes x_0 and x_t on one scale (x_t is the input's scale, Eq. 2)
                x0_pred = torch.softmax(x0_pred, dim=1) * x0.sum(dim=1, keepdim=True)
            x_t = self.schedule.posterior_mean(x_t, x0_pred, t)
        return x_t

    @classmethod
    def resolved_settings(cls, config: dict) -> LD4MRecSettings:
        """The settings a run of ``config`` (a resolved config dict) trains with, as
        ``__init__`` resolves them before it reads any data."""
        s = ld4mrec_settings(lambda key: config.get(key))
        has_features = any(config.get(key) for key in ("vision_feature_file", "text_feature_file", "extra_feature_files"))
        return settings_for_data(s, has_features)


def settings_for_data(s: LD4MRecSettings, has_features: bool) -> LD4MRecSettings:
    """On a dataset without item features the content item graph has nothing to read: it is off
    (as the PG blocks are left out), so one configuration runs on TikTok and MovieLens-1M alike."""
    return s if has_features or s.item_graph_k == 0 else dataclasses.replace(s, item_graph_k=0)


class LD4MRecPaper(LD4MRec):
    """LD4MRec with the paper's reading (``configs/model/LD4MRecPaper.yaml``): the same code,
    every open choice at the paper's setting. ``LD4MRec`` itself runs the tuned configuration."""
