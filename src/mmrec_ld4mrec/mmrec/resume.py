"""Resumable runs in MMRec's own pipeline (``engine.snapshot`` for the MMRec engine).

MMRec's ``Trainer.fit`` loops from ``self.start_epoch`` and keeps its early-stopping state in
attributes (``cur_step``, ``best_valid_score``, ``best_valid_result``,
``best_test_upon_valid``), so a run resumes without touching MMRec's code: the driver saves
those with the weights, the optimizer, the scheduler, the training loader's orders and the
random generators at the start of an epoch (before ``pre_epoch_processing``: the previous
epoch, its evaluation and early stopping are then complete), and puts them back before
``fit`` starts.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..engine.checkpoint import dataset_fingerprint
from ..engine.quick_start import feature_paths
from ..engine.snapshot import (
    counter_problem,
    identity_of,
    load_model_training_state,
    loader_orders,
    loader_problem,
    metrics_problem,
    model_training_state,
    reordered,
    rng_state,
    seconds_problem,
    set_rng_state,
)

# this machine's keys: a run moved to another device or data folder is the same run
MACHINE_KEYS = {"data_path", "device", "gpu_id", "use_gpu", "eval_batch_size"}


def run_identity(config, dataset) -> str:
    """The model, the data (the interactions' and feature files' fingerprint) and every setting
    of MMRec's final config but this machine's."""

    settings = {k: v for k, v in config.final_config_dict.items() if k not in MACHINE_KEYS}
    fingerprint = dataset_fingerprint(dataset, feature_paths(config))
    return identity_of(config["model"], f"{config['dataset']}:{fingerprint}", settings)


def _loader_state(train) -> dict:
    data = train.dataset
    return loader_orders(data.df, train.dataset_bk.df, data.uid_field, data.iid_field, train.all_uids, train.all_items)


def _load_loader_state(train, state: dict) -> None:
    train.dataset = train.dataset_bk.copy(reordered(train.dataset_bk.df, state["frame"]))
    train.all_uids = state["users"].numpy().astype(np.asarray(train.all_uids).dtype)
    train.all_items = state["items"].tolist()


# what training_state writes and restore reads
SNAPSHOT_KEYS = ("next_epoch", "model", "model_training_state", "optimizer", "scheduler", "trainer", "seconds",
                 "reported", "loader", "rng")


def training_state(trainer, model, train, next_epoch: int) -> dict:
    """What epoch ``next_epoch`` of MMRec's ``fit`` depends on, with what the trainer recorded so
    far (``mmrec.trainer``): each epoch's seconds, the validation lines (passed to the pruner again
    on resume) and the best epoch."""
    return {"next_epoch": next_epoch, "model": model.state_dict(), "model_training_state": model_training_state(model),
            "optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.lr_scheduler.state_dict(),
            "trainer": {"cur_step": trainer.cur_step, "best_valid_score": float(trainer.best_valid_score),
                        "best_valid_result": {k: float(v) for k, v in trainer.best_valid_result.items()},
                        "best_test_upon_valid": {k: float(v) for k, v in trainer.best_test_upon_valid.items()},
                        "best_epoch": int(trainer.best_epoch)},
            "seconds": list(trainer.seconds), "reported": list(trainer.reported), "loader": _loader_state(train),
            "rng": rng_state(),
            "best_topk": {split: None if lists is None else torch.from_numpy(np.asarray(lists, dtype=np.int64))
                          for split, lists in (("valid", trainer.best_valid_topk), ("test", trainer.best_test_topk))}}


def _topk_problem(saved: dict, trainer) -> str | None:
    """The best epoch's ranked lists (a snapshot may lack them: the run then reports no
    beyond-accuracy figures): integer item ids of the model, one list per validation user."""
    lists = saved.get("best_topk", {"valid": None, "test": None})
    if not isinstance(lists, dict) or set(lists) != {"valid", "test"}:
        return "its 'best_topk' is not the valid and test lists a run records"
    for split, value in lists.items():
        if value is None:
            continue
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.int64 and value.dim() == 2
                and value.shape[1] == max(trainer.config["topk"])
                and (split == "test" or value.shape[0] == len(trainer.valid_data.get_eval_users()))
                and (value.numel() == 0 or (int(value.min()) >= 0 and int(value.max()) < trainer.model.n_items))):
            return f"its 'best_topk.{split}' is not one ranked list of the model's items per user"
    return None


def snapshot_problem(saved: dict, trainer, train) -> str | None:
    """Why a snapshot's counters, results and loader orders cannot be this run's (type and range
    of each, before anything is put back; ``engine.snapshot`` checks the weights, optimizer and
    random generators)."""
    next_epoch, state = saved["next_epoch"], saved["trainer"]
    problem = counter_problem("next_epoch", next_epoch, 1, int(trainer.epochs) - 1)
    if problem or not isinstance(state, dict):
        return problem or "its 'trainer' is not a mapping"
    problem = (counter_problem("trainer.cur_step", state["cur_step"], 0, int(trainer.stopping_step) + 1)
               or counter_problem("trainer.best_epoch", state.get("best_epoch", -1), -1, next_epoch - 1)
               or metrics_problem("trainer.best_valid_result", state["best_valid_result"])
               or metrics_problem("trainer.best_test_upon_valid", state["best_test_upon_valid"])
               or seconds_problem("seconds", saved["seconds"]))
    if problem:
        return problem
    score = state["best_valid_score"]
    if not isinstance(score, float) or math.isnan(score) or score == math.inf:
        return f"its 'trainer.best_valid_score' is {score!r:.40}, expected a finite score (or -inf)"
    if len(saved["seconds"]) > next_epoch or not isinstance(saved["reported"], list) or \
            not all(isinstance(line, str) for line in saved["reported"]):
        return "its epochs' seconds or validation lines are not what a run records"
    problem = loader_problem(saved["loader"], len(train.dataset_bk.df), train.all_uids, train.all_items)
    return f"its training loader's orders {problem}" if problem else _topk_problem(saved, trainer)


def restore(saved: dict, trainer, model, train) -> None:
    """Put a saved state back: ``fit`` then starts at the saved epoch."""
    model.load_state_dict(saved["model"])
    load_model_training_state(model, saved["model_training_state"])
    trainer.optimizer.load_state_dict(saved["optimizer"])
    trainer.lr_scheduler.load_state_dict(saved["scheduler"])
    state = saved["trainer"]
    trainer.start_epoch = int(saved["next_epoch"])
    trainer.cur_step, trainer.best_valid_score = int(state["cur_step"]), state["best_valid_score"]
    trainer.best_valid_result, trainer.best_test_upon_valid = state["best_valid_result"], state["best_test_upon_valid"]
    # a snapshot from before the best epoch was recorded: the epoch early stopping counts back to
    trainer.best_epoch = int(state.get("best_epoch", trainer.start_epoch - 1 - trainer.cur_step * trainer.eval_step))
    trainer.seconds[:] = saved["seconds"]
    trainer.reported[:] = saved["reported"]
    _load_loader_state(train, saved["loader"])
    set_rng_state(saved["rng"])
    lists = saved.get("best_topk") or {}
    trainer.best_valid_topk, trainer.best_test_topk = (None if lists.get(split) is None else lists[split].numpy()
                                                       for split in ("valid", "test"))
