"""LD4MRec with the content item graph on (open choice ``item_graph_k``): it trains and predicts,
turns itself off on a dataset without item features, and names the key of a value too large.
The graph's math is checked in tests/ld4mrec/test_item_graph.py."""

from __future__ import annotations

import pytest
import torch

from mmrec_ld4mrec.errors import ConfigError


def test_the_item_graph_trains_and_predicts(data_path, build_ld4mrec):
    model, loader = build_ld4mrec(data_path, item_graph_k=3, item_graph_weight=0.3, residual=True)
    graph = model.cnet.item_graph
    assert graph is not None and graph.graph.shape == (model.n_items, model.n_items) and graph.weight == 0.3
    assert graph.graph._nnz() <= 3 * model.n_items * model.n_modalities
    model.train()
    loss = model.calculate_loss(next(iter(loader)))
    loss.backward()
    assert torch.isfinite(loss) and model.cnet.fc_in.weight.grad is not None
    model.eval()
    scores = model.full_sort_predict([torch.arange(4)])
    assert scores.shape == (4, model.n_items) and torch.isfinite(scores).all()
    assert "cnet.item_graph.graph" not in model.state_dict()  # rebuilt from features, not saved


def test_the_item_graph_on_a_dataset_without_features_is_off_with_a_warning_naming_it(data_path, caplog, build_ld4mrec):
    """One configuration runs on TikTok and on MovieLens-1M: without item features the content
    graph has nothing to read and is turned off, as the PG blocks are left out."""
    with caplog.at_level("WARNING", logger="mmrec_ld4mrec.models.ld4mrec"):
        model, loader = build_ld4mrec(data_path, item_graph_k=3, vision_feature_file="", text_feature_file="",
                                      is_multimodal_model=False)
    assert "item_graph_k" in caplog.text and "no item features" in caplog.text
    assert model.settings.item_graph_k == 0 and model.cnet.item_graph is None
    assert torch.isfinite(model.calculate_loss(next(iter(loader))))
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmrec_ld4mrec.models.ld4mrec"):
        build_ld4mrec(data_path, item_graph_k=0, vision_feature_file="", text_feature_file="", is_multimodal_model=False)
    assert not [r for r in caplog.records if r.name == "mmrec_ld4mrec.models.ld4mrec"]  # graph off: no word


def test_item_graph_with_as_many_neighbours_as_items_names_the_key(data_path, build_ld4mrec):
    with pytest.raises(ConfigError, match="'item_graph_k': expected fewer than"):
        build_ld4mrec(data_path, item_graph_k=100_000)
