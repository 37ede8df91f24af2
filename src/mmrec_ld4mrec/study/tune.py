"""Equal-budget hyper-parameter search on Optuna: ``mmrec-ld4mrec tune``.

Every model is searched the same way: a TPE sampler with a fixed seed over the model's search
space (``configs/search/MODEL.yaml``), ``--trials`` finished trials per study, each trial a
normal run of the engine (MMRec's protocol, early stopping on validation) whose objective is
the best validation metric (``valid_metric``, Recall@20 by default; the mean over ``--seeds``
seeds). Test metrics are stored beside each trial and never consulted. Trials of both engines
report their validation metric after every evaluation to a median pruner, which stops a
trial that trails the earlier trials at the same epoch, once its warm-up has passed: by default
as many epochs as early stopping's patience (``stopping_step`` x ``eval_step``), so no trial is
pruned in its first ``stopping_step`` evaluations and a slow starter (a small learning rate, a
deep graph) is not cut at its first evaluations. Trials run on tuning seeds (1001, 1002, ...)
kept apart from the seeds a reproduction reports (1-10).

A study records this protocol (engine, seeds, sampler seed, pruner, fixed settings) and its
search space when it starts; resuming it under others is refused, naming what differs.

The study lives in an Optuna storage: a SQLite file by default, so a killed study resumes
where it stopped; any storage URL or a journal file (``journal:PATH``) lets several workers
share one study. Workers on one machine (or on a file system with working ``fcntl`` locks)
take trials under a lock beside the storage file, so N finished trials are N in total. A
worker that dies leaves its trial running with a heartbeat that stops: any worker that finds
the heartbeat older than the grace period marks the trial failed and queues its parameters
again, so no finished trial is lost or repeated and no claimed trial is dropped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..engine.config import read_yaml
from ..errors import ConfigError, UserInputError
from ..resources import resource_dir

log = logging.getLogger(__name__)

KINDS = ("int", "float", "log_float", "categorical")
RunFn = Callable[..., dict]


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``int`` / ``float`` / ``log_float`` in [low, high], or ``categorical``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.kind == "log_float")


def search_space_path(model: str) -> Path:
    """``configs/search/MODEL.yaml`` of this project."""
    return resource_dir("configs", "overall.yaml") / "search" / f"{model}.yaml"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_dimension(path: Path, name: str, spec: Any) -> Dimension:
    """One entry of a search-space file, checked; errors name the file and the key."""
    where = f"{path}: key '{name}'"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: expected a mapping with 'type' (one of {', '.join(KINDS)}), got {spec!r}")
    kind = spec["type"]
    if kind not in KINDS:
        raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ConfigError(f"{where}: unexpected field(s) {extra} for type {kind} (expected {sorted(allowed)})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: categorical needs a non-empty list 'choices', got {choices!r}")
        if any(isinstance(c, dict | list) for c in choices) and not all(isinstance(c, list) for c in choices):
            raise ConfigError(f"{where}: choices must be scalars (or all lists), got {choices!r}")
        # Optuna stores categorical choices as scalars: lists (e.g. DiffRec's dims) travel as strings
        return Dimension(name, kind, choices=tuple(yaml.safe_dump(c, default_flow_style=True).strip()
                                                   if isinstance(c, list) else c for c in choices))
    low, high = spec.get("low"), spec.get("high")
    if not _number(low) or not _number(high):
        raise ConfigError(f"{where}: {kind} needs numbers 'low' and 'high', got low={low!r}, high={high!r}")
    if kind == "int" and (not isinstance(low, int) or not isinstance(high, int)):
        raise ConfigError(f"{where}: int needs integer bounds, got low={low!r}, high={high!r}")
    if not low < high:
        raise ConfigError(f"{where}: expected low < high, got low={low!r}, high={high!r}")
    if kind == "log_float" and low <= 0:
        raise ConfigError(f"{where}: log_float needs low > 0, got low={low!r}")
    return Dimension(name, kind, float(low) if kind != "int" else low, float(high) if kind != "int" else high)


def config_files(model: str, engine: str = "standalone", mmrec_root: str | Path | None = None) -> list[Path]:
    """The overall and model YAMLs a run of ``model`` reads: this project's, or with
    ``engine: mmrec`` the checkout's (where the overlay puts ours)."""
    if engine == "mmrec":
        if mmrec_root is None:
            raise UserInputError("--engine mmrec needs --mmrec-root PATH (an MMRec checkout)")
        root = Path(mmrec_root) / "src" / "configs"
    else:
        root = resource_dir("configs", "overall.yaml")
    files = [root / "overall.yaml", root / "model" / f"{model}.yaml"]
    if not files[1].is_file():
        raise ConfigError(f"no config file {files[1]} for model '{model}'")
    return files


def default_config(model: str, engine: str = "standalone", mmrec_root: str | Path | None = None,
                   dataset: str | None = None) -> dict:
    """The run's defaults before ``--set``: overall YAML, the dataset's (when there is one),
    then the model's, in the order both engines merge them."""
    overall, model_yaml = config_files(model, engine, mmrec_root)
    files = [overall, overall.parent / "dataset" / f"{dataset}.yaml", model_yaml] if dataset else [overall, model_yaml]
    merged: dict = {}
    for f in files:
        if f.is_file():
            merged.update(read_yaml(f) or {})
    return merged


def known_keys(model: str, engine: str = "standalone", mmrec_root: str | Path | None = None) -> set[str]:
    """The config keys a run of ``model`` accepts."""
    return set(default_config(model, engine, mmrec_root))


def load_space(path: Path, model: str, engine: str = "standalone", mmrec_root=None) -> list[Dimension]:
    """A search-space YAML, every entry checked against its type and the model's config keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no search space {path} for model '{model}' (write one: docs/tuning.md)")
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of config key -> search range, got {data!r}")
    keys = known_keys(model, engine, mmrec_root)
    dims = []
    for name, spec in data.items():
        if name not in keys:
            raise ConfigError(f"{path}: key '{name}' is not a config key of {model} (not in its YAML or overall.yaml)")
        if name in ("seed", "hyper_parameters", "data_path", "epochs", "stopping_step"):
            raise ConfigError(f"{path}: key '{name}' is fixed by the protocol and cannot be searched")
        dims.append(parse_dimension(path, name, spec))
    return dims


def storage_lock_path(url: str) -> Path | None:
    """The lock file beside a file storage (``sqlite:///PATH``, ``journal:PATH``); None for a server."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            path = Path(url[len(prefix):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return path.with_name(path.name + ".claim.lock")  # ".lock" is the journal backend's own
    if "://" not in url:
        raise UserInputError(f"--storage: expected sqlite:///PATH, journal:PATH or a database URL, got {url!r}")
    return None


def open_storage(url: str):
    """An Optuna storage: ``journal:PATH`` (a journal file), else a database URL (``sqlite:///PATH``
    and any SQLAlchemy URL). Open it under :func:`claim_lock`: two processes creating one SQLite
    file's tables at once collide."""
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    if url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


@contextlib.contextmanager
def claim_lock(lock_path: Path | None) -> Iterator[None]:
    """Serialise trial claims among the workers that share a storage file."""
    if lock_path is None:
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Heartbeat:
    """Stamps a running trial's ``heartbeat`` user attribute every ``interval`` seconds."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # the trial may have just finished
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())

    def __enter__(self) -> Heartbeat:
        self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def requeue_stale_trials(study, storage, grace: float) -> list[int]:
    """Running trials whose heartbeat is older than ``grace`` seconds (their worker died) are
    marked failed and their parameters queued again; returns their numbers."""
    from optuna.trial import TrialState

    stale = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
        if now - float(beat) > grace:
            try:
                if trial.datetime_start is not None:  # the time it ran until its last heartbeat counts in the budget
                    storage.set_trial_user_attr(trial._trial_id, "wall_seconds",
                                                max(0.0, float(beat) - trial.datetime_start.timestamp()))
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except Exception:  # another worker got there first
                continue
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
            stale.append(trial.number)
    return stale


@dataclass
class TuneRequest:
    model: str
    dataset: str
    trials: int
    storage: str
    study_name: str
    settings: dict
    seeds: list[int]
    space: list[Dimension]
    engine: str = "standalone"
    mmrec_root: str | None = None
    sampler_seed: int = 0
    warmup_epochs: int = 20
    startup_trials: int = 5
    heartbeat_seconds: float = 30.0
    grace_seconds: float = 120.0
    max_failures: int = 5
    snapshot_dir: str | None = None  # where trials save their training state (None: trials restart from epoch 0)
    snapshot_every: float = 120.0


TUNING_SEED_BASE = 1000


def tuning_seeds(count: int) -> list[int]:
    """Seeds 1001..1000+count: a trial's seeds, apart from the seeds a reproduction reports."""
    return list(range(TUNING_SEED_BASE + 1, TUNING_SEED_BASE + count + 1))


def patience_epochs(settings: dict, defaults: dict) -> int:
    """Epochs of early stopping's patience, ``stopping_step`` x ``eval_step``: the pruner's warm-up.

    Both engines report the 0-based epoch of each evaluation and Optuna prunes from step
    ``warm-up`` on, so a trial is never pruned in its first ``stopping_step`` evaluations;
    early stopping itself can end a trial at evaluation ``stopping_step + 2`` at the earliest,
    one evaluation after pruning may start."""
    def value(key: str) -> int:
        raw = settings.get(key, defaults.get(key))
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            raise ConfigError(f"{key}: expected an integer >= 1 for the pruner's warm-up, got {raw!r}")
        return raw
    return value("stopping_step") * value("eval_step")


MACHINE_KEYS = ("data_path", "gpu_id", "use_gpu", "cuda_graphs")  # where a trial runs, not what it computes


def protocol(request: TuneRequest) -> dict:
    """What makes one study's trials comparable, recorded in the study and checked on resume, in
    the JSON form every storage returns (so a resume compares like with like)."""
    record = {"engine": request.engine, "seeds": list(request.seeds), "sampler_seed": request.sampler_seed,
              "pruner": {"kind": "median", "startup_trials": request.startup_trials,
                         "warmup_epochs": request.warmup_epochs},
              "settings": {k: v for k, v in sorted(request.settings.items()) if k not in MACHINE_KEYS}}
    try:
        return json.loads(json.dumps(record, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"--set: every fixed value must be a plain number, string, boolean or list to be "
                             f"recorded in the study ({exc})") from None


def space_record(space: list[Dimension]) -> dict:
    """A search space as the study stores it (JSON types, as any storage returns them)."""
    return json.loads(json.dumps({d.name: [d.kind, d.low, d.high, list(d.choices or [])] for d in space}))


def check_protocol(study, request: TuneRequest) -> None:
    """Record the protocol in a new study; refuse to resume one started under another, or with
    another search space."""
    recorded, wanted = study.user_attrs.get("protocol"), protocol(request)
    if recorded is None and study.get_trials(deepcopy=False):
        raise UserInputError(f"study '{request.study_name}' in {request.storage} was started before studies "
                             "recorded their protocol (seeds, pruner, settings): its trials are not comparable "
                             "with new ones; start a new study (--study NAME or another --storage)")
    space, wanted_space = study.user_attrs.get("space"), space_record(request.space)
    if space is not None and space != wanted_space:
        changed = sorted(k for k in set(space) | set(wanted_space) if space.get(k) != wanted_space.get(k))
        raise UserInputError(f"study '{request.study_name}' in {request.storage} was started with another search "
                             f"space (keys that differ: {', '.join(changed)}); resume it with that space (--space "
                             "FILE) or start a new study (--study NAME)")
    if recorded is None:
        study.set_user_attr("protocol", wanted)
        return
    differs = sorted(k for k in wanted if recorded.get(k) != wanted[k])
    if differs:
        detail = "; ".join(f"{k}: study has {recorded.get(k)!r}, this call {wanted[k]!r}" for k in differs)
        raise UserInputError(f"study '{request.study_name}' in {request.storage} was started under another protocol "
                             f"({detail}); resume it with the same options or start a new study (--study NAME)")


def base_settings(request: TuneRequest) -> dict | None:
    """What every trial runs with beyond its parameters, as today's config files give it (the
    standalone engine; None for MMRec's, or where the dataset's config is not found here)."""
    if request.engine != "standalone":
        return None
    from .drift import plain, settings_now

    overrides = {k: v for k, v in request.settings.items() if k != "data_path"}
    now = settings_now(request.model, request.dataset, request.seeds[0], overrides, request.settings.get("data_path"))
    if now is None:
        return None
    space = {d.name for d in request.space}
    return {k: v for k, v in plain(now).items() if k not in space}


def check_base_settings(study, request: TuneRequest) -> None:
    """Record what a new study's trials run with beyond their parameters; refuse to resume one
    whose config files have changed since (its finished trials ran another configuration). A
    study from before this record is stamped now, with the trial number the check starts at
    (``base_settings_from_trial``): what its earlier trials ran with is not known. A study whose
    budget is spent runs nothing more: a change is then a warning, and its profile is exported."""
    from .drift import changed_settings

    now = base_settings(request)
    if now is None:
        return
    recorded = study.user_attrs.get("base_settings")
    trials = study.get_trials(deepcopy=False)
    if recorded is None:
        study.set_user_attr("base_settings", now)
        if trials:
            study.set_user_attr("base_settings_from_trial", len(trials))
            log.info("%s: from before studies recorded their settings; checked from trial %d on",
                     request.study_name, len(trials))
        return
    changed = changed_settings(recorded, now, request.model)
    if not changed:
        return
    detail = ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in changed.items())
    if sum(t.state in finished_states() for t in trials) >= request.trials:
        log.warning("%s: its trials ran with settings that today's config files no longer give (%s); its budget "
                    "is spent, so nothing runs and its profile is exported as it stands", request.study_name, detail)
        return
    raise UserInputError(f"study '{request.study_name}' in {request.storage}: its trials ran with settings that "
                         f"today's config files no longer give ({detail}); put the config file back, or start "
                         "a new study (--study NAME)")


def trial_settings(request: TuneRequest, params: dict, seed: int) -> dict:
    """A trial's run config: ``--set`` values, the trial's parameters, one seed, no YAML grid."""
    values = {}
    for dim in request.space:
        value = params[dim.name]
        if dim.kind == "categorical" and isinstance(value, str) and value.startswith("["):
            value = yaml.safe_load(value)
        values[dim.name] = value
    return {**request.settings, **values, "seed": seed, "hyper_parameters": []}


def default_run(request: TuneRequest) -> RunFn:
    every = request.snapshot_every
    if request.engine == "mmrec":
        from ..mmrec.driver import run_in_mmrec

        return lambda model, dataset, config, on_evaluation=None, snapshot=None: run_in_mmrec(
            request.mmrec_root, model, dataset, config, on_evaluation=on_evaluation, snapshot=snapshot,
            snapshot_every=every)
    from ..engine.quick_start import run

    return lambda model, dataset, config, on_evaluation=None, snapshot=None: run(
        model, dataset, config, on_evaluation=on_evaluation, snapshot=snapshot, snapshot_every=every)


def snapshot_path(request: TuneRequest, params: dict, seed: int) -> Path | None:
    """Where a trial's run on ``seed`` keeps its training state: named by the study, the
    parameters and the seed, so that the trial queued again after a stop finds it."""
    if request.snapshot_dir is None:
        return None
    key = hashlib.sha1(json.dumps({"params": params, "seed": seed}, sort_keys=True, default=str).encode()).hexdigest()
    return Path(request.snapshot_dir) / request.study_name / f"{key[:16]}.snapshot"


def discard_snapshots(request: TuneRequest, params: dict) -> None:
    """Remove a finished (or pruned, or failed) trial's snapshots: nothing of it is resumed."""
    for seed in request.seeds:
        path = snapshot_path(request, params, seed)
        if path is not None:
            path.unlink(missing_ok=True)


def objective_value(request: TuneRequest, trial, run_fn: RunFn) -> float:
    """Mean best-validation metric over the seeds; the first seed's evaluations feed the pruner."""
    import optuna

    params = {dim.name: dim.suggest(trial) for dim in request.space}
    metric = request.settings.get("valid_metric", "Recall@20")
    values, tests = [], []

    def report(epoch: int, valid: dict) -> None:
        trial.report(float(valid[metric]), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()

    for k, seed in enumerate(request.seeds):
        resumable = {} if request.snapshot_dir is None else {"snapshot": snapshot_path(request, params, seed)}
        result = run_fn(request.model, request.dataset, trial_settings(request, params, seed),
                        on_evaluation=report if k == 0 else None, **resumable)
        values.append(float(result["valid"][metric]))
        tests.append({key: result["test"].get(key) for key in ("Recall@20", "NDCG@20")})
        trial.set_user_attr(f"seed_{seed}", {"valid": values[-1], "test": tests[-1], "best_epoch": result["best_epoch"],
                                             "train_seconds_per_epoch": result.get("train_seconds_per_epoch")})
    return statistics.mean(values)


def finished_states():
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


@contextlib.contextmanager
def termination_as_exit():
    """SIGTERM (``kill``, a Slurm job's time limit or preemption) raises ``SystemExit`` while the
    study runs, as Ctrl-C raises ``KeyboardInterrupt``, so the trial it stops is queued again at
    once instead of waiting out the heartbeat's grace period. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the re-queueing short
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def tune(request: TuneRequest, run_fn: RunFn | None = None) -> Any:
    """Run this worker's share of the study until it holds ``request.trials`` finished trials;
    returns the study."""
    with termination_as_exit():
        return _tune(request, run_fn)


def _tune(request: TuneRequest, run_fn: RunFn | None) -> Any:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_fn = run_fn or default_run(request)
    lock = storage_lock_path(request.storage)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=request.startup_trials, n_warmup_steps=request.warmup_epochs)
    with claim_lock(lock):
        storage = open_storage(request.storage)
        study = optuna.create_study(storage=storage, study_name=request.study_name, direction="maximize",
                                    pruner=pruner, load_if_exists=True)
        recorded = study.user_attrs.get("model")
        if recorded is None:
            study.set_user_attr("model", request.model)
            study.set_user_attr("dataset", request.dataset)
            study.set_user_attr("space", space_record(request.space))
        elif (recorded, study.user_attrs.get("dataset")) != (request.model, request.dataset):
            raise UserInputError(f"study '{request.study_name}' in {request.storage} belongs to "
                                 f"{recorded} on {study.user_attrs.get('dataset')}, not {request.model} on {request.dataset}")
        check_protocol(study, request)
        check_base_settings(study, request)
    failures = 0
    while True:
        with claim_lock(lock):
            for number in requeue_stale_trials(study, storage, request.grace_seconds):
                log.warning("trial %d of %s: its worker stopped; its parameters are queued again", number,
                            request.study_name)
            if lock is None:  # a database server: another worker may have recorded its protocol meanwhile
                check_protocol(study, request)
            trials = study.get_trials(deepcopy=False)
            done = sum(t.state in finished_states() for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if done + running >= request.trials:
                break
            # reseeded per trial number: reproducible alone, distinct draws across workers
            study.sampler = optuna.samplers.TPESampler(seed=request.sampler_seed * 1_000_003 + len(trials))
            trial = study.ask()
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        started = time.time()
        with Heartbeat(storage, trial._trial_id, request.heartbeat_seconds):
            try:
                value = objective_value(request, trial, run_fn)
            except optuna.TrialPruned:
                trial.set_user_attr("wall_seconds", time.time() - started)
                study.tell(trial, state=TrialState.PRUNED)
                discard_snapshots(request, trial.params)
                log.info("trial %d pruned after %.0f s", trial.number, time.time() - started)
                continue
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM: the next run retries its parameters
                # (from its snapshot, where it has one); the time spent counts in the budget table
                trial.set_user_attr("wall_seconds", time.time() - started)
                study.tell(trial, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
                raise
            except Exception as exc:  # a configuration that fails (NaN, memory) fails its trial only
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                study.tell(trial, state=TrialState.FAIL)
                discard_snapshots(request, trial.params)
                failures += 1
                log.warning("trial %d failed: %s", trial.number, exc)
                if failures >= request.max_failures:
                    raise UserInputError(f"{failures} trials of {request.study_name} failed; the last: "
                                         f"{type(exc).__name__}: {exc}") from None
                continue
        trial.set_user_attr("wall_seconds", time.time() - started)
        study.tell(trial, value)
        discard_snapshots(request, trial.params)
        log.info("trial %d: %s = %.4f (%.0f s) %s", trial.number, request.settings.get("valid_metric", "Recall@20"),
                 value, time.time() - started, trial.params)
    return study


def budget_row(study) -> dict:
    """Trials, pruned, failed and wall time of a study (the report's budget table)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return {"complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "wall_seconds": sum(float(t.user_attrs.get("wall_seconds", 0.0)) for t in trials)}


def best_profile(study, request: TuneRequest) -> dict:
    """The best complete trial (on validation) as run settings: ``--set`` values plus its parameters."""
    best = study.best_trial
    settings = trial_settings(request, best.params, request.seeds[0])
    for key in ("seed", "hyper_parameters", "data_path"):  # seeds are the reproduction's; the path is this machine's
        settings.pop(key, None)
    return {"model": request.model, "dataset": request.dataset, "study": request.study_name,
            "trial": best.number, "valid_" + request.settings.get("valid_metric", "Recall@20"): best.value,
            "budget": {"trials": request.trials, **budget_row(study)}, "settings": settings}


def write_profile(path: Path, profile: dict) -> None:
    from ..files import atomic_write

    header = (f"# best trial {profile['trial']} of study {profile['study']} ({profile['model']} on {profile['dataset']}),\n"
              "# selected on validation only; written by mmrec-ld4mrec tune\n")
    text = header + yaml.safe_dump(profile, sort_keys=False)
    atomic_write(Path(path), lambda p: Path(p).write_text(text, encoding="utf-8"))


def read_profile(path: Path) -> dict:
    """A profile ``tune`` exported: a mapping with ``model`` and a ``settings`` mapping."""
    if not Path(path).is_file():
        raise UserInputError(f"{path}: profile not found")
    data = read_yaml(Path(path))
    if not isinstance(data, dict) or not isinstance(data.get("model"), str) or not isinstance(data.get("settings"), dict):
        raise ConfigError(f"{path}: expected a profile written by `tune` (keys 'model' and 'settings'), got "
                          f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    return data
