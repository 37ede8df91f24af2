import pytest
import torch

from mmrec_ld4mrec.ld4mrec.step_sampler import ImportanceStepSampler


def test_uniform_until_every_step_has_a_full_history():
    s = ImportanceStepSampler(steps=4, history=10)
    t, w = s.sample(1000, torch.Generator().manual_seed(0))
    assert set(t.tolist()) == {1, 2, 3, 4}
    assert torch.all(w == 1.0)
    s.update(torch.tensor([1] * 10 + [2] * 10 + [3] * 10 + [4] * 9), torch.ones(39))
    assert not s.warmed_up
    assert torch.allclose(s.probabilities(), torch.full((4,), 0.25, dtype=torch.float64))


def test_importance_weights_after_warm_up():
    s = ImportanceStepSampler(steps=3, history=10, uniform_mix=1e-3)
    losses = {1: 0.1, 2: 0.2, 3: 0.4}
    for step, loss in losses.items():
        s.update(torch.full((10,), step), torch.full((10,), loss))
    assert s.warmed_up
    p = s.probabilities()
    raw = torch.tensor([0.1, 0.2, 0.4], dtype=torch.float64) / 0.7
    assert torch.allclose(p, raw * (1 - 1e-3) + 1e-3 / 3)
    t, w = s.sample(500, torch.Generator().manual_seed(0))
    assert torch.allclose(w.double(), 1.0 / (3 * p[t - 1]), rtol=1e-6)
    assert (t == 3).float().mean() > (t == 1).float().mean()


def test_history_keeps_the_newest_values_and_is_model_state():
    s = ImportanceStepSampler(steps=2, history=3)
    s.update(torch.tensor([1, 1, 1, 1, 1]), torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert s.loss_history[0].tolist() == pytest.approx([3.0, 4.0, 5.0])
    state = s.state_dict()
    assert "loss_history" in state and "history_count" in state
    fresh = ImportanceStepSampler(steps=2, history=3)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.loss_history, s.loss_history)


def _reference_update(hist: list[list[float]], step_losses: list[tuple[int, float]], history: int) -> list[list[float]]:
    """The history rule written plainly: each step's losses extend its list, the newest ``history`` stay."""
    for step, loss in step_losses:
        hist[step - 1] = (hist[step - 1] + [loss])[-history:]
    return hist


def test_vectorised_update_keeps_the_newest_losses_of_each_step_in_order():
    gen = torch.Generator().manual_seed(4)
    s = ImportanceStepSampler(steps=4, history=5)
    plain: list[list[float]] = [[] for _ in range(4)]
    for batch in (3, 17, 1, 40, 9):  # partial, overflowing and single-sample batches
        t = torch.randint(1, 5, (batch,), generator=gen)
        losses = torch.rand(batch, generator=gen, dtype=torch.float64)
        s.update(t, losses)
        plain = _reference_update(plain, list(zip(t.tolist(), losses.tolist())), 5)
        for step in range(4):
            n = len(plain[step])
            assert int(s.history_count[step]) == n
            assert s.loss_history[step, :n].tolist() == pytest.approx(plain[step])
            assert s.loss_history[step, n:].abs().sum() == 0


def test_inverse_cdf_draws_the_same_distribution_as_multinomial():
    s = ImportanceStepSampler(steps=3, history=10, uniform_mix=1e-3)
    for step, loss in {1: 0.1, 2: 0.2, 3: 0.4}.items():
        s.update(torch.full((10,), step), torch.full((10,), loss))
    p = s.probabilities()
    t, w = s.sample(60_000, torch.Generator().manual_seed(0), inverse_cdf=True)
    assert t.min() >= 1 and t.max() <= 3
    freq = torch.bincount(t - 1, minlength=3).double() / len(t)
    assert torch.allclose(freq, p, atol=0.01)
    assert torch.allclose(w.double(), 1.0 / (3 * p[t - 1]), rtol=1e-6)
