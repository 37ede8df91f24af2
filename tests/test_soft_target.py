import scipy.sparse as sp
import torch

from mmrec_ld4mrec.ld4mrec.soft_target import sample_unclicked, soft_reconstruction_target


def _batch(n_users=200, n_items=300, clicks=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n_users, n_items)
    for u in range(n_users):
        x[u, torch.randperm(n_items, generator=g)[:clicks]] = 1.0
    csr = sp.csr_matrix(x.numpy())
    return x, torch.from_numpy(csr.indptr).long(), torch.from_numpy(csr.indices).long()


def test_soft_target_statistics():
    x, indptr, indices = _batch()
    p, gamma = 0.1, 0.05
    target = soft_reconstruction_target(x, indptr, indices, p, gamma, torch.Generator().manual_seed(1))
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
