"""The content item graph (open choice ``item_graph_k``): off in the paper's reading and does what
its docstrings say. That LD4MRec trains with it: tests/models/test_ld4mrec_item_graph.py."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.ld4mrec.cnet import CNet, ItemGraph, ItemInput, ItemOutput
from mmrec_ld4mrec.ld4mrec.item_graph import content_item_graph, knn_adjacency, to_torch_sparse
from mmrec_ld4mrec.ld4mrec.settings import LD4MRecSettings, ld4mrec_settings


def test_the_item_graph_is_off_in_the_papers_reading():
    assert LD4MRecSettings().item_graph_k == 0


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
    assert torch.allclose(with_graph.fc_out(h, graph), h @ w_out.T + plain.fc_out.bias, atol=1e-5)
    assert torch.allclose(with_graph.fc_in(x.to_sparse(), graph), x @ w_in + plain.fc_in.bias, atol=1e-5)
    # a batch of B >= d rows takes the product on the weights, B < d on the rows / scores: the same result
    x_big, h_big = torch.rand(10, 9), torch.randn(10, 8)
    assert torch.allclose(with_graph.fc_in(x_big, graph), x_big @ w_in + plain.fc_in.bias, atol=1e-5)
    assert torch.allclose(with_graph.fc_out(h_big, graph), h_big @ w_out.T + plain.fc_out.bias, atol=1e-5)
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
    (fc_in(x, graph).square().sum() + fc_out(h, graph).square().sum()).backward()
    got = [fc_in.weight.grad, fc_in.bias.grad, fc_out.weight.grad, fc_out.bias.grad, h.grad]
    w_in, w_out = (fc.weight.detach().clone().requires_grad_() for fc in (fc_in, fc_out))
    b_in, b_out = (fc.bias.detach().clone().requires_grad_() for fc in (fc_in, fc_out))
    h_ref = h.detach().clone().requires_grad_()
    ref_in = x @ (w_in + 0.7 * S_t @ w_in) + b_in
    ref_out = h_ref @ (w_out + 0.7 * S_t @ w_out).T + b_out
    (ref_in.square().sum() + ref_out.square().sum()).backward()
    for g, r in zip(got, [w_in.grad, b_in.grad, w_out.grad, b_out.grad, h_ref.grad], strict=True):
        assert torch.allclose(g, r, atol=1e-4)


@pytest.mark.parametrize("key, value", [("item_graph_k", -1), ("item_graph_k", 2.5), ("item_graph_weight", -0.1)])
def test_bad_item_graph_values_name_the_key(key, value):
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        ld4mrec_settings(lambda k: value if k == key else None)




def test_ranking_folds_the_graph_into_the_weights_once_until_they_change():
    """While ranking (eval mode, no gradients) W + w S W is kept across batches; an optimiser step
    (fused Adam leaves W's version counter alone), a load and a switch of mode each give a fresh
    product; in training mode and under inference_mode it is never kept."""
    torch.manual_seed(0)
    S = sp.random(9, 9, density=0.3, random_state=3, format="csr")
    S_t = torch.from_numpy(S.toarray()).float()
    graph = ItemGraph(to_torch_sparse(S, "cpu"), weight=0.5)
    fc_out = ItemOutput(9, 4)
    expected = lambda: fc_out.weight + 0.5 * S_t @ fc_out.weight  # noqa: E731
    with torch.no_grad():
        assert graph(fc_out.weight) is not graph(fc_out.weight)  # training mode: never kept
    graph.eval()
    with torch.no_grad():
        first = graph(fc_out.weight)
        assert graph(fc_out.weight) is first and torch.allclose(first, expected(), atol=1e-6)
    optimizer = torch.optim.Adam(fc_out.parameters(), lr=0.1, fused=True)
    fc_out(torch.randn(12, 4), graph).sum().backward()  # B >= d: the product on the weights, with gradients
    optimizer.step()
    with torch.no_grad():
        after_step = graph(fc_out.weight)
        assert after_step is not first and torch.allclose(after_step, expected(), atol=1e-6)
        fc_out.load_state_dict({"weight": torch.randn(9, 4), "bias": torch.zeros(9)})
        assert torch.allclose(graph(fc_out.weight), expected(), atol=1e-6)
        kept = graph(fc_out.weight)
        graph.eval()
        assert graph(fc_out.weight) is not kept
    with torch.inference_mode():
        assert torch.allclose(graph(fc_out.weight), expected(), atol=1e-6)
