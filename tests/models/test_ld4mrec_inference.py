"""LD4MRec's k-step inference of Fig. 3 and the importance weighting of Eq. 8 in its loss (issue
18, items 3 and 4). The closed forms of the posterior and of the sampler:
tests/ld4mrec/test_inference_math.py."""

from __future__ import annotations

import pytest
import torch

from mmrec_ld4mrec.models import ld4mrec as ld4mrec_module


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
def test_k_step_inference_corrupts_to_k_then_walks_k_down_to_1(data_path, monkeypatch, k, build_ld4mrec):
    model, _ = build_ld4mrec(data_path, inference_steps=k, steps=5, loss="mse")
    seen, scores = _record_k_step(model, monkeypatch)
    assert seen["corrupted_to"] == [[k]]
    assert seen["denoised_at"] == [[s] for s in range(k, 0, -1)]
    assert scores.shape == (12, model.n_items) and torch.isfinite(scores).all()


def test_k_step_posterior_gets_x0_on_the_inputs_scale_under_the_multinomial_loss(data_path, monkeypatch, build_ld4mrec):
    """With ``loss: multinomial`` the network outputs logits; the x_0 handed to the posterior is
    their softmax scaled to the input row's mass (the scale of x_t), not probabilities summing
    to 1. Under MSE it is the raw prediction."""
    multinomial, _ = build_ld4mrec(data_path, inference_steps=3, steps=5, loss="multinomial", input_norm="l2")
    seen, _ = _record_k_step(multinomial, monkeypatch)
    mass = multinomial.rows.sparse(torch.arange(12), normalized=True).to_dense().sum(dim=1)
    assert (mass > 1.5).all()  # l2-normalised rows of several items: far from 1
    for x0 in seen["x0"]:
        assert torch.allclose(x0.sum(dim=1), mass, atol=1e-4) and (x0 >= 0).all()
    mse, _ = build_ld4mrec(data_path, inference_steps=3, steps=5, loss="mse")
    seen, _ = _record_k_step(mse, monkeypatch)
    assert not torch.allclose(seen["x0"][0].sum(dim=1), torch.ones(12), atol=1e-3)


def test_calculate_loss_weights_each_user_by_its_importance_weight(data_path, monkeypatch, build_ld4mrec):
    model, loader = build_ld4mrec(data_path, steps=5)
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
