"""The optimisation loop: each trial a normal run of an engine whose evaluations feed the
pruner, claimed and told under the claim lock, with its snapshots; Ctrl-C and SIGTERM queue
the trial they stop again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
from optuna.trial import TrialState

from ...engine import quick_start
from ...errors import UserInputError
from ...mmrec import driver
from .protocol import check_base_settings, check_protocol, space_record
from .request import TuneRequest, trial_settings
from .storage import Heartbeat, claim_lock, finished_states, open_storage, requeue_stale_trials, storage_lock_path

log = logging.getLogger(__name__)

RunFn = Callable[..., dict]


def default_run(request: TuneRequest) -> RunFn:
    """How each trial runs: our engine's ``run``, or with ``engine: mmrec`` MMRec's pipeline in a checkout."""
    every = request.snapshot_every
    if request.engine == "mmrec":
        run_in_mmrec = driver.run_in_mmrec  # read from the module here, so a test can stand in for it
        return lambda model, dataset, config, on_evaluation=None, snapshot=None: run_in_mmrec(
            request.mmrec_root, model, dataset, config, on_evaluation=on_evaluation, snapshot=snapshot,
            snapshot_every=every)
    run = quick_start.run
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


def objective_value(request: TuneRequest, trial: optuna.Trial, run_fn: RunFn) -> float:
    """Mean best-validation metric over the seeds; the first seed's evaluations feed the pruner."""
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


@contextlib.contextmanager
def termination_as_exit() -> Iterator[None]:
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


def tune(request: TuneRequest, run_fn: RunFn | None = None) -> optuna.Study:
    """Run this worker's share of the study until it holds ``request.trials`` finished trials;
    returns the study."""
    with termination_as_exit():
        return _tune(request, run_fn)


def _tune(request: TuneRequest, run_fn: RunFn | None) -> optuna.Study:
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
            # (modulo 2^32, numpy's seed range: the same seeds as before below it)
            study.sampler = optuna.samplers.TPESampler(seed=(request.sampler_seed * 1_000_003 + len(trials)) % 2 ** 32)
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
