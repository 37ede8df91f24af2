"""The open-choice switches beyond the paper's reading (docs/findings.md): each is off by
default and changes what it says. That LD4MRec trains with them: tests/models/test_ld4mrec_open_choices.py."""

from __future__ import annotations

import pytest
import torch

from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.ld4mrec.cnet import CNet
from mmrec_ld4mrec.ld4mrec.loss import step_loss
from mmrec_ld4mrec.ld4mrec.settings import LD4MRecSettings, ld4mrec_settings


def test_defaults_are_the_papers_reading():
    s = LD4MRecSettings()
    assert (s.loss, s.input_norm, s.residual, s.input_dropout) == ("mse", "none", False, 0.0)


def test_mse_is_eq5_and_multinomial_is_the_softmax_likelihood():
    x_hat, target = torch.randn(3, 7), torch.rand(3, 7)
    assert torch.allclose(step_loss(x_hat, target), ((x_hat - target) ** 2).mean(1))
    expected = torch.stack([-(target[u] * torch.log(torch.softmax(x_hat[u], 0))).sum() for u in range(3)])
    assert torch.allclose(step_loss(x_hat, target, "multinomial"), expected, atol=1e-5)
    # shifting every logit of a user leaves the multinomial loss unchanged (ranking-only)
    assert torch.allclose(step_loss(x_hat + 5.0, target, "multinomial"), expected, atol=1e-4)


def test_residual_adds_the_skip_and_only_that():
    torch.manual_seed(0)
    kw = dict(n_items=9, embedding_size=8, hidden_size=4, step_dim=2, collab_dim=3, pref_dims=[5])
    plain, skip = CNet(**kw), CNet(**kw, residual=True)
    skip.load_state_dict(plain.state_dict())
    x, e, c, p = torch.rand(2, 9), torch.randn(2, 2), torch.randn(2, 3), [torch.randn(2, 5)]
    extra = skip.fc_out.weight @ torch.tanh(plain.fc_in(x)).T
    assert torch.allclose(skip(x, e, c, p) - plain(x, e, c, p), extra.T, atol=1e-5)


@pytest.mark.parametrize("key, value", [("loss", "bpr"), ("residual", "yes"), ("input_norm", "l1"),
                                        ("input_dropout", float("nan"))])
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        ld4mrec_settings(lambda k: value if k == key else None)


