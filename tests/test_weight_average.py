"""The weight average (``ema_decay``): off in the paper's reading; when on, LD4MRec ranks with
an exponential moving average of its weights that has seen every optimiser step, and trains
on its own weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.ld4mrec.settings import LD4MRecSettings, ld4mrec_settings
from mmrec_ld4mrec.ld4mrec.weight_average import WeightAverage

from .test_ld4mrec import build


def test_the_weight_average_is_off_in_the_papers_reading():
    assert LD4MRecSettings().ema_decay == 0.0


def test_the_average_warms_up_then_moves_by_one_minus_decay():
    net = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(net.weight)
    average = WeightAverage(net, decay=0.9)
    for target, d in [(1.0, 0.1), (2.0, 2 / 11), (3.0, 3 / 12)]:  # d = min(0.9, (1 + n) / (10 + n))
        before = average.shadow_0.clone()
        with torch.no_grad():
            net.weight.fill_(target)
        average.update(net)
        assert torch.allclose(average.shadow_0, d * before + (1 - d) * target)
    for _ in range(100):
        average.update(net)
    before = average.shadow_0.clone()
    with torch.no_grad():
        net.weight.fill_(10.0)
    average.update(net)
    assert torch.allclose(average.shadow_0, 0.9 * before + 0.1 * 10.0)  # the warm-up is over


def test_swapped_in_computes_with_the_average_and_gives_the_weights_back():
    net = nn.Linear(3, 1)
    average = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        average.shadow_0.fill_(2.0)
        average.shadow_1.fill_(-1.0)
    own = copy.deepcopy(net.state_dict())
    x = torch.ones(1, 3)
    with average.swapped_in(net):
        assert net(x).item() == pytest.approx(3 * 2.0 - 1.0)
    assert all(torch.equal(own[k], v) for k, v in net.state_dict().items())
    with pytest.raises(RuntimeError), average.swapped_in(net):
        raise RuntimeError("a ranking that fails")
    assert all(torch.equal(own[k], v) for k, v in net.state_dict().items())  # given back on failure too
    assert torch.all(average.shadow_0 == 2.0) and torch.all(average.shadow_1 == -1.0)  # the average is kept


def test_a_network_that_is_not_the_averaged_one_is_refused():
    average = WeightAverage(nn.Linear(2, 2), decay=0.5)
    with pytest.raises(ValueError, match="not the ones it was built on"):
        average.update(nn.Sequential(nn.Linear(2, 2)))


def test_ld4mrec_ranks_with_the_average_of_every_step_and_trains_on_its_weights(data_path):
    model, loader = build(data_path, ema_decay=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    expected = [p.detach().clone() for p in model.parameters()]  # the average, by hand: from the initial weights
    model.train()
    steps = 0
    for users in loader:
        optimizer.zero_grad()
        model.calculate_loss(users).backward()
        optimizer.step()
        d = min(0.5, (1 + steps) / (10 + steps))
        expected = [d * e + (1 - d) * p.detach() for e, p in zip(expected, model.parameters())]  # after the step
        steps += 1
    assert steps >= 2
    weights = copy.deepcopy({k: v for k, v in model.state_dict().items() if not k.startswith("weight_average")})
    model.eval()
    users = [torch.arange(6)]
    scores = model.full_sort_predict(users)
    # the last step was folded in at ranking: one update per optimiser step, each with the weights after it
    assert int(model.weight_average.updates) == steps
    assert all(torch.allclose(s, e, atol=1e-6) for s, e in zip(model.weight_average._shadows(), expected))
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items() if k in weights)
    reference, _ = build(data_path)  # the same model without the average, given the averaged weights
    averaged = dict(zip(model.weight_average.names, model.weight_average._shadows()))
    reference.load_state_dict({**reference.state_dict(), **averaged})
    reference.eval()
    assert torch.allclose(scores, reference.full_sort_predict(users), atol=1e-6)
    assert not torch.allclose(scores, model._rank(users), atol=1e-4)  # not the raw weights' ranking
    # the best-epoch state carries the average: loading it ranks as before
    state = copy.deepcopy(model.state_dict())
    assert any(k.startswith("weight_average.shadow_") for k in state)
    model.train()
    model.calculate_loss(next(iter(loader)))  # a batch whose step is never taken
    model.load_state_dict(state)
    model.eval()
    assert torch.allclose(model.full_sort_predict(users), scores)


@pytest.mark.parametrize("value", [1.0, -0.1, "high", True])
def test_a_bad_decay_names_the_key(value):
    with pytest.raises(ConfigError, match="config key 'ema_decay'"):
        ld4mrec_settings(lambda k: value if k == "ema_decay" else None)
