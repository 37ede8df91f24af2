"""MMRec's evaluation protocol, pinned down where a refactor could quietly break it: grid
points and epochs chosen on validation only, early stopping with patience at MMRec's
4-decimal rounding, test metrics taken at the best-validation epoch, the saved checkpoint
being that epoch's, training items masked in full ranking while validation items stay
rankable for test, and cold users absent from evaluation (issue 18, items 1, 5 and 7)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.engine import quick_start, trainer
from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.dataloader import EvalDataLoader
from mmrec_ld4mrec.engine.dataset import RecDataset
from mmrec_ld4mrec.engine.evaluator import rank_topk
from mmrec_ld4mrec.engine.trainer import FitResult, Trainer


class _StubModel(nn.Module):
    """Trains a single weight; its scores do not matter (evaluation is scripted)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def pre_epoch_processing(self):
        pass

    def post_epoch_processing(self):
        pass

    def calculate_loss(self, batch):
        return (self.w - 1.0).pow(2).sum()


def _trainer_config(**overrides) -> dict:
    return {"learning_rate": 0.1, "weight_decay": 0.0, "learner": "adam", "learning_rate_scheduler": [1.0, 50],
            "valid_metric": "Recall@20", "clip_grad_norm": None, "eval_step": 1, "epochs": 50, "stopping_step": 2,
            **overrides}


def _scripted_evaluation(monkeypatch, valid: list[float], test: list[float]) -> list[str]:
    """Validation and test scores per evaluation, in order; returns the log of what was evaluated."""
    calls: list[str] = []
    counters = {"valid": 0, "test": 0}

    def evaluate(model, loader, config):
        n = counters["valid"] - 1 if loader == "test" else counters["valid"]
        counters[loader] += 1
        calls.append(loader)
        score = (test if loader == "test" else valid)[n]
        return {"Recall@20": score}, np.full((1, 1), n)

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    return calls


def test_trainer_stops_after_patience_and_reports_test_at_the_best_validation_epoch(monkeypatch):
    #         epoch:    0     1     2     3      4 (rounds to 0.3000, no gain)  5: third stale -> stop;  6 never runs
    valid = [0.10, 0.20, 0.30, 0.29, 0.30004, 0.25, 0.99]
    test = [0.50, 0.40, 0.11, 0.90, 0.90, 0.90, 0.90]
    calls = _scripted_evaluation(monkeypatch, valid, test)
    result = Trainer(_trainer_config(), _StubModel()).fit([torch.zeros(1)], "valid", "test")
    assert result.epochs_run == 6
    assert result.best_epoch == 2
    assert result.valid == {"Recall@20": 0.30} and result.test == {"Recall@20": 0.11}
    assert calls.count("valid") == 6 and calls.count("test") == 3  # test only at a new best, never to choose
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3, 4, 5]


class _NaNOnSecondBatch(_StubModel):
    def calculate_loss(self, batch):
        loss = super().calculate_loss(batch)
        return loss * float("nan") if int(batch) == 1 else loss


def test_a_nan_loss_anywhere_in_the_epoch_stops_training(monkeypatch):
    # the loss is summed on the device and read once per epoch: a NaN in a middle batch still
    # ends training, with the epoch discarded
    _scripted_evaluation(monkeypatch, [0.1] * 5, [0.1] * 5)
    batches = [torch.tensor(0), torch.tensor(1), torch.tensor(2)]
    result = Trainer(_trainer_config(), _NaNOnSecondBatch()).fit(batches, "valid", "test")
    assert result.stopped_on_nan and result.history == []


def test_cuda_graph_steps_apply_only_on_a_gpu_to_static_batch_models():
    from mmrec_ld4mrec.engine.trainer import CudaGraphSteps

    model = _StubModel()
    gpu = {"cuda_graphs": True, "device": "cuda", "learner": "adam"}
    assert not CudaGraphSteps.applies(gpu, model, constant_lr=True)  # no static_batches
    model.static_batches = True
    assert CudaGraphSteps.applies(gpu, model, constant_lr=True)
    assert not CudaGraphSteps.applies({**gpu, "device": "cpu"}, model, constant_lr=True)
    assert not CudaGraphSteps.applies(gpu, model, constant_lr=False)
    assert not CudaGraphSteps.applies({**gpu, "learner": "sgd"}, model, constant_lr=True)
    assert not CudaGraphSteps.applies({**gpu, "cuda_graphs": False}, model, constant_lr=True)


def test_patience_counts_evaluations_and_epochs_cap_training(monkeypatch):
    _scripted_evaluation(monkeypatch, [0.1, 0.1, 0.1, 0.1, 0.1], [0.2] * 5)
    result = Trainer(_trainer_config(stopping_step=0), _StubModel()).fit([torch.zeros(1)], "valid", "test")
    assert (result.epochs_run, result.best_epoch) == (2, 0)
    _scripted_evaluation(monkeypatch, [0.1, 0.2, 0.3], [0.5, 0.6, 0.7])
    result = Trainer(_trainer_config(epochs=3), _StubModel()).fit([torch.zeros(1)], "valid", "test")
    assert (result.epochs_run, result.best_epoch, result.test) == (3, 2, {"Recall@20": 0.7})


def test_grid_point_is_chosen_on_validation_when_test_disagrees(monkeypatch, data_path, small_ld4mrec):
    """A stub fit whose validation and test orders of the two grid points are opposite."""
    scores = {0.01: (0.30, 0.10), 0.2: (0.20, 0.50)}  # soft_prob -> (valid, test) Recall@20

    class ScriptedTrainer:
        def __init__(self, config, model, on_evaluation=None):
            self.config = config

        def fit(self, train, valid, test, keep_state=False, snapshot=None):
            v, t = scores[self.config["soft_prob"]]
            return FitResult(best_epoch=0, valid={"Recall@20": v}, test={"Recall@20": t}, epochs_run=1,
                             test_topk=np.zeros((1, 1), dtype=np.int64))

    monkeypatch.setattr(quick_start, "Trainer", ScriptedTrainer)
    result = quick_start.run("LD4MRecPaper", "synthetic", {"data_path": f"{data_path}/", **small_ld4mrec,
                                                           "soft_prob": [0.2, 0.01]})
    assert result["hyper_parameters"]["soft_prob"] == 0.01
    assert result["valid"]["Recall@20"] == 0.30 and result["test"]["Recall@20"] == 0.10


def test_saved_checkpoint_is_the_best_epoch_not_the_last(tmp_path, data_path, capsys):
    settings = ["--set", "embedding_size=32", "hidden_size=16", "svd_rank=8", "epochs=40", "stopping_step=0",
                "seed=[3]", "learning_rate=0.01"]  # a high rate: validation peaks early, then falls
    out = tmp_path / "trained.json"
    base = ["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", str(data_path), *settings]
    assert main([*base, "--out", str(out), "--save", str(tmp_path / "ckpt")]) == 0
    trained = json.loads(out.read_text())
    assert trained["best_epoch"] < trained["epochs_run"] - 1  # the last state differs from the best one
    payload = torch.load(tmp_path / "ckpt" / "model.pt", map_location="cpu", weights_only=True)
    assert payload["best_epoch"] == trained["best_epoch"] and payload["model"] == "LD4MRec"
    loaded = tmp_path / "loaded.json"
    assert main([*base, "--load", str(tmp_path / "ckpt"), "--out", str(loaded)]) == 0
    again = json.loads(loaded.read_text())
    for split in ("valid", "test"):
        for name, value in trained[split].items():
            assert again[split][name] == pytest.approx(value, abs=1e-6), (split, name)
    capsys.readouterr()


class _Oracle(nn.Module):
    """Scores a user's training items highest, then the validation items, then the rest."""

    def __init__(self, n_items: int, train: dict, valid: dict):
        super().__init__()
        self.n_items, self.train_items, self.valid_items = n_items, train, valid

    def full_sort_predict(self, interaction):
        users = interaction[0].tolist()
        scores = torch.zeros(len(users), self.n_items)
        for row, user in enumerate(users):
            scores[row, list(self.valid_items.get(user, []))] = 5.0
            scores[row, list(self.train_items.get(user, []))] = 10.0
        return scores


def _splits(data_path):
    config = Config("Pop", "synthetic", {"data_path": f"{data_path}/"})
    train_ds, valid_ds, test_ds = RecDataset(config).split()

    def items(ds):
        return ds.df.groupby(ds.uid_field)[ds.iid_field].apply(set).to_dict()

    return config, train_ds, valid_ds, test_ds, items(train_ds), items(valid_ds)


def test_full_ranking_masks_training_items_but_not_validation_items_for_test(data_path):
    config, train_ds, valid_ds, test_ds, train, valid = _splits(data_path)
    model = _Oracle(train_ds.get_item_num(), train, valid)
    for split, ds in (("valid", valid_ds), ("test", test_ds)):
        loader = EvalDataLoader(config, ds, train_ds, 64)
        k = 20
        topk = rank_topk(model, loader, k)
        users = loader.get_eval_users()
        leaked = sum(len(set(row) & train.get(u, set())) for u, row in zip(users, topk))
        assert leaked == 0, f"{split}: {leaked} training items ranked"
        if split == "test":
            reachable = [(u, row) for u, row in zip(users, topk) if 0 < len(valid.get(u, ())) <= k]
            assert reachable and all(valid[u] <= set(row) for u, row in reachable)


def test_cold_users_are_absent_from_evaluation(tmp_path, data_path):
    root = tmp_path / "data"
    shutil.copytree(data_path / "synthetic", root / "synthetic")
    inter = root / "synthetic" / "synthetic.inter"
    df = pd.read_csv(inter, sep="\t")
    cold = [0, 7]
    df[~(df.userID.isin(cold) & (df.x_label == 0))].to_csv(inter, sep="\t", index=False)
    config = Config("Pop", "synthetic", {"data_path": f"{root}/"})
    train_ds, valid_ds, test_ds = RecDataset(config).split()
    for ds in (valid_ds, test_ds):
        users = EvalDataLoader(config, ds, train_ds, 64).get_eval_users()
        assert not set(cold) & set(users.tolist())
        assert len(users) == df[df.x_label == (1 if ds is valid_ds else 2)].userID.nunique() - len(cold)
    assert train_ds.dropped_cold_users == {"validation": 2, "test": 2}


def test_run_masks_with_the_training_split_only_when_ranking_for_test(monkeypatch, data_path):
    """The wiring: both evaluation loaders of a run mask the training interactions and nothing else."""
    built = []

    class Recording(EvalDataLoader):
        def __init__(self, config, eval_dataset, train_dataset, batch_size):
            built.append((eval_dataset, train_dataset))
            super().__init__(config, eval_dataset, train_dataset, batch_size)

    monkeypatch.setattr(quick_start, "EvalDataLoader", Recording)
    quick_start.run("Pop", "synthetic", {"data_path": f"{data_path}/"})
    inter = pd.read_csv(data_path / "synthetic" / "synthetic.inter", sep="\t")
    assert len(built) == 2 and built[0][1] is built[1][1]
    assert [len(ds.df) for ds, _ in built] == [(inter.x_label == 1).sum(), (inter.x_label == 2).sum()]
    assert len(built[0][1].df) == (inter.x_label == 0).sum()  # the mask: training interactions only
