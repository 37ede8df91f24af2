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
import functools
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
from ..ld4mrec.item_graph import build_item_graph, to_torch_sparse
from ..ld4mrec.loss import step_loss
from ..ld4mrec.settings import LD4MRecSettings, ld4mrec_settings
from ..ld4mrec.signals import cached_signals, normalize_features, standardized_columns
from ..ld4mrec.soft_target import soft_reconstruction_target, soft_reconstruction_target_padded
from ..ld4mrec.step_sampler import ImportanceStepSampler
from ..ld4mrec.weight_average import WeightAverage
from ..mmrec.host import config_get, general_recommender_base
from .modalities import item_modalities
from .rows import DeviceRows, batch_users

log = logging.getLogger(__name__)


class LD4MRec(general_recommender_base()):
    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        s = ld4mrec_settings(lambda key: config_get(config, key))
        X = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        X.sort_indices()
        self.train_matrix = X
        self.rows = DeviceRows(X, self.device)
        features = self._modality_features(config, s)
        if not features:
            s = content_off(s)
        self.settings = s
        # Static-shape training batches on a GPU (CUDA-graph capturable), compact ones on a CPU;
        # step_zero_prob's per-row update of the step sampler has a data-dependent shape, the
        # item graph's sparse backward has not been checked under capture yet, and the weight
        # average's catch-up is decided on the host.
        self.static_batches = torch.device(self.device).type == "cuda" and s.step_zero_prob == 0 \
            and s.item_graph_k == 0 and s.ema_decay == 0

        if s.svd_rank > min(X.shape):
            raise ConfigError(f"config key 'svd_rank': expected at most min(|U|, |I|) = {min(X.shape)}, got {s.svd_rank}")
        collab, prefs = cached_signals(X, features, s.svd_rank, s.feature_norm, device=self.device,
                                       oversampling=s.svd_oversampling, power_iterations=s.svd_power_iterations)
        if s.collab_scale == "standard":
            collab = standardized_columns(collab)
        self.register_buffer("collab_signal", torch.from_numpy(collab).to(self.device))
        self.n_modalities = len(prefs)
        for m, p in enumerate(prefs):
            self.register_buffer(f"pref_signal_{m}", torch.from_numpy(p).to(self.device))
        feature_dims = []
        if s.item_features or s.item_features_input:
            for m, f in enumerate(features):
                f = normalize_features(f, s.feature_norm).astype(np.float32)
                self.register_buffer(f"item_feature_{m}", torch.from_numpy(f).to(self.device), persistent=False)
                feature_dims.append(f.shape[1])

        self.schedule = NoiseSchedule(s.steps, s.noise_scale, s.noise_min, s.noise_max).to(self.device)
        self.step_sampler = ImportanceStepSampler(s.steps, s.history_num_per_term, s.uniform_mix)
        # e_in(u): the user's unknown inherent diffusion step, zero = "no inherent noise".
        self.initial_step = nn.Embedding(self.n_users, s.step_emb_size)
        nn.init.zeros_(self.initial_step.weight)
        item_graph = None
        if s.item_graph_k > 0:
            if s.item_graph_k >= self.n_items:
                raise ConfigError(f"config key 'item_graph_k': expected fewer than |I| = {self.n_items} neighbours, "
                                  f"got {s.item_graph_k}")
            # raw features: cosine ignores scale
            graph = build_item_graph(s.item_graph_source, features, X, s.item_graph_k)
            item_graph = ItemGraph(to_torch_sparse(graph, self.device), s.item_graph_weight)
        self.cnet = CNet(
            n_items=self.n_items, embedding_size=s.embedding_size, hidden_size=s.hidden_size,
            step_dim=s.step_emb_size, collab_dim=collab.shape[1], pref_dims=[p.shape[1] for p in prefs],
            activation=s.activation, use_cg=s.use_cg, use_pg=s.use_pg, sparse_input=s.sparse_input,
            gate_input=s.gate_input, gate_bias=s.gate_bias, item_feature_dims=feature_dims if s.item_features else [],
            residual=s.residual, input_activation=s.input_activation, item_graph=item_graph,
            input_feature_dims=feature_dims if s.item_features_input else [],
        ).to(self.device)
        self.to(self.device)
        # built last: it averages every parameter above
        self.weight_average = WeightAverage(self, s.ema_decay) if s.ema_decay > 0 else None
        self._average_behind = False  # an optimiser step may have followed the last calculate_loss

    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """Check LD4MRec's keys (``get(key)`` returns a grid point's value) before any data is read."""
        ld4mrec_settings(get)

    # ---- inputs -------------------------------------------------------------------------
    def _modality_features(self, config, settings) -> list[np.ndarray]:
        """Modalities in a fixed order: text, visual (the paper's), then ``extra_feature_files``."""
        return item_modalities(self, config, settings.extra_feature_files)

    def _rows(self, users: torch.Tensor, normalized: bool = False) -> torch.Tensor:
        """Training rows of ``users`` as a sparse COO tensor [B, |I|] on the model's device.

        ``normalized`` scales each row to unit L2 norm (the ``input_norm: l2`` choice).
        """
        return self.rows.sparse(users, normalized)

    def _conditions(self, users: torch.Tensor):
        prefs = [getattr(self, f"pref_signal_{m}")[users] for m in range(self.n_modalities)]
        return self.collab_signal[users], prefs

    def denoise(self, x: torch.Tensor, t: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """x_hat = C-Net(x, SinEmb(t) + e_in(u), c_u, {p^m_u}) (Eq. 4)."""
        collab, prefs = self._conditions(users)
        content = self.settings.item_features or self.settings.item_features_input
        items = [getattr(self, f"item_feature_{m}") for m in range(self.n_modalities)] if content else []
        return self.cnet(x, self.step_embedding(t, users), collab, prefs, items)

    def step_embedding(self, t: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """e_step = SinEmb(t) + e_in(u) (Eq. 17 and section 5.2)."""
        return sinusoidal_step_embedding(t, self.settings.step_emb_size).to(self.device) + self.initial_step(users)

    def matmul_shapes(self, batch: int) -> dict[str, list[tuple[int, int, int]]]:
        """The dense products (m, k, n) that bound a training step on ``batch`` users and an
        inference pass over ``batch`` users (``bench`` times them on the machine itself).

        Training: FC_in forward on the dense corrupted rows and its weight gradient, FC_out
        forward, weight and input gradient. Forward-free inference: FC_out only (FC_in is a
        sparse product); k-step inference: k passes with a dense FC_in. Left out: the item
        graph's sparse products (``item_graph_k``: about k |I| min(B, d) multiply-adds per
        modality each, under a tenth of a dense product's |I| B d at k = 10)."""
        n_items, d = self.n_items, self.settings.embedding_size
        train = [(batch, n_items, d), (n_items, batch, d), (batch, d, n_items), (n_items, batch, d), (batch, n_items, d)]
        k = self.settings.inference_steps
        infer = [(batch, d, n_items)] if k == 0 else [(batch, n_items, d), (batch, d, n_items)] * k
        return {"train": train, "inference": infer}

    # ---- MMRec contract -----------------------------------------------------------------
    def calculate_loss(self, interaction) -> torch.Tensor:
        """Algorithm 1: importance-sampled step, corruption, loss on the soft-reconstruction
        target (Eq. 5's MSE, or the multinomial likelihood with ``loss: multinomial``).

        On a GPU (``static_batches``) the batch is drawn with shapes fixed by the batch size
        (padded rows, a coin per slot and per item: the same distributions), so the host never
        waits and the trainer can capture the step as a CUDA graph; on a CPU it keeps the
        compact draws over the batch's own CSR."""
        users = batch_users(interaction).to(self.device)
        s = self.settings
        self._catch_up_average()
        self._average_behind = self.weight_average is not None
        if self.static_batches:
            cols, valid = self.rows.padded(users)
            ones = valid.float()
            scatter = self.rows.scatter_padded
        else:
            indptr, cols, rows = self.rows.batch(users)  # on the device: no host round trip
            ones = torch.ones(len(cols), device=cols.device)
            scatter = functools.partial(self.rows.scatter, len(users), rows)
        x_dense = scatter(cols, ones)
        t, weights = self.step_sampler.sample(len(users), inverse_cdf=self.static_batches)
        values = ones
        if s.input_norm == "l2":
            values = (self.rows.values(indptr, rows, normalized=True) if not self.static_batches
                      else self.rows.padded_values(valid, normalized=True))
        clean = values  # the row as inference sees it (normalised, no dropout): step-zero rows take it
        if s.input_dropout > 0 and self.training:
            # Dropout on the observed row touches only its non-zero entries: the same distribution
            # as a dense dropout mask, drawn for |x_u| entries instead of |I|.
            keep = torch.rand(values.shape, device=values.device) >= s.input_dropout
            values = values * keep / (1.0 - s.input_dropout)
        x_t = self.schedule.q_sample(scatter(cols, values), t)  # Eq. 2, dense: the noise touches every item
        sampled = None
        if s.step_zero_prob > 0:
            # some rows at t = 0: the row inference sees, no dropout, no noise (weight 1: outside Eq. 8's draw)
            zero = torch.rand(len(users), device=x_t.device) < s.step_zero_prob
            x_t = torch.where(zero.unsqueeze(1), scatter(cols, clean), x_t)
            weights = torch.where(zero, torch.ones_like(weights), weights)
            sampled, t = ~zero, torch.where(zero, torch.zeros_like(t), t)
        x_hat = self.denoise(x_t, t, users)
        if not s.use_soft_target:
            target = x_dense
        elif self.static_batches:
            target = soft_reconstruction_target_padded(x_dense, cols, valid, s.soft_prob, s.smooth)
        else:
            target = soft_reconstruction_target(x_dense, indptr, cols, s.soft_prob, s.smooth)
        per_user = step_loss(x_hat, target, s.loss)
        if sampled is None:
            self.step_sampler.update(t, per_user)
        else:  # only the rows whose step came from the sampler update its history
            self.step_sampler.update(t[sampled], per_user[sampled])
        return (per_user * weights).mean()  # Eq. 8 weighting 1 / (T p_t)

    def _catch_up_average(self) -> None:
        """Fold the optimiser's last step into the weight average (``ema_decay``): the model does
        not see the step itself, so it folds it in at the next batch or the next ranking."""
        if self._average_behind:
            self.weight_average.update(self)
            self._average_behind = False

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A loaded state (the best epoch's, a checkpoint) brings its own weight average."""
        self._average_behind = False
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @contextlib.contextmanager
    def inference_strategy(self, steps: int) -> Iterator[None]:
        """Rank with ``steps`` (0 = forward-free, k = k-step inference of Fig. 3) inside the
        block, the same trained state: Fig. 3 compares strategies of one model."""
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
        DDPM posterior mean of the predicted x_0 (no sampling noise), as in Fig. 3. With
        ``ema_decay`` > 0 it ranks with the average of the weights.
        """
        self._catch_up_average()
        if self.weight_average is not None:
            with self.weight_average.swapped_in(self):
                return self._rank(interaction)
        return self._rank(interaction)

    def _rank(self, interaction) -> torch.Tensor:
        users = interaction[0].to(self.device)
        x = self._rows(users, normalized=self.settings.input_norm == "l2")
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


def content_off(s: LD4MRecSettings) -> LD4MRecSettings:
    """On a dataset without item features the content-aware switches have nothing to read: they
    are turned off, with a warning naming them, as the PG blocks are left out (one configuration
    runs on TikTok and on MovieLens-1M alike). An item graph drawn from interactions stays; one
    drawn from ``both`` keeps its interaction half."""
    graph_needs_content = s.item_graph_k > 0 and s.item_graph_source == "content"
    on = [k for k in ("item_features", "item_features_input") if getattr(s, k)]
    on = (["item_graph_k"] if graph_needs_content else []) + on
    if on:
        log.warning("LD4MRec: the dataset has no item features, so %s (content-aware) %s off for this run",
                    ", ".join(on), "is" if len(on) == 1 else "are")
    if s.item_graph_k > 0 and s.item_graph_source == "both":
        log.warning("LD4MRec: the dataset has no item features, so item_graph_source 'both' keeps the "
                    "interaction graph only for this run")
    return without_content(s)


def without_content(s: LD4MRecSettings) -> LD4MRecSettings:
    """``s`` as it runs on a dataset without item features (:func:`content_off`, silently)."""
    graph_needs_content = s.item_graph_k > 0 and s.item_graph_source == "content"
    return dataclasses.replace(
        s, item_graph_k=0 if graph_needs_content else s.item_graph_k, item_features=False, item_features_input=False,
        item_graph_source="interactions" if s.item_graph_source == "both" else s.item_graph_source)


class LD4MRecPaper(LD4MRec):
    """LD4MRec with the paper's reading (``configs/model/LD4MRecPaper.yaml``): the same code,
    every open choice at the paper's setting. ``LD4MRec`` itself runs the tuned configuration."""
