"""Importance sampling of diffusion steps (Eq. 8, after improved DDPM).

The last ``history`` per-sample losses of every step are kept. Until each step has a full
history, steps are drawn uniformly; afterwards p_t is proportional to sqrt(E[L_t^2]), mixed
with ``uniform_mix`` of uniform mass. Each sample's loss is weighted by 1 / (T * p_t), so
that uniform sampling has weight 1. The history lives in buffers, so it is part of the
model's ``state_dict`` and of every checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn


class ImportanceStepSampler(nn.Module):
    def __init__(self, steps: int, history: int = 10, uniform_mix: float = 1e-3):
        super().__init__()
        self.steps = steps
        self.history = history
        self.uniform_mix = uniform_mix
        self.register_buffer("loss_history", torch.zeros(steps, history, dtype=torch.float64))
        self.register_buffer("history_count", torch.zeros(steps, dtype=torch.long))

    @property
    def warmed_up(self) -> bool:
        return bool((self.history_count >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """p_t for t = 1..T (index t-1)."""
        if not self.warmed_up:
            return torch.full((self.steps,), 1.0 / self.steps, dtype=torch.float64)
        p = torch.sqrt((self.loss_history ** 2).mean(dim=1))
        p = p / p.sum()
        return p * (1.0 - self.uniform_mix) + self.uniform_mix / self.steps

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw steps t in 1..T and their weights 1 / (T * p_t)."""
        p = self.probabilities()
        idx = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        weights = 1.0 / (self.steps * p[idx])
        return idx + 1, weights.float()

    @torch.no_grad()
    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-sample losses L_t (steps 1..T), keeping the newest ``history`` per step."""
        hist = self.loss_history.cpu().numpy().copy()
        count = self.history_count.cpu().numpy().copy()
        for step, loss in zip(t.tolist(), losses.detach().double().cpu().tolist()):
            i = step - 1
            if count[i] < self.history:
                hist[i, count[i]] = loss
                count[i] += 1
            else:
                hist[i, :-1] = hist[i, 1:]
                hist[i, -1] = loss
        self.loss_history.copy_(torch.from_numpy(hist))
        self.history_count.copy_(torch.from_numpy(count))
