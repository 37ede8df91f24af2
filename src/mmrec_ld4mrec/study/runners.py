"""Where a sweep's runs run: local processes (this module) or Ray tasks (:mod:`.ray_runs`).

A runner starts runs and hands back each one that ended as a :class:`Finished`: what the run's
process reported (``run_worker``'s outcome), where its log is, and the fields of its record
that only the runner knows (the node it ran on, how many attempts it took). The sweep
(:mod:`.reproduce`) turns that into the record and is the registry's only writer, whichever
runner ran the run. A runner that is stopped (Ctrl-C) ends its unfinished runs and leaves no
trace of them: no record, no half-written outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from .experiment import RunSpec

LOG_DIR = "logs"
WORK_DIR = "work"
SNAPSHOT_DIR = "snapshots"  # a run's training state while it runs (engine.snapshot): a stopped sweep resumes it


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Finished:
    spec: RunSpec
    outcome: dict  # run_worker's: status, result or error, wall_seconds, environment, code
    started: str
    log: Path  # the run's log, under the results folder
    fields: dict = field(default_factory=dict)  # record fields the runner knows: jobs, node, attempts


class Runner(Protocol):
    def describe(self) -> str:
        """Where the runs go, for the sweep's opening line ("with 2 job(s)")."""

    def has_room(self) -> bool:
        """Whether another run can be started now."""

    def start(self, spec: RunSpec) -> None:
        """Start ``spec``'s run."""

    def busy(self) -> bool:
        """Whether a started run has not ended yet."""

    def wait(self) -> list[Finished]:
        """The runs that ended since the last call, after waiting a moment for one."""

    def stop(self) -> None:
        """End the unfinished runs, leaving no trace of them (also after the last run)."""


def run_payload(spec: RunSpec, data_path: str, threads: int, mmrec_root: str | None, snapshot: str | None,
                snapshot_every: float) -> dict:
    """What ``run_worker`` reads: the run, the settings it runs with, and where it snapshots."""
    return {"model": spec.model, "dataset": spec.dataset,
            "config": {**spec.overrides, "seed": spec.seed, "data_path": data_path},
            "threads": threads, "mmrec_root": mmrec_root, "snapshot": snapshot, "snapshot_every": snapshot_every}


@dataclass
class _Process:
    spec: RunSpec
    proc: subprocess.Popen
    out: Path
    log: Path
    started: str


class LocalRunner:
    """``jobs`` runs at a time, each in its own process on this machine (``run_worker``),
    with ``cores // jobs`` threads each."""

    def __init__(self, results: Path, data_path: str, jobs: int, mmrec_root: str | None, snapshot_every: float,
                 poll_seconds: float = 0.2):
        self.results, self.data_path, self.jobs = results, data_path, jobs
        self.mmrec_root, self.snapshot_every, self.poll_seconds = mmrec_root, snapshot_every, poll_seconds
        self.threads = max(1, (os.cpu_count() or 1) // jobs)
        self.running: list[_Process] = []

    def describe(self) -> str:
        return f"with {self.jobs} job(s)"

    def has_room(self) -> bool:
        return len(self.running) < self.jobs

    def busy(self) -> bool:
        return bool(self.running)

    def start(self, spec: RunSpec) -> None:
        work, logs = self.results / WORK_DIR, self.results / LOG_DIR
        work.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        spec_file, out = work / f"{spec.key}.spec.json", work / f"{spec.key}.out.json"
        out.unlink(missing_ok=True)
        # snapshots live outside work/, which a stopped sweep clears
        snapshot = self.results / SNAPSHOT_DIR / f"{spec.key}.snapshot" if self.snapshot_every else None
        payload = run_payload(spec, self.data_path, self.threads, self.mmrec_root,
                              str(snapshot) if snapshot else None, self.snapshot_every)
        spec_file.write_text(json.dumps(payload), encoding="utf-8")
        log = logs / f"{spec.key}.log"
        with open(log, "w", encoding="utf-8") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "mmrec_ld4mrec.study.run_worker", str(spec_file), str(out)],
                                    stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.running.append(_Process(spec, proc, out, log, now()))

    def wait(self) -> list[Finished]:
        time.sleep(self.poll_seconds)
        ended = [j for j in self.running if j.proc.poll() is not None]
        finished = []
        for job in ended:
            self.running.remove(job)
            finished.append(Finished(job.spec, self._outcome(job), job.started, job.log,
                                     {"jobs": self.jobs, "runner": "local"}))
            self._forget(job)
        return finished

    def stop(self) -> None:
        for job in self.running:  # interrupted: unfinished runs leave no record and rerun next time
            job.proc.kill()
            job.proc.wait()
            self._forget(job)
        self.running.clear()
        work = self.results / WORK_DIR
        if work.is_dir():
            for leftover in [*work.glob("*.json"), *work.glob("*.tmp")]:  # a run interrupted while being started
                leftover.unlink(missing_ok=True)
            if not any(work.iterdir()):
                work.rmdir()

    @staticmethod
    def _outcome(job: _Process) -> dict:
        try:
            outcome = json.loads(job.out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            outcome = None
        if not isinstance(outcome, dict) or outcome.get("status") not in ("done", "failed"):
            return {"status": "failed", "error": f"the run's process ended with code {job.proc.returncode} "
                                                 "and no result (killed, or out of memory?)"}
        return outcome

    def _forget(self, job: _Process) -> None:
        job.out.unlink(missing_ok=True)
        job.out.with_suffix(".tmp").unlink(missing_ok=True)
        (self.results / WORK_DIR / f"{job.spec.key}.spec.json").unlink(missing_ok=True)
