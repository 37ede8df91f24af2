import math

import pytest
import torch

from mmrec_ld4mrec.ld4mrec.diffusion import NoiseSchedule, sinusoidal_step_embedding


def test_schedule_matches_closed_form_of_eq3():
    T, s, lo, hi = 5, 0.01, 0.001, 0.01
    sched = NoiseSchedule(T, s, lo, hi)
    for t in range(1, T + 1):
        expected = s * (lo + (t - 1) / (T - 1) * (hi - lo))
        assert 1 - sched.alpha_bar[t - 1].item() == pytest.approx(expected, rel=1e-9)
    assert sched.betas[0].item() == pytest.approx(s * lo)
    assert torch.all(sched.betas > 0) and torch.all(sched.betas <= 0.999)


def test_betas_are_clipped_at_0_999():
    sched = NoiseSchedule(3, 1.0, 0.001, 1.0)  # alpha_bar_3 = 0 would give beta_3 = 1
    assert sched.betas.max().item() == pytest.approx(0.999)


def test_corrupted_row_has_the_closed_form_moments():
    torch.manual_seed(0)
    sched = NoiseSchedule(5, 0.5, 0.1, 0.9)
    x0 = torch.zeros(20000, 2)
    x0[:, 0] = 1.0
    t = torch.full((20000,), 4)
    xt = sched.q_sample(x0, t)
    a = sched.alpha_bar[3].item()
    assert xt[:, 0].mean().item() == pytest.approx(math.sqrt(a), abs=0.02)
    assert xt[:, 1].mean().item() == pytest.approx(0.0, abs=0.02)
    assert xt[:, 0].std().item() == pytest.approx(math.sqrt(1 - a), rel=0.03)


def test_posterior_mean_at_step_one_is_the_x0_prediction():
    sched = NoiseSchedule(4, 0.1, 0.01, 0.5)
    x_t, x0 = torch.randn(3, 6), torch.rand(3, 6)
    out = sched.posterior_mean(x_t, x0, torch.ones(3, dtype=torch.long))
    assert torch.allclose(out, x0, atol=1e-6)


def test_sinusoidal_embedding_values():
    emb = sinusoidal_step_embedding(torch.tensor([0, 3]), 4)
    assert emb[0].tolist() == pytest.approx([0.0, 1.0, 0.0, 1.0])
    # 10000^(2*1/4) = 100
    assert emb[1].tolist() == pytest.approx([math.sin(3), math.cos(3), math.sin(0.03), math.cos(0.03)], abs=1e-6)
    assert sinusoidal_step_embedding(torch.tensor([1]), 5).shape == (1, 5)
