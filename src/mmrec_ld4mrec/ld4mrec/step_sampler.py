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
        """p_t for t = 1..T (index t-1), on the buffers' device (no host synchronisation)."""
        uniform = torch.full((self.steps,), 1.0 / self.steps, dtype=torch.float64, device=self.loss_history.device)
        p = torch.sqrt((self.loss_history ** 2).mean(dim=1))
        p = p / p.sum()
        p = p * (1.0 - self.uniform_mix) + self.uniform_mix / self.steps
        return torch.where((self.history_count >= self.history).all(), p, uniform)

    def sample(self, batch_size: int, generator: torch.Generator | None = None,
               inverse_cdf: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw steps t in 1..T and their weights 1 / (T * p_t), on the buffers' device.

        ``inverse_cdf`` draws the same distribution by inverting the cumulative p_t at
        uniform draws (kernels a CUDA graph can capture) instead of ``torch.multinomial``."""
        p = self.probabilities()
        if inverse_cdf:
            cdf = torch.cumsum(p, 0)
            u = torch.rand(batch_size, generator=generator, dtype=p.dtype, device=p.device) * cdf[-1]
            idx = torch.searchsorted(cdf, u, right=True).clamp(max=self.steps - 1)
        else:
            idx = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        weights = 1.0 / (self.steps * p[idx])
        return idx + 1, weights.float()

    @torch.no_grad()
    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record per-sample losses L_t (steps 1..T), keeping the newest ``history`` per step.

        Vectorised: the losses of step s, in batch order, extend that step's sequence; the
        newest ``history`` entries of the extended sequence become its new history."""
        t = t.to(self.loss_history.device)
        losses = losses.detach().to(self.loss_history)
        order = torch.sort(t - 1, stable=True)
        ls = losses[order.indices]
        # counts per step (a scatter: bincount would make a GPU wait to size its output)
        n_new = torch.zeros(self.steps, dtype=torch.long, device=t.device).scatter_add_(0, t - 1, torch.ones_like(t))
        first_new = torch.cumsum(n_new, 0) - n_new  # where each step's losses start in ``ls``
        count = self.history_count
        total = count + n_new
        start = (total - self.history).clamp(min=0)  # first position kept, in the step's sequence
        pos = start.unsqueeze(1) + torch.arange(self.history, device=t.device)
        from_old = pos < count.unsqueeze(1)
        old = self.loss_history.gather(1, pos.clamp(max=self.history - 1))
        new_at = (first_new.unsqueeze(1) + pos - count.unsqueeze(1)).clamp(0, max(len(ls) - 1, 0))
        new = ls[new_at] if len(ls) else torch.zeros_like(old)
        kept = torch.arange(self.history, device=t.device) < total.clamp(max=self.history).unsqueeze(1)
        self.loss_history.copy_(torch.where(kept, torch.where(from_old, old, new), torch.zeros_like(old)))
        self.history_count.copy_(total.clamp(max=self.history))
