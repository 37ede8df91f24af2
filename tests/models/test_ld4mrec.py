import pytest
import torch

from mmrec_ld4mrec.models.base import GeneralRecommender
from mmrec_ld4mrec.models.rows import PaddedBatches


def test_contract_shapes_and_base_class(data_path, build_ld4mrec):
    model, loader = build_ld4mrec(data_path)
    assert isinstance(model, GeneralRecommender)
    users = next(iter(loader))
    assert users.dim() == 1
    loss = model.calculate_loss(users)
    assert loss.dim() == 0 and torch.isfinite(loss)
    scores = model.full_sort_predict([users[:5]])
    assert scores.shape == (5, model.n_items)
    assert model.n_modalities == 2


def test_forward_free_inference_is_one_cnet_call(data_path, build_ld4mrec):
    model, _ = build_ld4mrec(data_path)
    calls = []
    model.cnet.register_forward_hook(lambda *a: calls.append(1))
    model.eval()
    model.full_sort_predict([torch.arange(10)])
    assert len(calls) == 1
    k_step, _ = build_ld4mrec(data_path, inference_steps=3)
    calls.clear()
    k_step.cnet.register_forward_hook(lambda *a: calls.append(1))
    k_step.eval()
    k_step.full_sort_predict([torch.arange(10)])
    assert len(calls) == 3


def test_gradients_reach_every_parameter(data_path, build_ld4mrec):
    model, loader = build_ld4mrec(data_path)
    model.train()
    model.calculate_loss(next(iter(loader))).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_sampler_history_is_updated_and_checkpointed(data_path, build_ld4mrec):
    model, loader = build_ld4mrec(data_path)
    model.calculate_loss(next(iter(loader)))
    assert int(model.step_sampler.history_count.sum()) > 0
    assert "step_sampler.loss_history" in model.state_dict()


@pytest.mark.parametrize("switch", ["use_cg", "use_pg", "use_soft_target"])
def test_ablation_switches_train(data_path, switch, build_ld4mrec):
    model, loader = build_ld4mrec(data_path, **{switch: False})
    loss = model.calculate_loss(next(iter(loader)))
    loss.backward()
    assert torch.isfinite(loss)
    if switch == "use_pg":
        assert model.cnet.pg is None
    if switch == "use_cg":
        assert not hasattr(model.cnet.cg_in, "gate")


def test_without_modalities_there_are_no_pg_blocks(data_path, build_ld4mrec):
    model, _ = build_ld4mrec(data_path, is_multimodal_model=False)
    assert model.n_modalities == 0 and model.cnet.pg is None
    assert model.full_sort_predict([torch.arange(3)]).shape == (3, model.n_items)


def test_dense_input_gives_the_same_scores(data_path, build_ld4mrec):
    model, _ = build_ld4mrec(data_path)
    users = torch.arange(20)
    rows = model.rows.dense(users, normalized=model.settings.input_norm == "l2")
    dense = model.denoise(rows, torch.zeros(20, dtype=torch.long), users)
    assert torch.allclose(model.full_sort_predict([users]), dense, atol=1e-5)


def test_static_shape_batches_train_like_the_compact_ones(data_path, build_ld4mrec):
    """The GPU's static-shape draws (forced here on the CPU): the same inputs and the same
    target distribution, so the loss of a batch agrees with the compact path's on average."""
    compact, loader = build_ld4mrec(data_path, input_dropout=0.2)
    static, _ = build_ld4mrec(data_path, input_dropout=0.2)
    assert compact.batches.static is False  # a CPU model draws compact batches
    static.batches = PaddedBatches(static.rows)
    users = next(iter(loader))
    losses = {}
    for name, model in (("compact", compact), ("static", static)):
        torch.manual_seed(1)
        model.train()
        losses[name] = torch.stack([model.calculate_loss(users).detach() for _ in range(30)])
    spread = (losses["compact"].std() + losses["static"].std()) / 30 ** 0.5
    assert abs(losses["compact"].mean() - losses["static"].mean()) < 3 * spread
    static.calculate_loss(users).backward()
    assert all(p.grad is not None for p in static.parameters())
