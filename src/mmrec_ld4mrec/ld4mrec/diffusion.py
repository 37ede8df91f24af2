"""Forward diffusion of LD4MRec: noise schedule (Eq. 1-3), step embedding (Eq. 17) and
the DDPM posterior used by the optional k-step inference (Fig. 3).

Steps are numbered t = 1..T as in the paper; t = 0 is "no added forward noise"
(forward-free inference).
"""

from __future__ import annotations

import math

import torch


def check_schedule(steps: int, noise_scale: float, noise_min: float, noise_max: float) -> None:
    """ValueError unless the schedule below is well defined (variances in (0, 1])."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if not all(math.isfinite(v) for v in (noise_scale, noise_min, noise_max)) or noise_scale <= 0 \
            or not 0 < noise_min <= noise_max <= 1 or noise_scale * noise_max > 1:
        raise ValueError(f"expected finite noise_scale > 0 and 0 < noise_min <= noise_max <= 1 with noise_scale x "
                         f"noise_max <= 1 (a variance of at most 1), got noise_scale {noise_scale}, noise_min "
                         f"{noise_min}, noise_max {noise_max}")


class NoiseSchedule:
    """DiffRec's linear-variance schedule (Eq. 3), cited by the paper as [13].

    1 - alpha_bar_t = s * (alpha_min + (t-1)/(T-1) * (alpha_max - alpha_min)),  t = 1..T,
    beta_1 = 1 - alpha_bar_1,  beta_t = min(1 - alpha_bar_t / alpha_bar_{t-1}, 0.999).
    ``alpha_bar`` is then recomputed as the cumulative product of (1 - beta_t), so that the
    closed-form corruption (Eq. 2) and the step chain (Eq. 1) agree exactly.
    """

    def __init__(self, steps: int, noise_scale: float, noise_min: float, noise_max: float):
        check_schedule(steps, noise_scale, noise_min, noise_max)
        self.steps = steps
        t = torch.arange(steps, dtype=torch.float64)
        variance = noise_scale * (noise_min + t / (steps - 1) * (noise_max - noise_min))
        alpha_bar_nominal = 1.0 - variance
        betas = torch.empty(steps, dtype=torch.float64)
        betas[0] = 1.0 - alpha_bar_nominal[0]
        betas[1:] = torch.clamp(1.0 - alpha_bar_nominal[1:] / alpha_bar_nominal[:-1], max=0.999)
        self.betas = betas
        self.alpha_bar = torch.cumprod(1.0 - betas, dim=0)
        # alpha_bar_prev[t-1] = alpha_bar_{t-1}, with alpha_bar_0 = 1.
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])

    def to(self, device) -> NoiseSchedule:
        """Hold the schedule on ``device`` (the model's), so that a step's coefficients are
        gathered there without a host-to-device copy per batch; returns ``self``."""
        self.betas, self.alpha_bar, self.alpha_bar_prev = (
            v.to(device) for v in (self.betas, self.alpha_bar, self.alpha_bar_prev))
        return self

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.to(like.device)[t - 1].to(like.dtype).unsqueeze(-1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 2: x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * eps, t >= 1 per row."""
        if noise is None:
            noise = torch.randn_like(x0)
        return self.signal_coef(t, x0) * x0 + self.noise_coef(t, x0) * noise

    def signal_coef(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self._at(self.alpha_bar.sqrt(), t, like)

    def noise_coef(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self._at((1.0 - self.alpha_bar).sqrt(), t, like)

    def posterior_mean(self, x_t: torch.Tensor, x0_pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x_0) with x_0 predicted (DDPM Eq. 7); exact x0_pred at t = 1."""
        coef_x0 = self.betas * self.alpha_bar_prev.sqrt() / (1.0 - self.alpha_bar)
        coef_xt = (1.0 - self.alpha_bar_prev) * (1.0 - self.betas).sqrt() / (1.0 - self.alpha_bar)
        return self._at(coef_x0, t, x_t) * x0_pred + self._at(coef_xt, t, x_t) * x_t


def sinusoidal_step_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Eq. 17: dimension 2k is sin(t / 10000^(2k/d)), dimension 2k+1 is cos(t / 10000^(2k/d)).

    ``t`` is a 1-D tensor of (integer) steps; returns ``[len(t), dim]``. For odd ``dim`` the
    last (cos) slot is dropped.
    """
    k = torch.arange((dim + 1) // 2, dtype=torch.float32, device=t.device)
    angles = t.float().unsqueeze(-1) / torch.pow(10000.0, 2.0 * k / dim)
    emb = torch.empty(t.shape[0], 2 * k.shape[0], device=t.device)
    emb[:, 0::2] = torch.sin(angles)
    emb[:, 1::2] = torch.cos(angles)
    return emb[:, :dim]

