"""The posterior of the k-step inference of Fig. 3 and the importance weighting of Eq. 8, each
checked against a closed form derived independently of the code (issue 18, items 3 and 4). The
model's k-step inference and weighted loss: tests/models/test_ld4mrec_inference.py."""

from __future__ import annotations

import math

import pytest
import torch

from mmrec_ld4mrec.ld4mrec.diffusion import NoiseSchedule
from mmrec_ld4mrec.ld4mrec.step_sampler import ImportanceStepSampler


def test_posterior_mean_is_the_product_of_the_two_gaussians_at_every_step():
    """q(x_{t-1} | x_t, x_0) ∝ N(x_{t-1}; sqrt(ab_{t-1}) x_0, 1 - ab_{t-1}) · N(x_t; sqrt(a_t) x_{t-1}, b_t):
    its mean is (sqrt(ab_{t-1}) x_0 / (1 - ab_{t-1}) + sqrt(a_t) x_t / b_t) / (1 / (1 - ab_{t-1}) + a_t / b_t)."""
    schedule = NoiseSchedule(steps=6, noise_scale=0.1, noise_min=0.01, noise_max=0.2)
    gen = torch.Generator().manual_seed(0)
    x0, xt = torch.rand(4, 7, generator=gen, dtype=torch.float64), torch.randn(4, 7, generator=gen, dtype=torch.float64)
    alpha_bar = [1.0] + schedule.alpha_bar.tolist()  # alpha_bar[t] for t = 0..T
    for t in range(2, schedule.steps + 1):
        beta = 1.0 - alpha_bar[t] / alpha_bar[t - 1]
        prior_var = 1.0 - alpha_bar[t - 1]
        precision = 1.0 / prior_var + (1.0 - beta) / beta
        expected = (math.sqrt(alpha_bar[t - 1]) * x0 / prior_var + math.sqrt(1.0 - beta) * xt / beta) / precision
        got = schedule.posterior_mean(xt, x0, torch.full((4,), t))
        assert torch.allclose(got, expected, atol=1e-9), t


def test_sampler_uses_the_root_mean_square_of_each_steps_losses():
    """Step 1 alternates losses 0 and 0.2 (mean 0.1, RMS 0.1414), step 2 is always 0.1 (mean
    and RMS 0.1): p_t follows the RMS, not the mean. Expected values worked by hand."""
    s = ImportanceStepSampler(steps=2, history=10, uniform_mix=0.01)
    s.update(torch.full((10,), 1), torch.tensor([0.0, 0.2] * 5))
    s.update(torch.full((10,), 2), torch.full((10,), 0.1))
    rms1, rms2 = math.sqrt(0.02), 0.1
    p1 = 0.99 * rms1 / (rms1 + rms2) + 0.005
    p2 = 0.99 * rms2 / (rms1 + rms2) + 0.005
    assert s.probabilities().tolist() == pytest.approx([p1, p2], rel=1e-9)
    assert p1 == pytest.approx(0.5849, abs=1e-4)  # the mean would give 0.5 here
    t, w = s.sample(1000, torch.Generator().manual_seed(1))
    assert w[t == 1].unique().tolist() == pytest.approx([1 / (2 * p1)], rel=1e-6)
    assert w[t == 2].unique().tolist() == pytest.approx([1 / (2 * p2)], rel=1e-6)
    assert 0.53 < (t == 1).float().mean().item() < 0.64


