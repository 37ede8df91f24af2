"""MMSSL and DiffMM: their math, which losses train which parameters, and their errors."""

import shutil

import numpy as np
import pytest
import torch

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.dataloader import TrainDataLoader
from mmrec_ld4mrec.engine.dataset import RecDataset
from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.models import get_model
from mmrec_ld4mrec.models.diffmm import normalized_graph
from mmrec_ld4mrec.models.mmssl import ModalityAttention

SMALL = {"DiffMM": {"dims": [32]}, "MMSSL": {}}


def build(data_path, model, dataset="synthetic", **overrides):
    config = Config(model, dataset, {"data_path": f"{data_path}/", **SMALL[model], **overrides})
    config["seed"] = 1
    for key in config["hyper_parameters"]:  # the YAML's grid: its first point (the authors' TikTok setting)
        if isinstance(config[key], list):
            config[key] = config[key][0]
    train, _, _ = RecDataset(config).split()
    loader = TrainDataLoader(config, train, int(config["train_batch_size"]))
    loader.pretrain_setup()
    torch.manual_seed(0)
    return get_model(model)(config, loader), loader


def grads(module):
    return [p.grad for p in module.parameters()]


def test_normalized_graph_is_symmetric_normalisation_with_self_loops():
    users, items = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2])
    A = normalized_graph(users, items, 3, 3).to_dense()
    B = torch.eye(6)
    B[users, items + 3] = 1
    B[items + 3, users] = 1
    d = B.sum(1).rsqrt()
    assert torch.allclose(A, d[:, None] * B * d[None, :])


def test_normalized_graph_edge_dropout_keeps_a_share_and_rescales():
    torch.manual_seed(0)
    users = torch.arange(2000).repeat_interleave(5)
    items = torch.randint(0, 300, (10000,))
    full = normalized_graph(users, items, 2000, 300)
    dropped = normalized_graph(users, items, 2000, 300, keep_rate=0.5)
    assert dropped._nnz() == pytest.approx(0.5 * full._nnz(), rel=0.05)
    lookup = dict(zip(map(tuple, full.indices().T.tolist()), full.values().tolist()))
    for (r, c), v in list(zip(map(tuple, dropped.indices().T.tolist()), dropped.values().tolist()))[:500]:
        assert v == pytest.approx(lookup[(r, c)] / 0.5, rel=1e-5)


def test_diffmm_denoisers_train_alone_and_leave_no_gradients(data_path):
    model, _ = build(data_path, "DiffMM")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train_denoisers()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("denoisers.") for n in changed)
    assert any(n.startswith("denoisers.1.") for n in changed)  # every modality's denoiser trains
    assert all(g is None for g in grads(model.denoisers))  # MMRec's optimizer then skips them


def test_diffmm_msi_term_is_the_feature_space_gap(data_path):
    model, _ = build(data_path, "DiffMM")
    users = torch.arange(64)
    features = [f.detach() for f in model.modality_features()]
    items = model.item_embedding.detach()
    outputs = []
    hooks = [d.register_forward_hook(lambda mod, inp, out: outputs.append(out.detach())) for d in model.denoisers]
    losses = {}
    for e_loss in (0.0, 1.0):
        model.e_loss = e_loss
        torch.manual_seed(3)
        outputs.clear()
        losses[e_loss] = float(model.denoiser_loss(users, features, items).detach())
    for h in hooks:
        h.remove()
    x0 = model.rows.dense(users)
    msi = sum(float(((x @ f - x0 @ items) ** 2).mean()) for x, f in zip(outputs, features))
    assert losses[1.0] - losses[0.0] == pytest.approx(msi, rel=1e-4)


def test_diffmm_generated_graph_has_rebuild_k_edges_per_user(data_path):
    model, _ = build(data_path, "DiffMM", rebuild_k=3, keep_rate=1.0)
    model.rebuild_graphs()
    n = model.n_users + model.n_items
    for graph in model.modal_graphs:
        assert graph._nnz() == 2 * 3 * model.n_users + n
        user_rows = graph.indices()[0] < model.n_users
        assert torch.all(torch.bincount(graph.indices()[0][user_rows], minlength=model.n_users) == 4)


def test_diffmm_recommender_loss_trains_the_recommender_only(data_path):
    model, loader = build(data_path, "DiffMM")
    model.rebuild_graphs()
    model.calculate_loss(next(iter(loader))).backward()
    assert model.user_embedding.grad is not None and model.modal_weight.grad is not None
    assert all(p.grad is not None for p in model.feature_maps.parameters())
    assert all(g is None for g in grads(model.denoisers))


def test_mmssl_discriminator_steps_alone_and_the_generator_term_reaches_the_content_maps(data_path):
    model, loader = build(data_path, "MMSSL")
    before = [p.detach().clone() for p in model.discriminator.parameters()]
    model.train()
    loss = model.calculate_loss(next(iter(loader)))
    assert any(not torch.equal(p, b) for p, b in zip(model.discriminator.parameters(), before))
    loss.backward()
    assert all(g is None for g in grads(model.discriminator))  # the model's optimizer leaves D alone
    assert all(p.grad is not None for p in model.feature_maps.parameters())
    # the G term alone reaches the content maps through the generated rows
    model.zero_grad(set_to_none=True)
    content = model.modality_content()
    fake = torch.cat(model.generated_rows(torch.arange(32), content))
    model.discriminator.requires_grad_(False)
    (-model.discriminator(fake).mean()).backward()
    model.discriminator.requires_grad_(True)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.feature_maps.parameters())


def test_mmssl_generated_graphs_hold_topk_unseen_items_per_user(data_path):
    model, loader = build(data_path, "MMSSL", m_topk_rate=0.02)
    model.rebuild_graphs()
    k = int(model.n_items * 0.02)
    assert model.graph_topk == k
    seen = loader.inter_matrix(form="csr")
    for user_side, _ in model.modal_graphs:
        dense = user_side.to_dense()
        assert torch.all((dense > 0).sum(1) == k)
        assert float((dense.numpy() > 0)[seen.nonzero()].sum()) == 0  # generated edges are new items


def test_modality_attention_averages_over_modalities_whatever_their_order():
    torch.manual_seed(0)
    attention = ModalityAttention(16, 4)
    x = torch.randn(5, 3, 16)
    assert torch.allclose(attention(x), attention(x[:, [2, 0, 1]]), atol=1e-6)
    assert attention(x).shape == (5, 16)


@pytest.fixture(scope="module")
def three_modalities(data_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    shutil.copytree(data_path / "synthetic", root / "synthetic")
    n_items = RecDataset(Config("DiffMM", "synthetic", {"data_path": f"{data_path}/"})).get_item_num()
    np.save(root / "synthetic" / "third.npy", np.random.default_rng(0).random((n_items, 12)).astype(np.float32))
    return root


@pytest.mark.parametrize("name", ["DiffMM", "MMSSL"])
def test_any_number_of_modalities(three_modalities, name):
    model, loader = build(three_modalities, name, extra_feature_files=["third.npy"])
    assert model.n_modalities == 3
    model.pre_epoch_processing()
    model.train()
    loss = model.calculate_loss(next(iter(loader)))
    assert torch.isfinite(loss)
    model.eval()
    assert model.full_sort_predict([torch.arange(4)]).shape == (4, model.n_items)


@pytest.mark.parametrize("name", ["DiffMM", "MMSSL"])
def test_bad_settings_are_named(data_path, name):
    with pytest.raises(ConfigError, match="use_full_sampling"):
        build(data_path, name, use_full_sampling=True)
    with pytest.raises(ConfigError, match="at least one item modality"):
        build(data_path, name, vision_feature_file=None, text_feature_file=None, is_multimodal_model=False)
    key, value = ("keep_rate", 0.0) if name == "DiffMM" else ("m_topk_rate", 2.0)
    with pytest.raises(ConfigError, match=key):
        build(data_path, name, **{key: value})


@pytest.mark.parametrize("name, settings", [("DiffMM", ["dims=[32]", "ssl_reg=0.01", "e_loss=0.1"]),
                                            ("MMSSL", ["cl_rate=0.03", "G_rate=0.0018"])])
def test_a_saved_model_ranks_again_with_the_graphs_it_was_trained_on(tmp_path, data_path, name, settings):
    """The generated graphs are state: --load gives the best epoch's metrics back exactly."""
    from mmrec_ld4mrec.cli import main

    args = ["run", "-m", name, "-d", "synthetic", "--data-path", str(data_path), "--set", "epochs=3",
            "train_batch_size=4096", "hyper_parameters=[]", *settings]
    assert main(args + ["--save", str(tmp_path / "ckpt"), "--out", str(tmp_path / "a.json")]) == 0
    assert main(args + ["--load", str(tmp_path / "ckpt"), "--out", str(tmp_path / "b.json")]) == 0
    import json

    first, again = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert again["test"] == pytest.approx(first["test"], abs=1e-6)


def test_mmssl_trains_its_first_epoch_on_the_interaction_graph(data_path):
    model, _ = build(data_path, "MMSSL")
    model.pre_epoch_processing()
    assert not bool(model.graph_built) and model.modal_graphs[0][0] is model.user_items
    model.pre_epoch_processing()
    assert bool(model.graph_built) and model.modal_graphs[0][0] is not model.user_items


def test_mmssl_takes_a_one_row_batch(data_path):
    model, _ = build(data_path, "MMSSL", text_feature_file=None)
    assert model.n_modalities == 1
    model.train()
    loss = model.calculate_loss(torch.tensor([[0], [1], [2]]))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name, key, value, expected", [
    ("DiffMM", "rebuild_k", 1.5, "an integer"), ("DiffMM", "dims", 64, "a non-empty list of integers"),
    ("DiffMM", "ris_lambda", [0.1, 0.2], "a number"), ("MMSSL", "d_dropout", 0.3, "2 numbers"),
    ("MMSSL", "G_rate", -1.0, "a number in"), ("MMSSL", "head_num", 0, "an integer")])
def test_bad_values_name_the_key(data_path, name, key, value, expected):
    with pytest.raises(ConfigError, match=rf"{name}: config key '{key}': expected {expected}"):
        build(data_path, name, **{key: value})


def test_a_user_holding_every_training_item_is_refused_not_looped_on(data_path):
    """No negative exists for such a user: MMRec's sampler would spin forever; ours names it."""
    import pandas as pd

    from mmrec_ld4mrec.errors import DataError

    config = Config("SimGCL", "synthetic", {"data_path": f"{data_path}/"})
    train = RecDataset(config, pd.DataFrame({"userID": [0, 0, 1], "itemID": [0, 1, 0], "x_label": [0, 0, 0]}))
    train.user_num, train.item_num = 2, 2
    loader = TrainDataLoader(config, train, 2)
    loader.pretrain_setup()
    with pytest.raises(DataError, match="user 0 has every training item"):
        next(iter(loader))


def test_a_checkpoint_with_a_corrupt_generated_graph_is_refused(tmp_path, data_path, capsys):
    """The graphs become sparse tensors built without torch's invariant checks: out-of-range
    entries in a checkpoint are one clear error, not a crash."""
    from mmrec_ld4mrec.cli import main

    args = ["run", "-m", "DiffMM", "-d", "synthetic", "--data-path", str(data_path), "--set", "epochs=1",
            "train_batch_size=4096", "hyper_parameters=[]", "dims=[32]", "ssl_reg=0.01", "e_loss=0.1"]
    assert main(args + ["--save", str(tmp_path / "ckpt")]) == 0
    path = tmp_path / "ckpt" / "model.pt"
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["graph_index_0"][0, 0] = 10 ** 9
    torch.save(payload, path)
    capsys.readouterr()
    assert main(args + ["--load", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err
    assert "graph_index_0" in err and "Traceback" not in err
