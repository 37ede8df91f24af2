import pytest
import scipy.sparse as sp
import torch

from mmrec_ld4mrec.ld4mrec.soft_target import (
    sample_unclicked,
    soft_reconstruction_target,
    soft_reconstruction_target_padded,
)
from mmrec_ld4mrec.models.rows import DeviceRows


def _batch(n_users=200, n_items=300, clicks=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n_users, n_items)
    for u in range(n_users):
        x[u, torch.randperm(n_items, generator=g)[:clicks]] = 1.0
    csr = sp.csr_matrix(x.numpy())
    return x, torch.from_numpy(csr.indptr).long(), torch.from_numpy(csr.indices).long()


def _padded_target(x, indptr, indices, p, gamma, generator):
    rows = DeviceRows(sp.csr_matrix(x.numpy()), "cpu")
    cols, valid = rows.padded(torch.arange(x.shape[0]))
    return soft_reconstruction_target_padded(x, cols, valid, p, gamma, generator)


@pytest.mark.parametrize("draw", [soft_reconstruction_target, _padded_target], ids=["compact", "static-shapes"])
def test_soft_target_statistics(draw):
    x, indptr, indices = _batch()
    p, gamma = 0.1, 0.05
    target = draw(x, indptr, indices, p, gamma, torch.Generator().manual_seed(1))
    clicked, unclicked = x == 1, x == 0
    softened = clicked & (target != 1)
    raised = unclicked & (target != 0)
    assert torch.all(target[softened] == 1 - gamma)
    assert torch.allclose(target[raised], torch.tensor(gamma))
    # each clicked / unclicked item is chosen independently with probability p
    assert abs(softened.sum().item() / clicked.sum().item() - p) < 0.015
    assert abs(raised.sum().item() / unclicked.sum().item() - p) < 0.005


def test_zero_probability_gives_the_observed_row():
    x, indptr, indices = _batch(n_users=5)
    assert torch.equal(soft_reconstruction_target(x, indptr, indices, 0.0, 0.3), x)
    assert torch.equal(_padded_target(x, indptr, indices, 0.0, 0.3, None), x)


def test_static_shape_target_treats_every_item_alike():
    # per-item rates of S1 and S0 over many draws: no item (padding's repeated columns
    # included) is favoured
    x, indptr, indices = _batch(n_users=40, n_items=30, clicks=8)
    g = torch.Generator().manual_seed(5)
    s1, s0 = torch.zeros_like(x), torch.zeros_like(x)
    for _ in range(500):
        target = _padded_target(x, indptr, indices, 0.3, 0.1, g)
        s1 += (x == 1) & (target != 1)
        s0 += (x == 0) & (target != 0)
    clicked_rate, unclicked_rate = s1[x == 1] / 500, s0[x == 0] / 500
    assert abs(clicked_rate.mean().item() - 0.3) < 0.01 and abs(unclicked_rate.mean().item() - 0.3) < 0.01
    assert clicked_rate.min().item() > 0.2 and clicked_rate.max().item() < 0.4
    assert unclicked_rate.min().item() > 0.2 and unclicked_rate.max().item() < 0.4


def test_unclicked_sample_is_distinct_unclicked_and_uniform():
    x, indptr, indices = _batch(n_users=50, n_items=40, clicks=10)
    g = torch.Generator().manual_seed(3)
    counts = torch.zeros(50, 40)
    for _ in range(400):
        rows, items = sample_unclicked(indptr, indices, 40, 0.3, g)
        assert torch.all(x[rows, items] == 0)
        pairs = rows * 40 + items
        assert pairs.unique().numel() == pairs.numel()
        counts[rows, items] += 1
    rate = counts[x == 0] / 400
    assert abs(rate.mean().item() - 0.3) < 0.01
    assert rate.min().item() > 0.2 and rate.max().item() < 0.4
