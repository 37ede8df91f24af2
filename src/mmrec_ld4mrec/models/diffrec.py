"""DiffRec (Wang et al., SIGIR 2023): a Gaussian diffusion over the user's interaction row
with an MLP denoiser that predicts x_0, run under MMRec's contract.

* Forward process and schedule: the linear-variance schedule LD4MRec also uses (Eq. 1-3).
* Denoiser: x_t (L2-normalised when ``norm``, then dropout) concatenated with a learned
  projection of the sinusoidal step embedding; encoder layers to ``dims[-1]`` and decoder
  layers back to |I|, tanh between layers.
* Training: importance-sampled step (10-value loss history), x_0-prediction MSE, with
  ``reweight`` the SNR(t-1) - SNR(t) weight; each sample's loss is divided by its step's
  sampling probability p_t, as DiffRec does.
* Inference: corrupt to ``sampling_steps`` (0 = no corruption), then T reverse steps with the
  posterior mean of the predicted x_0 (no sampling noise by default).

DiffRec numbers steps 0..T-1; here step k of DiffRec is step k + 1 of the shared schedule.
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
from ..ld4mrec.diffusion import NoiseSchedule, check_schedule, sinusoidal_step_embedding
from ..ld4mrec.step_sampler import ImportanceStepSampler
from .base import config_get, general_recommender_base
from .rows import DeviceRows, batch_users


class DiffRecDenoiser(nn.Module):
    def __init__(self, n_items: int, dims: list[int], emb_size: int, norm: bool, dropout: float):
        super().__init__()
        self.emb_size, self.norm = emb_size, norm
        self.step_proj = nn.Linear(emb_size, emb_size)
        encoder = [n_items + emb_size, *reversed(dims)]
        decoder = [*dims, n_items]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(encoder[:-1], encoder[1:]))
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(decoder[:-1], decoder[1:]))
        self.drop = nn.Dropout(dropout)
        for layer in [self.step_proj, *self.encoder, *self.decoder]:
            nn.init.xavier_normal_(layer.weight)
            nn.init.normal_(layer.bias, 0.0, 0.001)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.step_proj(sinusoidal_step_embedding(t, self.emb_size).to(x.device))
        if self.norm:
            x = F.normalize(x)
        h = torch.cat([self.drop(x), emb], dim=-1)
        for layer in self.encoder:
            h = torch.tanh(layer(h))
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < len(self.decoder) - 1:
                h = torch.tanh(h)
        return h


class DiffRec(general_recommender_base()):
    def __init__(self, config, dataloader):
        super().__init__(config, dataloader)
        get = lambda key, default: config_get(config, key, default)  # noqa: E731
        self.check_settings(lambda key: config_get(config, key))
        dims = get("dims", [1000])
        self.steps = int(get("steps", 100))
        self.sampling_steps = int(get("sampling_steps", 0))
        self.sampling_noise = get("sampling_noise", False)
        self.reweight = get("reweight", True)
        self.train_matrix = sp.csr_matrix(dataloader.inter_matrix(form="csr"), dtype=np.float32)
        self.rows = DeviceRows(self.train_matrix, self.device)
        # On a GPU every op of a step has static shapes and no host wait (steps drawn by inverse
        # CDF), so the trainer can capture it as a CUDA graph; a CPU keeps torch.multinomial.
        self.static_batches = torch.device(self.device).type == "cuda"
        self.schedule = NoiseSchedule(self.steps, float(get("noise_scale", 0.1)), float(get("noise_min", 1e-4)),
                                      float(get("noise_max", 0.02))).to(self.device)
        self.step_sampler = ImportanceStepSampler(self.steps, int(get("history_num_per_term", 10)))
        self.denoiser = DiffRecDenoiser(self.n_items, dims, int(get("step_emb_size", 10)), bool(get("norm", True)),
                                        float(get("dropout", 0.5)))
        self.to(self.device)

    @staticmethod
    def check_settings(get: Callable[[str], Any]) -> None:
        """DiffRec's keys and its noise schedule, checked before any data is read."""
        value = lambda key, default: default if get(key) is None else get(key)  # noqa: E731
        dims = value("dims", [1000])
        if not isinstance(dims, list) or not dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1
                                                         for d in dims):
            raise ConfigError(f"config key 'dims': expected a list of positive integers, got {dims!r}", key="dims")
        steps, sampling_steps = int(value("steps", 100)), int(value("sampling_steps", 0))
        if steps < 2:
            raise ConfigError(f"config key 'steps': expected an integer >= 2, got {steps}", key="steps")
        if not 0 <= sampling_steps <= steps:
            raise ConfigError(f"config key 'sampling_steps': expected 0..steps ({steps}), got {sampling_steps}",
                              key="sampling_steps")
        for key, default in (("sampling_noise", False), ("reweight", True), ("norm", True)):
            if not isinstance(value(key, default), bool):
                raise ConfigError(f"config key '{key}': expected true or false, got {value(key, default)!r}", key=key)
        history = value("history_num_per_term", 10)
        if not isinstance(history, int) or isinstance(history, bool) or history < 1:
            raise ConfigError(f"config key 'history_num_per_term': expected an integer >= 1, got {history!r}",
                              key="history_num_per_term")
        try:
            check_schedule(steps, float(value("noise_scale", 0.1)), float(value("noise_min", 1e-4)),
                           float(value("noise_max", 0.02)))
        except ValueError as exc:
            raise ConfigError(f"DiffRec schedule: {exc}") from None

    def calculate_loss(self, interaction) -> torch.Tensor:
        users = batch_users(interaction).to(self.device)
        x0 = self.rows.dense(users)  # on the device: no host round trip
        t, weights = self.step_sampler.sample(len(users), inverse_cdf=self.static_batches)
        x_t = self.schedule.q_sample(x0, t)
        mse = ((self.denoiser(x_t, t - 1) - x0) ** 2).mean(dim=1)
        if self.reweight:
            mse = mse * snr_step_weight(self.schedule, t)
        self.step_sampler.update(t, mse)
        # DiffRec divides by p_t itself, not by T * p_t
        return (mse * weights * self.steps).mean()

    @torch.no_grad()
    def full_sort_predict(self, interaction) -> torch.Tensor:
        users = interaction[0].to(self.device)
        x = self.rows.dense(users)
        if self.sampling_steps > 0:
            x = self.schedule.q_sample(x, torch.full((len(users),), self.sampling_steps, device=self.device))
        return reverse_chain(self.denoiser, self.schedule, x, self.sampling_noise)


def snr_step_weight(schedule: NoiseSchedule, t: torch.Tensor) -> torch.Tensor:
    """DiffRec's x_0-loss weight SNR(t-1) - SNR(t) for shared-schedule steps t (1..T), and 1 at
    t = 1 (DiffRec's step 0); SNR = alpha_bar / (1 - alpha_bar)."""
    a = schedule.alpha_bar.to(t.device)
    snr = (a / (1.0 - a)).float()
    previous = torch.where(t > 1, snr[(t - 2).clamp(min=0)], torch.zeros_like(snr[t - 1]))
    return torch.where(t == 1, torch.ones_like(previous), previous - snr[t - 1])


def reverse_chain(denoiser: nn.Module, schedule: NoiseSchedule, x: torch.Tensor, sampling_noise: bool = False) -> torch.Tensor:
    """T reverse steps from ``x``: each replaces x by the posterior mean of the denoiser's x_0
    prediction (plus the posterior's noise when ``sampling_noise``, never at the last step)."""
    for step in range(schedule.steps, 0, -1):
        t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
        mean = schedule.posterior_mean(x, denoiser(x, t - 1), t)
        if sampling_noise and step > 1:
            var = schedule.betas[step - 1] * (1 - schedule.alpha_bar_prev[step - 1]) / (1 - schedule.alpha_bar[step - 1])
            mean = mean + float(var) ** 0.5 * torch.randn_like(mean)
        x = mean
    return x
