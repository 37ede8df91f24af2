"""The content-aware open choices (issue 17): the content kNN item graph, content-aware FC_in
weights, input activation, standardised c_u and training at step 0. Each is off in the paper's reading, does what its
docstring says, and trains."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.ld4mrec.cnet import CNet, ItemGraph, ItemInput, ItemOutput
from mmrec_ld4mrec.ld4mrec.item_graph import (
    build_item_graph,
    content_item_graph,
    interaction_item_graph,
    knn_adjacency,
    to_torch_sparse,
)
from mmrec_ld4mrec.ld4mrec.settings import LD4MRecSettings, ld4mrec_settings
from mmrec_ld4mrec.ld4mrec.signals import standardized_columns

from .test_ld4mrec import build


def test_content_choices_are_off_in_the_papers_reading():
    s = LD4MRecSettings()
    assert (s.input_activation, s.collab_scale, s.item_graph_k, s.step_zero_prob) == (False, "none", 0, 0.0)
    assert s.item_features_input is False


def test_content_input_weights_are_w_plus_the_mapped_features_and_start_as_the_plain_layer():
    torch.manual_seed(0)
    kw = dict(n_items=9, embedding_size=8, hidden_size=4, step_dim=2, collab_dim=3, pref_dims=[5, 3])
    feats = [torch.randn(9, 5), torch.randn(9, 3)]
    plain, content = CNet(**kw), CNet(**kw, input_feature_dims=[5, 3])
    missing, unexpected = content.load_state_dict(plain.state_dict(), strict=False)  # projections stay at zero
    assert sorted(missing) == ["fc_in.projections.0.weight", "fc_in.projections.1.weight"] and not unexpected
    x, e, c, p = torch.rand(2, 9), torch.randn(2, 2), torch.randn(2, 3), [torch.randn(2, 5), torch.randn(2, 3)]
    assert torch.allclose(content(x, e, c, p, feats), plain(x, e, c, p), atol=1e-6)
    for proj in content.fc_in.projections:
        torch.nn.init.normal_(proj.weight)
    P0, P1 = (proj.weight.T for proj in content.fc_in.projections)
    w_in = plain.fc_in.weight + feats[0] @ P0 + feats[1] @ P1
    assert torch.allclose(content.fc_in(x, None, feats), x @ w_in + plain.fc_in.bias, atol=1e-4)
    assert torch.allclose(content.fc_in(x.to_sparse(), None, feats), x @ w_in + plain.fc_in.bias, atol=1e-4)
    assert len(content.fc_out.projections) == 0  # FC_out stays plain: item_features is its own switch
    content(x, e, c, p, feats).sum().backward()
    assert all(proj.weight.grad.abs().sum() > 0 for proj in content.fc_in.projections)


def test_knn_adjacency_marks_the_k_most_cosine_similar_other_items():
    f = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7], [0.0, 0.0]])
    A = knn_adjacency(f, k=1).toarray()
    assert A[0].tolist() == [0, 1, 0, 0, 0, 0] and A[2].tolist() == [0, 0, 0, 1, 0, 0]
    assert np.all(np.diag(A) == 0)  # never itself
    assert A[5].sum() == 0 and A[:, 5].sum() == 0  # an item without features has no neighbours
    # chunked similarities give the same graph
    assert (knn_adjacency(f, k=2, chunk=2) != knn_adjacency(f, k=2)).nnz == 0
    # a featureless item is never picked, even over a neighbour of negative similarity
    assert knn_adjacency(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]]), k=1).toarray()[0].tolist() == [0, 1, 0]


def test_content_graph_averages_the_normalised_modality_graphs():
    rng = np.random.default_rng(0)
    feats = [rng.random((20, 5)), rng.random((20, 3))]
    S = content_item_graph(feats, k=3)
    singles = []
    for f in feats:
        A = knn_adjacency(f, 3)
        dr, dc = np.asarray(A.sum(1)).ravel(), np.asarray(A.sum(0)).ravel()
        inv_c = np.divide(1, np.sqrt(dc), out=np.zeros_like(dc), where=dc > 0)
        singles.append(sp.diags(1 / np.sqrt(dr)) @ A @ sp.diags(inv_c))
    assert np.allclose(S.toarray(), (singles[0] + singles[1]).toarray() / 2)
    with pytest.raises(ValueError, match="item_graph_k"):
        knn_adjacency(feats[0], k=20)


def test_interaction_graph_links_items_that_share_users_and_only_those():
    # users x items: items 0 and 1 share users 0 and 1; item 2 shares user 1 with both; item 3
    # has a user of its own only; item 4 has no training interaction
    X = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=np.float32))
    A = knn_adjacency(X.T, k=1).toarray()
    assert A[0].tolist() == [0, 1, 0, 0, 0] and A[1].tolist() == [1, 0, 0, 0, 0]
    assert A[2].sum() == 1 and A[2, 2] == 0  # one neighbour among the items it shares user 1 with
    assert A[3].sum() == 0 and A[:, 3].sum() == 0  # no shared user: no neighbour, even with k left over
    assert A[4].sum() == 0 and A[:, 4].sum() == 0
    # the sparse path equals the dense one on the same rows
    dense = knn_adjacency(X.T.toarray(), k=2).toarray()
    sparse = knn_adjacency(X.T, k=2, chunk=2).toarray()
    assert np.array_equal(sparse[:3], dense[:3])
    S = interaction_item_graph(X, k=2)
    assert np.allclose(S.toarray(), normalized(knn_adjacency(X.T, 2)).toarray())
    both = build_item_graph("both", [np.eye(5)[:, :3] + 0.1], X, k=2)
    assert np.allclose(both.toarray(), (content_item_graph([np.eye(5)[:, :3] + 0.1], 2) + S).toarray() / 2)
    with pytest.raises(ValueError, match="item_graph_source"):
        build_item_graph("users", [], X, k=2)


def normalized(A: sp.spmatrix) -> sp.spmatrix:
    dr, dc = np.asarray(A.sum(1)).ravel(), np.asarray(A.sum(0)).ravel()
    inv_r = np.divide(1, np.sqrt(dr), out=np.zeros_like(dr), where=dr > 0)
    inv_c = np.divide(1, np.sqrt(dc), out=np.zeros_like(dc), where=dc > 0)
    return sp.diags(inv_r) @ A @ sp.diags(inv_c)


def test_item_graph_gives_fc_in_and_fc_out_their_neighbours_weights():
    torch.manual_seed(0)
    S = sp.random(9, 9, density=0.3, random_state=1, format="csr")
    graph = ItemGraph(to_torch_sparse(S, "cpu"), weight=0.5)
    kw = dict(n_items=9, embedding_size=8, hidden_size=4, step_dim=2, collab_dim=3, pref_dims=[5])
    plain, with_graph = CNet(**kw), CNet(**kw, item_graph=graph)
    with_graph.load_state_dict(plain.state_dict())  # the graph is a non-persistent buffer: same keys
    S_t = torch.from_numpy(S.toarray()).float()
    x = torch.rand(2, 9)
    w_in = plain.fc_in.weight + 0.5 * S_t @ plain.fc_in.weight
    assert torch.allclose(with_graph.fc_in(x, graph), x @ w_in + plain.fc_in.bias, atol=1e-5)
    h = torch.randn(2, 8)
    w_out = plain.fc_out.weight + 0.5 * S_t @ plain.fc_out.weight
    assert torch.allclose(with_graph.fc_out(h, (), graph), h @ w_out.T + plain.fc_out.bias, atol=1e-5)
    assert torch.allclose(with_graph.fc_in(x.to_sparse(), graph), x @ w_in + plain.fc_in.bias, atol=1e-5)
    # a batch of B >= d rows takes the product on the weights, B < d on the rows / scores: the same result
    x_big, h_big = torch.rand(10, 9), torch.randn(10, 8)
    assert torch.allclose(with_graph.fc_in(x_big, graph), x_big @ w_in + plain.fc_in.bias, atol=1e-5)
    assert torch.allclose(with_graph.fc_out(h_big, (), graph), h_big @ w_out.T + plain.fc_out.bias, atol=1e-5)
    # the whole network is the plain one with both item-weight matrices replaced by W + w S W
    e, c, p = torch.randn(2, 2), torch.randn(2, 3), [torch.randn(2, 5)]
    state = plain.state_dict()
    state["fc_in.weight"], state["fc_out.weight"] = w_in.detach(), w_out.detach()
    plain.load_state_dict(state)
    assert torch.allclose(with_graph(x, e, c, p), plain(x, e, c, p), atol=1e-5)
    with_graph(x, e, c, p).sum().backward()
    assert with_graph.fc_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("batch", [3, 12])  # B < d: the product on the batch; B >= d: on the weights
def test_item_graph_gradients_match_the_dense_reference_on_either_path(batch):
    torch.manual_seed(0)
    S = sp.random(9, 9, density=0.3, random_state=2, format="csr")
    S_t = torch.from_numpy(S.toarray()).float()
    graph = ItemGraph(to_torch_sparse(S, "cpu"), weight=0.7)
    fc_in, fc_out = ItemInput(9, 8), ItemOutput(9, 8)
    x, h = torch.rand(batch, 9), torch.randn(batch, 8, requires_grad=True)
    (fc_in(x, graph).square().sum() + fc_out(h, (), graph).square().sum()).backward()
    got = [fc_in.weight.grad, fc_in.bias.grad, fc_out.weight.grad, fc_out.bias.grad, h.grad]
    w_in, w_out = (fc.weight.detach().clone().requires_grad_() for fc in (fc_in, fc_out))
    b_in, b_out = (fc.bias.detach().clone().requires_grad_() for fc in (fc_in, fc_out))
    h_ref = h.detach().clone().requires_grad_()
    ref_in = x @ (w_in + 0.7 * S_t @ w_in) + b_in
    ref_out = h_ref @ (w_out + 0.7 * S_t @ w_out).T + b_out
    (ref_in.square().sum() + ref_out.square().sum()).backward()
    for g, r in zip(got, [w_in.grad, b_in.grad, w_out.grad, b_out.grad, h_ref.grad], strict=True):
        assert torch.allclose(g, r, atol=1e-4)


def test_input_activation_activates_fc_in_once_with_or_without_the_residual():
    torch.manual_seed(0)
    kw = dict(n_items=9, embedding_size=8, hidden_size=4, step_dim=2, collab_dim=3, pref_dims=[])
    x, e, c = torch.rand(2, 9), torch.randn(2, 2), torch.randn(2, 3)
    for residual in (False, True):
        plain, act = CNet(**kw, residual=residual), CNet(**kw, residual=residual, input_activation=True)
        act.load_state_dict(plain.state_dict())
        h_in = torch.tanh(plain.fc_in(x))
        h = plain.cg_out(plain.cg_in(h_in, e, c), e, c)
        if residual:
            h = h + h_in
        assert torch.allclose(act(x, e, c, []), plain.fc_out(h), atol=1e-5)


def test_standardized_columns_have_zero_mean_and_unit_std():
    rng = np.random.default_rng(0)
    signal = np.hstack([rng.normal(3.0, 0.01, (50, 4)), np.ones((50, 1))])
    out = standardized_columns(signal)
    assert np.allclose(out[:, :4].mean(0), 0, atol=1e-5) and np.allclose(out[:, :4].std(0), 1, atol=1e-4)
    assert np.all(out[:, 4] == 0)  # a constant column carries nothing


def test_every_content_choice_on_trains_and_predicts(data_path):
    model, loader = build(data_path, item_graph_k=3, item_graph_weight=0.3, input_activation=True,
                          collab_scale="standard", step_zero_prob=0.5, residual=True, item_features_input=True)
    assert len(model.cnet.fc_in.projections) == model.n_modalities == 2
    graph = model.cnet.item_graph
    assert graph is not None and graph.graph.shape == (model.n_items, model.n_items) and graph.weight == 0.3
    assert graph.graph._nnz() <= 3 * model.n_items * model.n_modalities
    assert np.allclose(model.collab_signal.mean(0).numpy(), 0, atol=1e-4)
    model.train()
    loss = model.calculate_loss(next(iter(loader)))
    loss.backward()
    assert torch.isfinite(loss) and model.cnet.fc_in.weight.grad is not None
    assert model.cnet.fc_in.projections[0].weight.grad is not None
    assert int(model.step_sampler.history_count.sum()) < len(next(iter(loader)))  # t = 0 rows stay out of Eq. 8
    model.eval()
    scores = model.full_sort_predict([torch.arange(4)])
    assert scores.shape == (4, model.n_items) and torch.isfinite(scores).all()
    assert "cnet.item_graph.graph" not in model.state_dict()  # rebuilt from features, not saved


def test_step_zero_rows_see_the_row_inference_sees_at_step_zero_with_weight_one(data_path, monkeypatch):
    model, loader = build(data_path, step_zero_prob=1.0 - 1e-9, input_dropout=0.5, input_norm="l2")
    sampler = model.step_sampler  # warmed up on unequal losses: its importance weights are not 1
    sampler.history_count.fill_(sampler.history)
    sampler.loss_history.copy_(torch.rand_like(sampler.loss_history) * torch.arange(1, sampler.steps + 1).unsqueeze(1))
    seen = {}
    model.denoise = lambda x, t, users: seen.update(x=x, t=t) or torch.zeros(len(users), model.n_items,
                                                                             requires_grad=True)
    per_user = {}
    import mmrec_ld4mrec.models.ld4mrec as module

    def fake_loss(x_hat, target, kind):
        per_user["v"] = torch.rand(len(x_hat))
        return per_user["v"]

    monkeypatch.setattr(module, "step_loss", fake_loss)
    users = next(iter(loader))
    loss = model.calculate_loss(users)
    assert torch.all(seen["t"] == 0)
    # the row inference ranks from: l2-normalised, no dropout, no noise
    assert torch.allclose(seen["x"], model.rows.dense(users, normalized=True))
    assert torch.allclose(loss, per_user["v"].mean())  # weight 1, not the sampler's 1 / (T p_t)


@pytest.mark.parametrize("key, value", [("item_features_input", 1), ("item_graph_k", -1), ("item_graph_weight", -0.1),
                                        ("collab_scale", "sigma"), ("item_graph_source", "users"),
                                        ("input_activation", "yes"), ("step_zero_prob", 1.0)])
def test_bad_content_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        ld4mrec_settings(lambda k: value if k == key else None)


def test_content_choices_on_a_dataset_without_features_are_off_with_a_warning_naming_them(data_path, caplog):
    """One configuration runs on TikTok and on MovieLens-1M: without item features the content
    switches have nothing to read and are turned off, as the PG blocks are left out."""
    on = {"item_graph_k": 3, "item_features": True, "item_features_input": True}
    with caplog.at_level("WARNING", logger="mmrec_ld4mrec.models.ld4mrec"):
        model, loader = build(data_path, **on, vision_feature_file="", text_feature_file="", is_multimodal_model=False)
    assert all(k in caplog.text for k in on) and "no item features" in caplog.text
    s = model.settings
    assert (s.item_graph_k, s.item_features, s.item_features_input) == (0, False, False)
    assert model.cnet.item_graph is None and not model.cnet.fc_in.projections and not model.cnet.fc_out.projections
    assert torch.isfinite(model.calculate_loss(next(iter(loader))))
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmrec_ld4mrec.models.ld4mrec"):
        build(data_path, item_graph_k=0, vision_feature_file="", text_feature_file="", is_multimodal_model=False)
    assert not [r for r in caplog.records if r.name == "mmrec_ld4mrec.models.ld4mrec"]  # switches off: no word


def test_an_interaction_graph_stays_on_a_dataset_without_features(data_path, caplog):
    plain = dict(vision_feature_file="", text_feature_file="", is_multimodal_model=False)
    with caplog.at_level("WARNING", logger="mmrec_ld4mrec.models.ld4mrec"):
        model, loader = build(data_path, item_graph_k=3, item_graph_source="interactions", **plain)
    assert not [r for r in caplog.records if r.name == "mmrec_ld4mrec.models.ld4mrec"]
    assert model.settings.item_graph_k == 3 and model.cnet.item_graph is not None
    assert torch.isfinite(model.calculate_loss(next(iter(loader))))
    caplog.clear()
    with caplog.at_level("WARNING", logger="mmrec_ld4mrec.models.ld4mrec"):
        model, _ = build(data_path, item_graph_k=3, item_graph_source="both", **plain)
    assert "interaction graph only" in caplog.text
    assert model.settings.item_graph_source == "interactions" and model.cnet.item_graph is not None


def test_item_graph_with_as_many_neighbours_as_items_names_the_key(data_path):
    with pytest.raises(ConfigError, match="'item_graph_k': expected fewer than"):
        build(data_path, item_graph_k=100_000)
