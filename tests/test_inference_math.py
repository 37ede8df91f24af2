"""The k-step inference of Fig. 3 and the importance weighting of Eq. 8, each checked against
a closed form derived independently of the code (issue 18, items 3 and 4)."""

from __future__ import annotations

import math

import pytest
import torch

from mmrec_ld4mrec.ld4mrec.diffusion import NoiseSchedule
from mmrec_ld4mrec.ld4mrec.step_sampler import ImportanceStepSampler
from mmrec_ld4mrec.models import ld4mrec as ld4mrec_module

from .test_ld4mrec import build


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


def _record_k_step(model, monkeypatch):
    """Run k-step inference recording the corruption step, each denoising step and each x_0 handed to the posterior."""
    seen = {"corrupted_to": [], "denoised_at": [], "x0": []}
    q_sample, denoise, posterior = model.schedule.q_sample, model.denoise, model.schedule.posterior_mean

    def record_q(x0, t, noise=None):
        seen["corrupted_to"].append(sorted(set(t.tolist())))
        return q_sample(x0, t, noise)

    def record_denoise(x, t, users):
        seen["denoised_at"].append(sorted(set(t.tolist())))
        return denoise(x, t, users)

    def record_posterior(x_t, x0_pred, t):
        seen["x0"].append(x0_pred.clone())
        return posterior(x_t, x0_pred, t)

    monkeypatch.setattr(model.schedule, "q_sample", record_q)
    monkeypatch.setattr(model, "denoise", record_denoise)
    monkeypatch.setattr(model.schedule, "posterior_mean", record_posterior)
    model.eval()
    scores = model.full_sort_predict([torch.arange(12)])
    return seen, scores


@pytest.mark.parametrize("k", [1, 3, 5])
def test_k_step_inference_corrupts_to_k_then_walks_k_down_to_1(data_path, monkeypatch, k):
    model, _ = build(data_path, inference_steps=k, steps=5, loss="mse")
    seen, scores = _record_k_step(model, monkeypatch)
    assert seen["corrupted_to"] == [[k]]
    assert seen["denoised_at"] == [[s] for s in range(k, 0, -1)]
    assert scores.shape == (12, model.n_items) and torch.isfinite(scores).all()


def test_k_step_posterior_gets_x0_on_the_inputs_scale_under_the_multinomial_loss(data_path, monkeypatch):
    """With ``loss: multinomial`` the network outputs logits; the x_0 handed to the posterior is
    their softmax scaled to the input row's mass (the scale of x_t), not probabilities summing
    to 1. Under MSE it is the raw prediction."""
    multinomial, _ = build(data_path, inference_steps=3, steps=5, loss="multinomial", input_norm="l2")
    seen, _ = _record_k_step(multinomial, monkeypatch)
    mass = multinomial.rows.sparse(torch.arange(12), normalized=True).to_dense().sum(dim=1)
    assert (mass > 1.5).all()  # l2-normalised rows of several items: far from 1
    for x0 in seen["x0"]:
        assert torch.allclose(x0.sum(dim=1), mass, atol=1e-4) and (x0 >= 0).all()
    mse, _ = build(data_path, inference_steps=3, steps=5, loss="mse")
    seen, _ = _record_k_step(mse, monkeypatch)
    assert not torch.allclose(seen["x0"][0].sum(dim=1), torch.ones(12), atol=1e-3)


def test_calculate_loss_weights_each_user_by_its_importance_weight(data_path, monkeypatch):
    model, loader = build(data_path, steps=5)
    users = next(iter(loader))
    steps = torch.arange(len(users)) % 5 + 1
    weights = torch.linspace(0.2, 3.0, len(users))
    monkeypatch.setattr(model.step_sampler, "sample", lambda n, generator=None, inverse_cdf=False: (steps[:n], weights[:n]))
    captured = {}
    step_loss = ld4mrec_module.step_loss

    def capture(x_hat, target, kind):
        captured["per_user"] = step_loss(x_hat, target, kind)
        return captured["per_user"]

    monkeypatch.setattr(ld4mrec_module, "step_loss", capture)
    loss = model.calculate_loss(users)
    per_user = captured["per_user"].detach()
    assert loss.item() == pytest.approx((per_user * weights).mean().item(), rel=1e-5)
    assert loss.item() != pytest.approx(per_user.mean().item(), rel=1e-3)  # the weights matter here


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


def test_inference_study_ranks_one_trained_state_with_every_strategy(data_path, small_ld4mrec):
    from mmrec_ld4mrec.engine.quick_start import run

    result = run("LD4MRec", "synthetic", {"data_path": f"{data_path}/", **small_ld4mrec, "inference_study": [0, 2]})
    forward_free, two_step = result["inference_study"]
    assert (forward_free["inference_steps"], two_step["inference_steps"]) == (0, 2)
    # the forward-free strategy re-ranks the very state the run reports (its best epoch)
    assert forward_free["test"] == result["test"] and forward_free["valid"] == result["valid"]
    assert two_step["test"]["Recall@20"] != result["test"]["Recall@20"]


@pytest.mark.parametrize("study", [[0, 9], [1, 1], "2"])
def test_inference_study_steps_beyond_t_are_refused_before_training(data_path, small_ld4mrec, monkeypatch, study):
    from mmrec_ld4mrec.engine import quick_start
    from mmrec_ld4mrec.errors import ConfigError

    monkeypatch.setattr(quick_start.Trainer, "fit", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(ConfigError, match="inference_study"):
        quick_start.run("LD4MRec", "synthetic", {"data_path": f"{data_path}/", **small_ld4mrec, "steps": 5,
                                                 "inference_study": study})
