"""LD4MRec with the open-choice switches beyond the paper's reading (docs/findings.md): with
each on it trains and predicts, and LD4MRec runs the tuned switches while LD4MRecPaper keeps the
paper's reading. The switches themselves: tests/ld4mrec/test_open_choices.py."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.quick_start import grid
from mmrec_ld4mrec.ld4mrec.settings import LD4MRecSettings, ld4mrec_settings
from mmrec_ld4mrec.models.base import config_get


def test_every_switch_on_trains_and_predicts(data_path, build_ld4mrec):
    model, loader = build_ld4mrec(data_path, loss="multinomial", residual=True, input_dropout=0.5, inference_steps=2,
                                  input_norm="l2")
    model.train()
    loss = model.calculate_loss(next(iter(loader)))
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    scores = model.full_sort_predict([torch.arange(4)])
    assert scores.shape == (4, model.n_items) and torch.isfinite(scores).all()


def test_l2_input_norm_scales_sparse_inference_rows_like_dense_training_rows(data_path, build_ld4mrec):
    model, _ = build_ld4mrec(data_path, input_norm="l2")
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
