"""One run as MMRec's ``quick_start`` does it, with one difference: across the
``hyper_parameters`` grid the best combination is chosen on **validation** (MMRec picks the
best test result)."""

from __future__ import annotations

import logging
import os
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..data.synthetic import ensure_synthetic
from ..errors import ConfigError, UserInputError
from ..files import check_output_folder
from ..models import RETIRED_HINT, RETIRED_KEYS, get_model
from .beyond_accuracy import SEGMENT_K, segment_metrics
from .checkpoint import (
    CHECKPOINT_FILE,
    checkpoint_model,
    checkpoint_path,
    dataset_fingerprint,
    load_checkpoint,
    load_state,
    save_checkpoint,
    save_topk_csv,
)
from .config import Config, grid_points
from .dataloader import EvalDataLoader, TrainDataLoader
from .dataset import RecDataset, inject_false_positives
from .evaluator import evaluate, rank_topk
from .run_result import PointResult, RunResult, resumable, run_grid
from .snapshot import Snapshot, SnapshotUnusable, identity_of
from .trainer import FitResult, Trainer

log = logging.getLogger(__name__)
# keys a checkpoint's config does not carry over: this machine's, and the names of this run
_MACHINE_KEYS = {"data_path", "device", "gpu_id", "use_gpu", "eval_batch_size", "model", "dataset"}


def init_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.are_deterministic_algorithms_enabled():  # the call itself imports torch's compiler stack (~1 s)
        torch.use_deterministic_algorithms(False)


def _scalar_seed(seed) -> int:
    return int(seed[0] if isinstance(seed, list) else seed)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def grid(config: Config) -> list[dict]:
    """Every combination of the ``hyper_parameters`` values (a scalar is a one-value axis)."""
    return grid_points(config["hyper_parameters"], lambda key: config[key])


def feature_paths(config: Config) -> list[str]:
    folder = os.path.abspath(str(config["data_path"]) + config["dataset"])
    names = [config["vision_feature_file"], config["text_feature_file"], *(config["extra_feature_files"] or [])]
    return [os.path.join(folder, n) for n in names if n and os.path.isfile(os.path.join(folder, n))]


def time_full_inference(model, train_loader: TrainDataLoader, config: Config) -> float:
    """Seconds for one full ranking (top-max(topk), training items masked) of every user."""
    every_user = EvalDataLoader.all_users(config, train_loader.dataset, int(config["eval_batch_size"]))
    start = time.perf_counter()
    rank_topk(model, every_user, max(config["topk"]), config)
    return time.perf_counter() - start


def checked_config(model_name: str, dataset_name: str, config_dict: dict | None = None) -> tuple[Config, type]:
    """The run's config and model class, every value checked before any data is read: the
    engine's keys when the config is built, the model's own (``check_settings``) at every grid point."""
    config = Config(model_name, dataset_name, config_dict)
    model_cls = get_model(model_name)
    check = getattr(model_cls, "check_settings", None)
    if check is not None:
        for point in grid(config):
            check(lambda key, point=point: point[key] if key in point else config[key])
    return config, model_cls


class AfterFit(Protocol):
    """More that a run computes with each grid point's trained best state (Fig. 3's inference
    study, ``study.inference_study``): checked against the model before it trains, called after."""

    def check(self, model) -> None: ...

    def __call__(self, model, valid: EvalDataLoader, test: EvalDataLoader, config: Config) -> dict: ...


def run(model_name: str, dataset_name: str, config_dict: dict | None = None, save_dir: str | None = None,
        load_dir: str | None = None, on_evaluation: Callable[[int, dict], None] | None = None,
        snapshot: str | Path | None = None, snapshot_every: float = 60.0, after_fit: AfterFit | None = None) -> dict:
    """Train (or load) and evaluate; returns the JSON-ready result of the best grid point.
    ``on_evaluation(epoch, valid_metrics)`` is called after every validation (see ``Trainer``).
    ``after_fit``: more to compute with each trained grid point's best state (:class:`AfterFit`).
    ``snapshot``: a file the run saves its training state to (every ``snapshot_every`` seconds,
    between epochs) and resumes from when it holds this run's state (``engine.snapshot``);
    removed when the run has finished. It applies to a run of one grid point that trains (not
    ``--load``); elsewhere it is ignored, with a warning."""
    config, model_cls = checked_config(model_name, dataset_name, config_dict)
    snapshot = resumable(snapshot, len(grid(config)), loading=bool(load_dir))
    if save_dir:  # before any work: a run must not end in a checkpoint it cannot write
        check_output_folder(save_dir, "--save")
        if (Path(save_dir) / CHECKPOINT_FILE).exists():
            raise UserInputError(f"{Path(save_dir) / CHECKPOINT_FILE}: a checkpoint is already there; "
                                 "choose another --save folder (nothing was overwritten)")
    if load_dir and not checkpoint_path(Path(load_dir)).is_file():
        raise UserInputError(f"{checkpoint_path(Path(load_dir))}: checkpoint not found (--load)")
    if dataset_name == "synthetic":
        ensure_synthetic(Path(str(config["data_path"]) + dataset_name))
    dataset = RecDataset(config)
    train_ds, valid_ds, test_ds = dataset.split()
    train_ds = inject_false_positives(train_ds, float(config["train_noise_ratio"] or 0.0), _scalar_seed(config["seed"]))
    fingerprint = dataset_fingerprint(dataset, feature_paths(config))
    points = grid(config)
    payload = load_checkpoint(Path(load_dir), fingerprint, dataset_name, model_name) if load_dir else None
    if payload:
        apply_checkpoint_config(config, payload, checkpoint_path(Path(load_dir)))
        points = [{k: config[k] for k in config["hyper_parameters"]}]
    if max(config["topk"]) > dataset.get_item_num():
        raise ConfigError(f"config key 'topk': {max(config['topk'])} exceeds the number of items "
                          f"({dataset.get_item_num()}) of '{dataset_name}'", key="topk")

    train = TrainDataLoader(config, train_ds, int(config["train_batch_size"]), shuffle=True)
    valid = EvalDataLoader(config, valid_ds, train_ds, int(config["eval_batch_size"]))
    test = EvalDataLoader(config, test_ds, train_ds, int(config["eval_batch_size"]))
    on_gpu = torch.device(config["device"]).type == "cuda"
    if on_gpu:
        torch.empty(1, device=config["device"])  # the allocator must exist before its peak can be reset
        torch.cuda.reset_peak_memory_stats(config["device"])
    kept: dict[int, tuple[FitResult, list]] = {}  # per point: the fit (best state, top-k) and the test users

    def fresh_model():
        init_seed(int(config["seed"]))
        train.batch_size = int(config["train_batch_size"])
        train.pretrain_setup()
        model = model_cls(config, train).to(config["device"])
        if after_fit is not None:
            after_fit.check(model)
        return model

    def fit_point(idx: int, point: dict) -> PointResult:
        for key, value in point.items():
            config[key] = value
        model = fresh_model()
        if payload:
            load_state(model, payload["state_dict"], checkpoint_path(Path(load_dir)), model_name)
            fit = FitResult(best_epoch=int(payload.get("best_epoch", -1)), epochs_run=0)
            fit.valid, _ = evaluate(model, valid, config)
            fit.test, fit.test_topk = evaluate(model, test, config)
        else:
            saver = None if snapshot is None else Snapshot(snapshot, _snapshot_identity(config, fingerprint), snapshot_every,
                                                           torch.device(config["device"]).type)
            keep = bool(save_dir) or after_fit is not None  # the best state, to save or to study
            try:
                fit = Trainer(config, model, on_evaluation).fit(train, valid, test, keep_state=keep, snapshot=saver)
            except SnapshotUnusable:  # set aside part-way through its restore: a fresh model, from epoch 0
                model = fresh_model()
                fit = Trainer(config, model, on_evaluation).fit(train, valid, test, keep_state=keep, snapshot=saver)
            if fit.best_state is not None:
                model.load_state_dict(fit.best_state)
        more = after_fit(model, valid, test, config) if after_fit is not None and not payload else {}
        if fit.test_topk is not None and fit.test_topk.shape[1] >= SEGMENT_K:
            more["segments"] = segment_metrics(fit.test_topk, test.get_eval_items(), test.train_items,
                                               test.item_popularity)
        kept[idx] = (fit, test.get_eval_users())
        return PointResult(point=point, best_epoch=fit.best_epoch, epochs_run=fit.epochs_run, valid=fit.valid,
                           test=fit.test, train_seconds_per_epoch=fit.train_seconds_per_epoch,
                           inference_seconds=time_full_inference(model, train, config), config=config.to_dict(),
                           resumed_from_epoch=fit.resumed_from_epoch,
                           extra={"history": fit.history, **more})

    result = RunResult(model_name, dataset_name, config["valid_metric"],
                       run_grid(points, fit_point, f"{model_name} on {dataset_name}"), peak_rss_mb())
    if snapshot is not None:
        Path(snapshot).unlink(missing_ok=True)  # the run is over: nothing to resume
    result.extra = {"peak_gpu_mb": torch.cuda.max_memory_allocated(config["device"]) / 2**20 if on_gpu else None,
                    "dropped_cold_users": train_ds.dropped_cold_users}
    best = result.best
    best_idx = result.points.index(best)
    fit, test_users = kept[best_idx]
    if save_dir and fit.test_topk is not None:
        state = fit.best_state if fit.best_state is not None else (payload or {}).get("state_dict")
        if state is not None:
            save_checkpoint(Path(save_dir), state, best.config, fingerprint,
                            {"model": model_name, "dataset": dataset_name, "best_epoch": fit.best_epoch})
        save_topk_csv(Path(save_dir), model_name, dataset_name, best_idx, test_users,
                      fit.test_topk[:, :50])
    return result.to_dict()


def apply_checkpoint_config(config: Config, payload: dict, path: Path) -> None:
    """The settings a checkpoint was trained with (not this machine's), checked as any run's."""
    retired = {k: v for k, v in payload["config"].items() if k in RETIRED_KEYS and v != RETIRED_KEYS[k]}
    if retired:  # a checkpoint trained with an option the model no longer has would rank differently
        key = next(iter(retired))
        raise ConfigError(f"{path}: trained with {key}={retired[key]!r}, which this version cannot compute; "
                          f"{RETIRED_HINT}", key=key)
    for key, value in payload["config"].items():
        if key in config and key not in _MACHINE_KEYS:
            config[key] = value
    try:
        config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{path}: its stored config is not valid here: {exc}", key=exc.key) from None


def trained_model(load_dir: str | Path, dataset_name: str, config_dict: dict | None = None):
    """(model, config, training split) of a checkpoint written by ``run --save``, on
    ``dataset_name``: the model it names, its stored settings, its weights; refused (one line)
    when it is not one or was trained on other data."""
    path = checkpoint_path(Path(load_dir))
    model_name, engine, _ = checkpoint_model(path)
    if engine != "standalone":
        raise UserInputError(f"{path}: trained in MMRec's pipeline ({model_name}); serve it with --engine mmrec "
                             "--mmrec-root PATH")
    config, model_cls = checked_config(model_name, dataset_name, config_dict)
    if dataset_name == "synthetic":
        ensure_synthetic(Path(str(config["data_path"]) + dataset_name))
    dataset = RecDataset(config)
    train_ds, _, _ = dataset.split()
    payload = load_checkpoint(path, dataset_fingerprint(dataset, feature_paths(config)), dataset_name, model_name)
    apply_checkpoint_config(config, payload, path)
    init_seed(int(config["seed"]))
    train = TrainDataLoader(config, train_ds, int(config["train_batch_size"]), shuffle=False)
    model = model_cls(config, train).to(config["device"])
    load_state(model, payload["state_dict"], path, model_name)
    return model, config, train_ds


def _snapshot_identity(config: Config, fingerprint: str) -> str:
    """A snapshot's owner: the model, the data (its fingerprint) and every setting but this machine's."""
    settings = {k: v for k, v in config.to_dict().items() if k not in _MACHINE_KEYS}
    return identity_of(config["model"], f"{config['dataset']}:{fingerprint}", settings)
