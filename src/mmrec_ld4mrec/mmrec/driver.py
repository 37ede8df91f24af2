"""Run a model through MMRec's own pipeline (its Config, RecDataset, dataloaders, Trainer and
TopKEvaluator) with the shims applied, and report the same JSON as the standalone engine.

It follows MMRec's ``quick_start`` step by step but selects the grid point on
**validation** (MMRec's summary selects on test). The run happens in a child process whose
working directory is ``<mmrec_root>/src``, as ``python main.py`` would.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.beyond_accuracy import BEYOND, SEGMENT_K, beyond_accuracy_metrics, segment_metrics, training_context
from ..engine.checkpoint import CHECKPOINT_FILE, dataset_fingerprint, save_checkpoint, save_topk_csv
from ..engine.config import check_plain_name, grid_points, hyper_parameter_list, read_yaml, validate_config
from ..engine.dataloader import interaction_matrix
from ..engine.quick_start import feature_paths, peak_rss_mb
from ..engine.run_result import PointResult, RunResult, resumable, run_grid
from ..engine.snapshot import Snapshot, SnapshotUnusable
from ..errors import ConfigError, UserInputError
from ..files import die_with_parent
from ..models import MODELS, RETIRED_HINT, RETIRED_KEYS, get_model
from .cache_files import guard_torch_files
from .overlay import check_checkout
from .resume import SNAPSHOT_KEYS, restore, run_identity, snapshot_problem
from .shims import apply as apply_shims
from .trainer import display_metrics, recording_trainer


def _child(request: dict) -> dict:  # runs inside <mmrec_root>/src
    apply_shims()
    guard_torch_files(torch)  # the graphs MMRec's models cache beside the dataset
    # MMRec's modules exist only in this process (its src folder is the working directory), and
    # only after the shims have patched the stack: they cannot be imported at the top
    from utils.configurator import Config
    from utils.dataloader import EvalDataLoader, TrainDataLoader
    from utils.dataset import RecDataset
    from utils.logger import init_logger
    from utils.utils import get_model as mmrec_model
    from utils.utils import get_trainer, init_seed

    config = Config(request["model"], request["dataset"], request["config"])
    init_logger(config)
    dataset = RecDataset(config)
    train_ds, valid_ds, test_ds = dataset.split()
    log = logging.getLogger()
    for part in (dataset, train_ds, valid_ds, test_ds):
        log.info(str(part))  # also sets inter_num, which MMRec's dataloaders read
    train = TrainDataLoader(config, train_ds, batch_size=config["train_batch_size"], shuffle=True)
    valid = EvalDataLoader(config, valid_ds, additional_dataset=train_ds, batch_size=config["eval_batch_size"])
    test = EvalDataLoader(config, test_ds, additional_dataset=train_ds, batch_size=config["eval_batch_size"])
    train_matrix = interaction_matrix(train_ds, "csr")
    keys = list(config["hyper_parameters"])
    if "seed" not in keys:
        keys = ["seed"] + keys
    points = grid_points(keys, lambda key: config[key])
    snapshot = None
    if resumable(request.get("snapshot"), len(points)):
        snapshot = Snapshot(request["snapshot"], run_identity(config, dataset), float(request.get("snapshot_every", 60)),
                            torch.device(config["device"]).type)
    trainer_class = recording_trainer(get_trainer())

    def fresh_trainer():
        init_seed(config["seed"])
        train.pretrain_setup()
        model = mmrec_model(config["model"])(config, train).to(config["device"])
        return model, trainer_class(config, model, valid, train, request.get("progress"), snapshot)

    def fit_point(idx: int, point: dict) -> PointResult:
        for key, value in point.items():
            config[key] = value
        model, trainer = fresh_trainer()
        trainer.keep_best_state = bool(request.get("save"))
        saved = None if snapshot is None else snapshot.load(
            model, trainer.optimizer, SNAPSHOT_KEYS, check=lambda payload: snapshot_problem(payload, trainer, train))
        if saved is not None:
            try:
                with snapshot.restoring():
                    restore(saved, trainer, model, train)
            except SnapshotUnusable:  # set aside part-way through its restore: a fresh model, from epoch 0
                saved = None
                model, trainer = fresh_trainer()
                trainer.keep_best_state = bool(request.get("save"))
        if saved is not None:
            if request.get("progress"):  # the parent passes them to its pruner again, in order
                Path(request["progress"]).write_text("".join(line + "\n" for line in trainer.reported), encoding="utf-8")
        _, best_valid, best_test = trainer.fit(train, valid_data=valid, test_data=test, saved=False)
        if snapshot is not None:
            snapshot.discard()  # the run is over: nothing to resume
        start = time.perf_counter()
        with torch.no_grad():
            model.eval()
            for first in range(0, model.n_users, int(config["eval_batch_size"])):
                users = torch.arange(first, min(first + int(config["eval_batch_size"]), model.n_users),
                                     device=config["device"])
                torch.topk(model.full_sort_predict([users]), max(config["topk"]), dim=-1)
        inference = time.perf_counter() - start
        final = {k: (str(v) if isinstance(v, torch.device) else v) for k, v in config.final_config_dict.items()}
        valid_metrics, test_metrics, extra = display_metrics(best_valid), display_metrics(best_test), {}
        beyond = request.get("beyond_metrics") or []
        for metrics, lists, loader in ((valid_metrics, trainer.best_valid_topk, valid),
                                       (test_metrics, trainer.best_test_topk, test)):
            if lists is not None:  # computed from the ranked lists MMRec's evaluator scored, as ours
                train_items, popularity = training_context(train_matrix, loader.get_eval_users())
                metrics.update(beyond_accuracy_metrics(lists, train_items, popularity, beyond, config["topk"]))
                if loader is test and lists.shape[1] >= SEGMENT_K:
                    extra["segments"] = segment_metrics(lists, loader.get_eval_items(), train_items, popularity)
        kept[idx] = (trainer.best_state, trainer.best_test_topk, trainer.best_epoch)
        return PointResult(point=point, best_epoch=trainer.best_epoch, epochs_run=len(trainer.seconds),
                           valid=valid_metrics, test=test_metrics,
                           train_seconds_per_epoch=float(np.mean(trainer.seconds)) if trainer.seconds else 0.0,
                           inference_seconds=inference, config=copy.deepcopy(final),
                           resumed_from_epoch=int(saved["next_epoch"]) if saved is not None else None, extra=extra)

    valid_key = next(iter(display_metrics({config["valid_metric"].lower(): 0})))
    kept: dict[int, tuple] = {}
    points_run = run_grid(points, fit_point, f"{request['model']} on {request['dataset']}")
    result = RunResult(request["model"], request["dataset"], valid_key, points_run, peak_rss_mb(), engine="mmrec")
    if request.get("save"):
        best_idx = points_run.index(result.best)
        state, test_topk, best_epoch = kept[best_idx]
        if state is not None:
            save_checkpoint(Path(request["save"]), state, result.best.config,
                            dataset_fingerprint(dataset, feature_paths(config)),
                            {"model": request["model"], "dataset": request["dataset"], "best_epoch": best_epoch,
                             "engine": "mmrec"})
        if test_topk is not None:
            save_topk_csv(Path(request["save"]), request["model"], request["dataset"], best_idx,
                          np.asarray(test.get_eval_users()), test_topk[:, :50])
    return result.to_dict()


def child_environment() -> dict[str, str]:
    """The environment of MMRec's process: ours, in MMRec mode, with this process's thread budget
    (torch's thread count, which run_worker sets to cores / jobs). Without it parallel runs
    (reproduce --jobs N) each start every core's worth of OpenMP threads: with two jobs on two
    cores MMRec's BPR epochs took 5-20 s instead of 1.2 s."""
    env = dict(os.environ)
    env.pop("MMREC_LD4MREC_STANDALONE", None)
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(max(1, torch.get_num_threads()))
    return env


def _follow(proc: subprocess.Popen, progress: Path, on_evaluation, timeout: float | None) -> None:
    """Wait for the child, passing each validation line it appends to ``progress`` to
    ``on_evaluation(epoch, valid)`` when given. Whatever interrupts the wait (a pruned trial, the
    timeout, Ctrl-C or SIGTERM in this process) stops the child first, then propagates."""
    start, seen = time.monotonic(), 0
    try:
        while True:
            code = proc.poll()
            if on_evaluation is not None and progress.is_file():
                lines = progress.read_text(encoding="utf-8").split("\n")[:-1]  # complete lines only
                for line in lines[seen:]:
                    event = json.loads(line)
                    on_evaluation(int(event["epoch"]), event["valid"])
                seen = len(lines)
            if code is not None:
                return
            if timeout is not None and time.monotonic() - start > timeout:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            time.sleep(0.2)
    except BaseException:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def _prepared_settings(root: Path, dataset: str, config: dict) -> tuple[Path | None, dict]:
    """``(path, keys)`` of the ``NAME.yaml`` that ``prepare`` wrote beside the data, or ``(None, {})``
    where the checkout has ``src/configs/dataset/NAME.yaml`` (which MMRec reads itself). MMRec
    reads only the latter; the former's keys are handed to its ``Config`` as entries below the
    run's own overrides, so a prepared dataset runs without copying anything into the checkout.
    Neither: refused in one line, before MMRec starts."""
    own = root / "src" / "configs" / "dataset" / f"{dataset}.yaml"
    if own.is_file():
        return None, {}
    data_path = config.get("data_path") or read_yaml(root / "src" / "configs" / "overall.yaml").get("data_path") or ""
    folder = Path(str(data_path))
    if not folder.is_absolute():
        folder = root / "src" / folder  # MMRec resolves data_path from its src folder
    prepared = folder / dataset / f"{dataset}.yaml"
    if os.path.lexists(prepared) and not prepared.is_file():
        raise UserInputError(f"{prepared}: the dataset's config is not a file (a folder, or a link to nothing); "
                             f"it must be the {dataset}.yaml that `mmrec-ld4mrec prepare` writes")
    if not prepared.is_file():
        raise UserInputError(f"no dataset config for {dataset!r}: neither {own} nor {prepared} exists "
                             "(prepare the dataset with `mmrec-ld4mrec prepare`, or pass --data-path to where it is)")
    settings = read_yaml(prepared)
    settings.pop("hyper_parameters", None)
    return prepared, settings


def _check_model(root: Path, model: str) -> None:
    """MMRec's ``get_model`` imports ``models.<name.lower()>`` and takes the attribute ``name``:
    the module must exist in the checkout and mention the name (names are case-sensitive)."""
    check_plain_name("model", "-m", model)
    module = root / "src" / "models" / f"{model.lower()}.py"
    known = sorted(p.stem for p in (root / "src" / "configs" / "model").glob("*.yaml"))
    same = [k for k in known if k.lower() == model.lower() and k != model]
    if not module.is_file():
        close = difflib.get_close_matches(model, known, n=3)
        hint = ("; run `mmrec-ld4mrec install --mmrec-root` first" if model in MODELS
                else f"; did you mean {', '.join(close)}?" if close else "")
        raise ConfigError(f"unknown model {model!r}: MMRec looks for it in {module}, which does not exist{hint}")
    try:
        text = module.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"model {model!r}: cannot read {module} ({exc.strerror or exc})") from None
    if not re.search(rf"\b{re.escape(model)}\b", text):
        hint = f"; did you mean {', '.join(same)}? (model names are case-sensitive)" if same else ""
        raise ConfigError(f"unknown model {model!r}: {module} does not define it{hint}")


MMREC_LEARNERS = ("adam", "sgd", "adagrad", "rmsprop")  # what MMRec's Trainer._build_optimizer builds
RUN_KEYS = {"seed", "hyper_parameters", "data_path", "gpu_id", "use_gpu"}  # keys every run may set


def _check_values(root: Path, model: str, dataset: str, prepared: Path | None, settings: dict, overrides: dict) -> dict:
    """The config MMRec's ``Config`` will build (overall -> dataset -> model YAML -> the entries
    handed over), checked as the standalone engine checks it: the engine's common keys by
    :func:`validate_config` (keys it does not know pass: MMRec's baselines have their own) and,
    for this project's models, their ``check_settings`` at every grid point. Returns the
    checked (normalised) copy; errors name the file or ``--set`` the bad value came from."""
    configs = root / "src" / "configs"
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    hyper: list[str] = []
    for path in (configs / "overall.yaml", configs / "dataset" / f"{dataset}.yaml", configs / "model" / f"{model}.yaml"):
        if path.is_file():
            data = read_yaml(path)
            hyper.extend(hyper_parameter_list(data.get("hyper_parameters"), str(path)))
            merged.update(data)
            origin.update(dict.fromkeys(data, str(path)))
    merged["hyper_parameters"] = hyper
    if model in MODELS:  # MMRec's Config takes any key: ours name the options this version no longer has
        for key in overrides:
            if key in RETIRED_KEYS:
                raise ConfigError(f"--set: unknown config key '{key}'; {RETIRED_HINT}", key=key)
    known = set(merged) | set(settings) | RUN_KEYS
    unknown = [k for k in overrides if k not in known]
    if unknown:  # MMRec's Config takes any key and its model never reads it: a typo would run silently
        raise ConfigError(f"--set: unknown config key '{unknown[0]}' for {model} in MMRec (none of {configs}/overall.yaml, "
                          f"dataset/{dataset}.yaml, model/{model}.yaml sets it)", key=unknown[0])
    for where, values in ((str(prepared), settings), ("--set", overrides)):
        merged.update(values)
        origin.update(dict.fromkeys(values, where))
    if "hyper_parameters" in overrides:
        merged["hyper_parameters"] = hyper_parameter_list(overrides["hyper_parameters"], "--set")
    if "seed" not in merged["hyper_parameters"]:
        merged["hyper_parameters"] = [*merged["hyper_parameters"], "seed"]
    cfg = copy.deepcopy(merged)
    data_path = cfg.get("data_path")
    if isinstance(data_path, str) and data_path and not Path(data_path).is_absolute():
        cfg["data_path"] = str(root / "src" / data_path)  # MMRec resolves it from its src folder
    learner = overrides.get("learner", "adam")
    if not isinstance(learner, str) or learner.lower() not in MMREC_LEARNERS:  # MMRec falls back to Adam silently
        raise ConfigError(f"--set: config key 'learner': MMRec's trainer builds {', '.join(MMREC_LEARNERS)}, "
                          f"got {learner!r:.40}", key="learner")
    try:
        validate_config(cfg)
        check = getattr(get_model(model), "check_settings", None) if model in MODELS else None
        if check is not None:
            for point in grid_points(cfg["hyper_parameters"], cfg.get):
                check(lambda key, point=point: point[key] if key in point else cfg.get(key))
    except ConfigError as exc:
        where = origin.get(exc.key)
        raise ConfigError(f"{where}: {exc}" if where else str(exc), key=exc.key) from None
    return cfg


def checked_request(mmrec_root: str | Path, model: str, dataset: str, config: dict | None = None) -> dict:
    """The config entries for MMRec's ``Config`` (the prepared dataset's keys below the run's
    overrides), after every check that can be made before MMRec starts: the checkout, the
    dataset's config, the model's module, and the values (:func:`_check_values`)."""
    root = check_checkout(Path(mmrec_root))
    check_plain_name("dataset", "-d", dataset)
    overrides = dict(config or {})
    prepared, settings = _prepared_settings(root, dataset, overrides)
    _check_model(root, model)
    checked = _check_values(root, model, dataset, prepared, settings, overrides)
    request = {**settings, **overrides}
    for key in ("topk", "metrics", "valid_metric"):  # normalised as the engine does (a scalar topk: a list)
        if key in request:
            request[key] = checked[key]
    if "metrics" in request:  # MMRec's evaluator knows the accuracy metrics only: the driver adds the others
        request["metrics"] = [m for m in request["metrics"] if m.lower() not in BEYOND]
    return request


def beyond_requested(overrides: dict | None) -> list[str]:
    """The beyond-accuracy metrics a run computes from MMRec's ranked lists: those its
    ``metrics`` names, or all four when it names none (the standalone engine's default)."""
    metrics = (overrides or {}).get("metrics")
    if metrics is None:
        return list(BEYOND.values())
    return [BEYOND[m.lower()] for m in ([metrics] if isinstance(metrics, str) else metrics) if m.lower() in BEYOND]


def run_in_mmrec(mmrec_root: str | Path, model: str, dataset: str, config: dict | None = None,
                 timeout: float | None = None, on_evaluation: Callable[[int, dict], None] | None = None,
                 snapshot: str | Path | None = None, snapshot_every: float = 60.0,
                 save_dir: str | Path | None = None) -> dict:
    """Run ``model`` on ``dataset`` inside the checkout; returns the result dict. Every value is
    checked first (:func:`checked_request`): a bad one is refused in one line, before MMRec starts.
    ``on_evaluation(epoch, valid_metrics)`` is called after each of MMRec's validations, as the
    standalone engine's; an exception it raises (a pruned trial) stops the run and propagates.
    ``snapshot``: a file the run saves its training state to and resumes from (``mmrec.resume``).
    ``save_dir``: keep the best grid point's best-epoch weights there (``run --save``; ``recommend``
    serves them) with the test users' top-50 CSV."""
    root = check_checkout(Path(mmrec_root))
    if save_dir is not None and (Path(save_dir) / CHECKPOINT_FILE).exists():
        raise UserInputError(f"{Path(save_dir) / CHECKPOINT_FILE}: a checkpoint is already there; choose another "
                             "--save folder (nothing was overwritten)")
    beyond = beyond_requested(config)
    config = checked_request(root, model, dataset, config)
    with tempfile.TemporaryDirectory() as tmp:
        out, progress = Path(tmp) / "result.json", Path(tmp) / "progress.jsonl"
        request = {"model": model, "dataset": dataset, "config": config, "out": str(out), "beyond_metrics": beyond}
        if snapshot is not None:
            request.update(snapshot=str(Path(snapshot).resolve()), snapshot_every=float(snapshot_every))
        if save_dir is not None:
            Path(save_dir).mkdir(parents=True, exist_ok=True)
            request["save"] = str(Path(save_dir).resolve())
        if on_evaluation is not None:
            request["progress"] = str(progress)
        proc = subprocess.Popen([sys.executable, "-m", "mmrec_ld4mrec.mmrec.driver", json.dumps(request)],
                                cwd=root / "src", env=child_environment())
        _follow(proc, progress, on_evaluation, timeout)
        if proc.returncode != 0 or not out.is_file():
            raise UserInputError(f"MMRec run of {model} on {dataset} failed (exit {proc.returncode}); see its log above")
        return json.loads(out.read_text())


def child_main(child: Callable[[dict], dict], out_key: str) -> None:
    """The body of a process inside MMRec's src folder: ``child`` on the JSON request of argv[1],
    its result written to the request's ``out_key`` file; a bad input one ``error:`` line, exit 2."""
    die_with_parent()
    sys.path.insert(0, os.getcwd())
    req = json.loads(sys.argv[1])
    try:
        result = child(req)
    except UserInputError as exc:  # one line naming the file, not MMRec's traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    Path(req[out_key]).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    child_main(_child, "out")
