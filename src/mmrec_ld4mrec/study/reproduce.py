"""Run an experiment file into the results registry, resuming where an earlier sweep stopped.

Every run the experiment needs (:meth:`Experiment.all_runs`) that the registry does not hold
as finished is started in its own process (``run_worker``): ``jobs`` at a time on this machine
(:mod:`.runners`), or as tasks on a Ray cluster (``--ray``, :mod:`.ray_runs`). Each outcome,
finished or failed, is committed to the registry here, by this process alone, as it arrives. A run that failed before is
tried again; a finished one is never recomputed. A run stopped with its sweep (Ctrl-C, a
killed process) resumes at its last saved epoch (``RESULTS/snapshots``, ``engine.snapshot``).
The tables and figures are then rebuilt from the registry (:mod:`.report`).

One sweep at a time per results folder: a sweep holds an exclusive lock on ``RESULTS/.lock``
from before it prepares anything until its last run is recorded, and a second sweep on the
folder is refused at once. Reading the registry (``results``, ``--report-only``) takes no lock.
Every run's configuration is checked (the engine's and the model's checks) before the first
run starts, so a bad key or value in the experiment file stops the sweep naming that key.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from ..data.published import prepare_diffmm, prepare_diffrec
from ..data.synthetic import ensure_synthetic
from ..errors import UserInputError
from ..files import check_output_folder
from ..mmrec.overlay import check_checkout
from .drift import changed_runs, describe
from .experiment import Experiment, RunSpec, check_runs, dataset_config_known
from .ray_runs import RayOptions
from .registry import Registry, code_version, environment, jsonable, record_problem
from .runners import Finished, LocalRunner, Runner, now

LOCK_FILE = ".lock"


def _check_folder(folder: Path, what: str) -> None:
    """``folder`` is a folder or does not exist yet; a file there or above it is refused."""
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            if not candidate.is_dir():
                where = "not a folder" if candidate == folder else f"{candidate} is not a folder"
                raise UserInputError(f"{what} {folder}: {where}; it must name the folder holding <dataset>/")
            return


def resolve_data_path(exp: Experiment, results: Path, data_path: str | None) -> Experiment:
    """``--data-path``, else the file's ``data_path`` (relative to the file), else ``RESULTS/data``;
    one that is a file (or lies under one) is refused naming where it came from."""
    if data_path:
        folder, what = Path(data_path).resolve(), "--data-path"
    elif exp.data_path:
        folder, what = (exp.path.parent / exp.data_path).resolve(), f"{exp.path}: key 'data_path'"
    else:
        folder, what = (results / "data").resolve(), "the data folder (default: RESULTS/data; see --data-path)"
    _check_folder(folder, what)
    return replace(exp, data_path=str(folder) + "/")


@contextmanager
def sweep_lock(results: Path) -> Iterator[None]:
    """Hold ``RESULTS/.lock`` exclusively (``flock``: the kernel releases it however the process
    ends, so a killed sweep never leaves the folder locked); a second sweep is refused at once."""
    check_output_folder(results, "--results")
    results.mkdir(parents=True, exist_ok=True)
    path = results / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise UserInputError(f"{path}: cannot open the sweep's lock file ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UserInputError(f"{path}: cannot lock the results folder ({exc.strerror or exc})") from None
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip()
            raise UserInputError(f"{results}: another sweep is running on this results folder"
                                 f"{f' (process {owner})' if owner.isdigit() else ''}; wait for it to end, "
                                 "or pass another --results") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def prepare_datasets(exp: Experiment, log: TextIO) -> None:
    """Build each dataset missing from the data folder: ``synthetic`` by generating it, others
    from the file's ``prepare`` entry; without one, stop naming the folder."""

    for name in exp.datasets:
        folder = Path(exp.data_path) / name
        if name == "synthetic":
            ensure_synthetic(folder)
            continue
        if folder.is_dir():
            continue
        how = exp.prepare.get(name)
        if not how:
            raise UserInputError(f"{folder}: dataset '{name}' not found; prepare it (mmrec-ld4mrec prepare ...), "
                                 f"pass --data-path, or add prepare.{name} to {exp.path}")

        print(f"preparing {name} from {how['src']} into {folder}", file=log)
        (prepare_diffmm if how["source"] == "diffmm" else prepare_diffrec)(Path(how["src"]), folder, False)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_mmrec(exp: Experiment, mmrec_root: str | None, models: list[str]) -> str | None:
    """The MMRec checkout for the ``engine: mmrec`` models among ``models``, checked before any run starts."""
    needed = [m for m in exp.mmrec_models() if m in models]
    if not needed:
        return None
    if not mmrec_root:
        raise UserInputError(f"{exp.path}: models {', '.join(needed)} use engine: mmrec; "
                             "pass --mmrec-root PATH or set MMREC_ROOT")

    root = check_checkout(Path(mmrec_root))
    for dataset in exp.datasets:
        if not (root / "src" / "configs" / "dataset" / f"{dataset}.yaml").is_file():
            raise UserInputError(f"{root}/src/configs/dataset/{dataset}.yaml: missing, so MMRec cannot run "
                                 f"'{dataset}'; run `mmrec-ld4mrec install --mmrec-root {root}` first")
    return str(root)


def _record(run: Finished, results: Path, context: dict) -> dict:
    """The registry record of a run that ended: the sweep's ``context``, then what the runner and
    the run's own process know (where it ran, the code that ran it); a result the tables could
    not read is stored as a failure."""
    outcome = run.outcome
    record = {"key": run.spec.key, "label": run.spec.label, "spec": run.spec.to_dict(), **context, **run.fields,
              **{k: outcome[k] for k in ("environment", "code") if isinstance(outcome.get(k), dict)},
              "status": outcome["status"], "started_at": run.started, "finished_at": now(),
              "wall_seconds": outcome.get("wall_seconds"), "log": str(run.log.relative_to(results))}
    if outcome["status"] == "done":
        record["result"] = outcome.get("result")
        problem = record_problem(json.loads(json.dumps(record, default=jsonable)), run.spec.key)
        if problem:  # never store what the tables could not read
            record.update(status="failed", error=f"the run's result is not usable: {problem}")
            del record["result"]
    if record["status"] == "failed":
        record.setdefault("error", str(outcome.get("error", "")))
        record["log_tail"] = _log_tail(results / record["log"])
    return record


def reproduce(exp: Experiment, results: Path, jobs: int = 1, stream: TextIO | None = None,
              poll_seconds: float = 0.2, mmrec_root: str | None = None, only_models: list[str] | None = None,
              rerun_changed: bool = False, snapshot_every: float = 120.0,
              add_segments: list[int] | None = None, ray: RayOptions | None = None) -> dict:
    """Run what the registry lacks (of ``only_models``' runs, when given); returns counts
    {total, skipped, done, failed}. Everything that can be checked is checked before the
    results folder is locked and touched. Runs save their training state every
    ``snapshot_every`` seconds (0: never) and resume from it. ``add_segments``: run instead
    only the finished main runs of these seeds whose records lack the beyond-accuracy figures
    and segments (recorded before they existed, or imported); new records replace them.
    ``ray``: run each run as a task on a Ray cluster (:mod:`.ray_runs`) instead of ``jobs``
    local processes; the registry stays here."""
    stream = stream or sys.stderr
    if jobs < 1:
        raise UserInputError(f"--jobs: expected at least 1, got {jobs}")
    if only_models:
        unknown = [m for m in only_models if m not in exp.models]
        if unknown:
            raise UserInputError(f"--models: {', '.join(unknown)} not under 'models' of {exp.path}")
    mmrec_root = check_mmrec(exp, mmrec_root or os.environ.get("MMREC_ROOT"), only_models or list(exp.models))
    check_output_folder(results, "--results")
    known = [d for d in exp.datasets if dataset_config_known(exp, d)]
    check_runs(exp, known)
    if ray:
        ray.check()
    with sweep_lock(results):
        prepare_datasets(exp, stream)
        check_runs(exp, [d for d in exp.datasets if d not in known])
        specs = [s for s in exp.all_runs() if not only_models or s.model in only_models]
        if add_segments:
            specs = _without_segments(exp, results, specs, add_segments)
        code = code_version()
        runners = ray.runner(exp, results, mmrec_root, snapshot_every, stream, code) if ray else \
            nullcontext(LocalRunner(results, exp.data_path, jobs, mmrec_root, snapshot_every, poll_seconds))
        with runners as runner:
            return _sweep(exp, results, specs, runner, stream, code, rerun_changed, rerun_finished=bool(add_segments))


def _without_segments(exp: Experiment, results: Path, specs: list[RunSpec], seeds: list[int]) -> list[RunSpec]:
    """The finished main runs among ``specs`` of ``seeds`` whose records lack the segments."""
    main = {s.key for d in exp.datasets for m in exp.models for s in exp.main_runs(d, m)}
    with Registry(results) as registry:
        finished = registry.done()
    return [s for s in specs if s.key in main and s.seed in seeds and s.key in finished
            and not (finished[s.key].get("result") or {}).get("segments")]


def _sweep(exp: Experiment, results: Path, specs: list[RunSpec], runner: Runner, stream: TextIO, code: dict,
           rerun_changed: bool = False, rerun_finished: bool = False) -> dict:
    context = {"experiment": exp.name, "code": code, "environment": environment()}
    counts = {"total": len(specs), "skipped": 0, "done": 0, "failed": 0}
    with Registry(results) as registry:
        finished = registry.done()
        changed = changed_runs(specs, finished, exp.data_path)
        if changed and not rerun_changed:
            lines = "\n  ".join(describe(spec, diff) for spec, diff in changed[:10])
            more = f"\n  and {len(changed) - 10} more" if len(changed) > 10 else ""
            raise UserInputError(
                f"{len(changed)} finished run(s) in {registry.path} ran with settings that today's config files "
                f"no longer give (a config file changed since):\n  {lines}{more}\n"
                "To run them again with today's files, add --rerun-changed (their new records replace these). "
                "To run the recorded settings instead, write them into the model's entry of the experiment file "
                "(a new entry is a new key: its runs run again); another --results folder keeps this one as it is.")
        rerun = {spec.key for spec, _ in changed} | ({s.key for s in specs} if rerun_finished else set())
        todo = deque(s for s in specs if s.key not in finished or s.key in rerun)
        counts["skipped"] = len(specs) - len(todo)
        print(f"{exp.name}: {len(specs)} runs, {counts['skipped']} already in {registry.path}, "
              f"{len(todo)} to run {runner.describe()}", file=stream)
        # tqdm's rate counts only runs past ``initial``, so skipped runs do not make the estimate optimistic.
        # Off a terminal (logs, CI) the bar is off and each finished run is one plain line.
        tty = hasattr(stream, "isatty") and stream.isatty()
        progress = tqdm(total=len(specs), initial=counts["skipped"], unit="run", file=stream, dynamic_ncols=True,
                        disable=not tty)
        try:
            while todo or runner.busy():
                while todo and runner.has_room():
                    runner.start(todo.popleft())
                for run in runner.wait():
                    record = _record(run, results, context)
                    registry.put(record)
                    counts[record["status"]] += 1
                    note = f"{record['status']}: {run.spec.label}"
                    if record["status"] == "failed":
                        note += f" ({record['error'][:200]})"
                    finished_count = counts["skipped"] + counts["done"] + counts["failed"]
                    progress.write(f"[{finished_count}/{len(specs)}] {note}", file=stream)
                    progress.update(1)
        finally:
            progress.close()
            runner.stop()
    return counts
