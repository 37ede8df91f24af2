"""DiffRec, EASE and SimGCL: the math and the MMRec contract on a small dataset."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.dataloader import TrainDataLoader
from mmrec_ld4mrec.engine.dataset import RecDataset
from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.models import get_model
from mmrec_ld4mrec.models.ease import ease_weights
from mmrec_ld4mrec.models.graph import bipartite_adjacency, info_nce, symmetric_spmm


def build(data_path, model, **overrides):
    config = Config(model, "synthetic", {"data_path": f"{data_path}/", **overrides})
    config["seed"] = 1
    train, _, _ = RecDataset(config).split()
    loader = TrainDataLoader(config, train, int(config["train_batch_size"]))
    torch.manual_seed(0)
    np.random.seed(0)
    return get_model(model)(config, loader), loader


def test_ease_matches_per_item_ridge_regression():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((50, 8)) < 0.4).astype(np.float32))
    lam = 3.0
    B = ease_weights(X, lam)
    dense = X.toarray().astype(np.float64)
    assert np.allclose(np.diag(B), 0.0)
    for j in range(8):
        others = [k for k in range(8) if k != j]
        A = dense[:, others]
        expected = np.linalg.solve(A.T @ A + lam * np.eye(7), A.T @ dense[:, j])
        assert np.allclose(B[others, j], expected, atol=1e-4)


def test_ease_scores_and_reg_check(data_path):
    model, _ = build(data_path, "EASE", reg_weight=100.0)
    scores = model.full_sort_predict([torch.arange(4)])
    assert scores.shape == (4, model.n_items)
    with pytest.raises(ConfigError, match="reg_weight"):
        build(data_path, "EASE", reg_weight=-1.0)


def test_diffrec_trains_and_infers_with_t_reverse_steps(data_path):
    model, loader = build(data_path, "DiffRec", steps=6, dims=[32, 16])
    assert [layer.out_features for layer in model.denoiser.encoder] == [16, 32]
    assert [layer.out_features for layer in model.denoiser.decoder] == [16, model.n_items]  # 32 -> 16 -> |I|
    loss = model.calculate_loss(next(iter(loader)))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    calls = []
    model.denoiser.register_forward_hook(lambda *a: calls.append(1))
    model.eval()
    assert model.full_sort_predict([torch.arange(5)]).shape == (5, model.n_items)
    assert len(calls) == 6  # T reverse steps, whatever sampling_steps is
    with pytest.raises(ConfigError, match="sampling_steps"):
        build(data_path, "DiffRec", steps=6, sampling_steps=7)


def test_diffrec_reweighting_is_snr_difference(data_path):
    from mmrec_ld4mrec.models.diffrec import snr_step_weight

    model, _ = build(data_path, "DiffRec", steps=4, dims=[8])
    a = model.schedule.alpha_bar
    snr = a / (1 - a)
    t = torch.tensor([1, 2, 3])
    weight = snr_step_weight(model.schedule, t)
    assert weight[0] == 1.0  # DiffRec's step 0
    assert torch.allclose(weight[1:], (snr[t[1:] - 2] - snr[t[1:] - 1]).float())
    assert torch.all(weight[1:] > 0)


def test_simgcl_perturbation_and_contrastive_loss(data_path):
    model, loader = build(data_path, "SimGCL")
    clean_u, _ = model.propagate()
    noisy_u, _ = model.propagate(perturbed=True)
    assert clean_u.shape == (model.n_users, 64)
    delta = (noisy_u - clean_u).norm(dim=1)
    assert torch.all(delta > 0) and torch.all(delta <= model.eps * model.n_layers + 1e-5)
    v = torch.randn(16, 8)
    assert info_nce(v, v, 0.2) < info_nce(v, torch.randn(16, 8), 0.2)
    batch = next(iter(loader))
    assert batch.shape[0] == 3
    loss = model.calculate_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and model.user_embedding.grad is not None
    assert model.full_sort_predict([torch.arange(3)]).shape == (3, model.n_items)
    with pytest.raises(ConfigError, match="use_full_sampling"):
        build(data_path, "SimGCL", use_full_sampling=True)


def test_symmetric_spmm_gradient_matches_dense():
    X = sp.csr_matrix((np.random.default_rng(0).random((6, 5)) < 0.5).astype(np.float32))
    A = bipartite_adjacency(X)
    dense = A.to_dense()
    assert torch.allclose(dense, dense.T)
    E = torch.randn(11, 3, requires_grad=True)
    symmetric_spmm(A, E).pow(2).sum().backward()
    E2 = E.detach().clone().requires_grad_(True)
    (dense @ E2).pow(2).sum().backward()
    assert torch.allclose(E.grad, E2.grad, atol=1e-5)
