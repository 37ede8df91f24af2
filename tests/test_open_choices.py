"""The open-choice switches beyond the paper's reading (docs/model-quality.md): each is off by
default, changes what it says, and trains."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.quick_start import grid
from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.ld4mrec.cnet import CNet
from mmrec_ld4mrec.ld4mrec.loss import step_loss
from mmrec_ld4mrec.ld4mrec.settings import LD4MRecSettings, ld4mrec_settings
from mmrec_ld4mrec.models.base import config_get

from .test_ld4mrec import build


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


def test_every_switch_on_trains_and_predicts(data_path):
    model, loader = build(data_path, loss="multinomial", residual=True, input_dropout=0.5, inference_steps=2,
                          input_norm="l2")
    model.train()
    loss = model.calculate_loss(next(iter(loader)))
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    scores = model.full_sort_predict([torch.arange(4)])
    assert scores.shape == (4, model.n_items) and torch.isfinite(scores).all()


def test_l2_input_norm_scales_sparse_inference_rows_like_dense_training_rows(data_path):
    model, _ = build(data_path, input_norm="l2")
    users = torch.arange(6)
    sparse = model.rows.sparse(users, normalized=True)
    plain = model.rows.sparse(users)
    assert torch.allclose(sparse.to_dense(), F.normalize(plain.to_dense(), dim=1))
    dense = model.rows.dense(users, normalized=True)
    assert torch.equal(dense, sparse.to_dense())
    assert torch.equal(plain.to_dense(), torch.from_numpy(model.train_matrix[users.numpy()].toarray()))


def test_ld4mrec_runs_tuned_and_ld4mrecpaper_the_papers_reading(data_path):
    tuned = Config("LD4MRec", "synthetic", {"data_path": f"{data_path}/"})
    paper = Config("LD4MRecPaper", "synthetic", {"data_path": f"{data_path}/"})
    assert len(grid(tuned)) == 1 and len(grid(paper)) == 25
    point = {**{k: config_get(paper, k) for k in paper.to_dict()}, **grid(paper)[0]}
    assert ld4mrec_settings(point.get) == LD4MRecSettings(soft_prob=0.005, smooth=0.005)
    assert paper["weight_decay"] == 0.0 and paper["loss"] == "mse" and paper["residual"] is False
    assert tuned["loss"] == "multinomial" and tuned["residual"] is True
    assert {k: tuned[k] for k in ("steps", "embedding_size", "hidden_size", "use_cg", "use_pg", "use_soft_target")} \
        == {k: paper[k] for k in ("steps", "embedding_size", "hidden_size", "use_cg", "use_pg", "use_soft_target")}


def test_a_removed_option_is_refused_as_removed(data_path):
    with pytest.raises(ConfigError, match="'ema_decay'.*removed.*docs/findings.md") as caught:
        Config("LD4MRec", "synthetic", {"data_path": f"{data_path}/", "ema_decay": 0.99})
    assert caught.value.key == "ema_decay"
