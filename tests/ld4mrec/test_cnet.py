import torch
from torch import nn

from mmrec_ld4mrec.ld4mrec.cnet import CGBlock, CNet, ItemInput, PGBlock


def test_cg_gate_extremes_select_behaviour_or_collaboration():
    torch.manual_seed(0)
    block = CGBlock(in_dim=6, out_dim=4, step_dim=3, collab_dim=5)
    h, e, c = torch.randn(2, 6), torch.randn(2, 3), torch.randn(2, 5)
    a = torch.tanh(block.behaviour(torch.cat([h, e], dim=-1)))
    collab = torch.tanh(block.collab(c))
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.bias.fill_(50.0)  # g -> 1: only the individual behaviour (Eq. 18)
    assert torch.allclose(block(h, e, c), a, atol=1e-6)
    with torch.no_grad():
        block.gate.bias.fill_(-50.0)  # g -> 0: only the collaborative signal (Eq. 19)
    assert torch.allclose(block(h, e, c), collab, atol=1e-6)
    with torch.no_grad():
        block.gate.bias.fill_(0.0)  # g = 1/2
    assert torch.allclose(block(h, e, c), 0.5 * a + 0.5 * collab, atol=1e-6)


def _make_identity(pg: PGBlock) -> None:
    with torch.no_grad():
        for film in pg.films:
            film.gamma[-1].weight.zero_()
            film.gamma[-1].bias.fill_(1.0)
            film.beta[-1].weight.zero_()
            film.beta[-1].bias.zero_()


def test_pg_is_identity_when_gamma_is_one_and_beta_zero():
    pg = PGBlock([7], hidden=5)
    _make_identity(pg)
    h = torch.randn(3, 5)
    assert torch.allclose(pg(h, [torch.randn(3, 7)]), h)
    two = PGBlock([7, 4], hidden=5)
    _make_identity(two)
    h_pos = torch.rand(3, 5)  # the LeakyReLU between modalities is identity on positives
    assert torch.allclose(two(h_pos, [torch.randn(3, 7), torch.randn(3, 4)]), h_pos)
    h_neg = -torch.rand(3, 5)
    assert torch.allclose(two(h_neg, [torch.randn(3, 7), torch.randn(3, 4)]), nn.LeakyReLU()(h_neg))


def test_pg_applies_film():
    pg = PGBlock([2], hidden=3)
    with torch.no_grad():
        film = pg.films[0]
        film.gamma[-1].weight.zero_()
        film.gamma[-1].bias.copy_(torch.tensor([2.0, 0.5, -1.0]))
        film.beta[-1].weight.zero_()
        film.beta[-1].bias.copy_(torch.tensor([1.0, 0.0, 3.0]))
    h = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(pg(h, [torch.randn(1, 2)]), torch.tensor([[3.0, 1.0, 0.0]]))


def test_sparse_fc_in_equals_dense():
    torch.manual_seed(0)
    sparse_in = ItemInput(30, 8)
    x = (torch.rand(4, 30) < 0.2).float()
    expected = x @ sparse_in.weight + sparse_in.bias
    assert torch.allclose(sparse_in(x.to_sparse()), expected, atol=1e-6)
    assert torch.allclose(sparse_in(x), expected, atol=1e-6)


def test_ablation_switches_shape_the_network():
    full = CNet(20, 16, 8, 4, 6, [5, 3])
    assert full.pg is not None and len(full.pg.films) == 2 and full.cg_in.use_collab
    assert CNet(20, 16, 8, 4, 6, [5, 3], use_pg=False).pg is None
    assert CNet(20, 16, 8, 4, 6, []).pg is None  # no modalities, no PG blocks
    no_cg = CNet(20, 16, 8, 4, 6, [5], use_cg=False)
    assert not hasattr(no_cg.cg_in, "collab") and not hasattr(no_cg.cg_in, "gate")
    x = (torch.rand(2, 20) < 0.3).float().to_sparse()
    out = no_cg(x, torch.randn(2, 4), None, [torch.randn(2, 5)])
    assert out.shape == (2, 20)
