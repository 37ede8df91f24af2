"""``reproduce --ray``: a sweep's runs as tasks on a Ray cluster, its registry on the driver.

Every run becomes one Ray task (:func:`.ray_node.run_on_node`) that asks for the stated CPUs
and GPUs; Ray places it on a node of the cluster. The outcome and the log come back to the
driver, which writes the record and the log as a local sweep does: the registry has one
writer, on one machine, and nothing about it changes. A run whose process, worker or node is
lost is submitted again, up to :data:`ATTEMPTS` attempts in all, and recorded once, when it
ends. Stopping the driver (Ctrl-C) ends the runs in flight with its connection; they leave no
record, and the next sweep skips what finished.

A dataset folder up to :data:`SHIP_LIMIT` bytes travels through Ray's object store, once per
sweep and node; a larger one is read at the data path on every node, which must then be a
path every node sees (docs/reproduce.md). Ray is optional: the ``ray`` extra (:data:`INSTALL`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import socket
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ..errors import UserInputError
from ..files import atomic_write
from .experiment import Experiment, RunSpec
from .ray_node import run_on_node
from .runners import LOG_DIR, Finished, now, run_payload

INSTALL = "pip install -e '.[ray]' in this package's checkout (or pip install 'mmrec-ld4mrec[ray]')"
SHIP_LIMIT = 64 << 20
ATTEMPTS = 3


def import_ray():  # -> the ray module
    """Ray, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserInputError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how the runs go. ``address``: a cluster's ``HOST:PORT`` (or ``ray://...``);
    None: ``RAY_ADDRESS``, else the cluster ``ray start`` began on this machine, else a new
    local one. ``cpus``/``gpus``: what each run asks for (``gpus`` None: one GPU when the
    cluster has any, else none)."""

    address: str | None = None
    cpus: float = 1.0
    gpus: float | None = None
    ship_limit: int = SHIP_LIMIT

    def check(self) -> None:
        """Ray is installed and each run asks for what Ray can grant (steps of 0.0001)."""
        import_ray()
        if not (self.cpus > 0 and math.isfinite(self.cpus) and round(self.cpus, 4) == self.cpus):
            raise UserInputError(f"--cpus-per-run: expected a number of CPUs above 0 in steps of 0.0001, got {self.cpus}")
        if self.gpus is not None and not (self.gpus >= 0 and math.isfinite(self.gpus) and round(self.gpus, 4) == self.gpus):
            raise UserInputError(f"--gpus-per-run: expected a number of GPUs of at least 0 in steps of 0.0001, "
                                 f"got {self.gpus}")

    @contextmanager
    def runner(self, exp: Experiment, results: Path, mmrec_root: str | None, snapshot_every: float,
               stream: TextIO, code: dict) -> Iterator[RayRunner]:
        """Connected to the cluster for the sweep's lifetime (left connected if the caller was);
        ``code``: the driver's version, which every node must run."""
        ray = import_ray()
        connected_before = ray.is_initialized()
        if not connected_before:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError, ...
                where = self.address or "the default address (RAY_ADDRESS, or a local cluster)"
                raise UserInputError(f"--ray {where}: cannot start or reach a Ray cluster there "
                                     f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        try:
            runner = RayRunner(ray, self, exp, results, mmrec_root, snapshot_every, stream, code)
            runner.keep_connection = connected_before
            yield runner
        finally:
            if not connected_before:
                ray.shutdown()


def sweep_id(results: Path) -> str:
    """The name under which the nodes keep a sweep's run files and snapshots: the driver's host
    and results folder, so that two sweeps never share them."""
    return hashlib.sha1(f"{socket.gethostname()}:{results.resolve()}".encode()).hexdigest()[:12]


def dataset_files(folder: Path) -> list[Path]:
    """The files of a dataset folder, links followed (as a run reads them), in sorted order."""
    return sorted(Path(root, name) for root, _, names in os.walk(folder, followlinks=True) for name in names
                  if Path(root, name).is_file())


def pack_folder(folder: Path) -> bytes:
    """``folder`` as an uncompressed tar holding ``<name>/...``: its files (linked ones as the
    files they link to) without times or owners, so that the same content packs to the same
    bytes (and digest)."""

    def plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, dereference=True) as tar:
        tar.add(folder, arcname=folder.name, filter=plain, recursive=False)
        for path in dataset_files(folder):
            tar.add(path, arcname=str(Path(folder.name) / path.relative_to(folder)), filter=plain, recursive=False)
    return buffer.getvalue()


@dataclass
class _Task:
    spec: RunSpec
    attempt: int
    lost: list[str]  # why the earlier attempts ended


class RayRunner:
    """Submits each run as a Ray task and collects the ones that end (see the module's text)."""

    def __init__(self, ray, options: RayOptions, exp: Experiment, results: Path, mmrec_root: str | None,
                 snapshot_every: float, stream: TextIO, code: dict, poll_seconds: float = 1.0):
        self.ray, self.exp, self.results, self.stream = ray, exp, results, stream
        self.mmrec_root, self.snapshot_every, self.poll_seconds = mmrec_root, snapshot_every, poll_seconds
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self.cpus = options.cpus
        self.gpus = options.gpus if options.gpus is not None else \
            (1.0 if any(n["Resources"].get("GPU") for n in nodes) else 0.0)
        fits = [n for n in nodes if n["Resources"].get("CPU", 0) >= self.cpus and n["Resources"].get("GPU", 0) >= self.gpus]
        if not fits:
            raise UserInputError(f"--ray: no node of the cluster has {self.cpus:g} CPU(s) and {self.gpus:g} GPU(s) for "
                                 f"one run (nodes: {', '.join(_resources(n) for n in nodes) or 'none'}); "
                                 "lower --cpus-per-run or --gpus-per-run, or add a node")
        self.jobs_on = {n["NodeID"]: _concurrency(n, self.cpus, self.gpus) for n in nodes}
        self.code = code
        self.sweep = sweep_id(results)
        self.task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0, max_calls=1)(run_on_node)
        self.where = f"{len(nodes)} node(s), {sum(n['Resources'].get('CPU', 0) for n in nodes):g} CPUs, " \
                     f"{sum(n['Resources'].get('GPU', 0) for n in nodes):g} GPUs"
        self.shipped: dict[str, tuple[str, object]] = {}
        for name in exp.datasets:
            folder = Path(exp.data_path) / name
            size = sum(p.stat().st_size for p in dataset_files(folder))
            if size <= options.ship_limit:
                blob = pack_folder(folder)
                self.shipped[name] = (hashlib.sha256(blob).hexdigest()[:16], ray.put(blob))
                print(f"{name}: shipped to the nodes through Ray's object store ({size / 2**20:.1f} MiB)", file=stream)
            else:
                print(f"{name}: read at {folder} on every node ({size / 2**20:.0f} MiB, above the "
                      f"{options.ship_limit / 2**20:.0f} MiB shipped); that path must be on every node", file=stream)
        self.pending: dict[object, _Task] = {}
        self.keep_connection = False

    def describe(self) -> str:
        each = f"{self.cpus:g} CPU(s)" + (f" and {self.gpus:g} GPU(s)" if self.gpus else "")
        return f"as Ray tasks ({self.where}), each with {each}"

    def has_room(self) -> bool:
        return True  # Ray queues what the cluster cannot place yet

    def busy(self) -> bool:
        return bool(self.pending)

    def start(self, spec: RunSpec, attempt: int = 1, lost: list[str] | None = None) -> None:
        payload = {**run_payload(spec, self.exp.data_path, max(1, int(self.cpus)), self.mmrec_root, None,
                                 self.snapshot_every), "code": self.code}  # a node of another version refuses it
        digest, blob = self.shipped.get(spec.dataset, (None, None))
        ref = self.task.remote(payload, spec.key, self.sweep, digest, blob)
        self.pending[ref] = _Task(spec, attempt, lost or [])

    def wait(self) -> list[Finished]:
        ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=self.poll_seconds)
        if ready:
            ready, _ = self.ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        finished = []
        for ref in ready:
            task = self.pending.pop(ref)
            try:
                reply = self.ray.get(ref)
            except self.ray.exceptions.RayTaskError as exc:  # the task itself failed: running it again would too
                finished.append(self._failed(task, f"the run's task failed on its node: {exc.cause!r}"))
                continue
            except self.ray.exceptions.RayError as exc:  # the worker or its node was lost, or the task cancelled
                reply = {"lost": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
            if "lost" not in reply:
                finished.append(self._finished(task, reply))
            elif task.attempt < ATTEMPTS:
                print(f"lost: {task.spec.label} ({reply['lost'][:200]}); submitted again, attempt {task.attempt + 1} "
                      f"of {ATTEMPTS}", file=self.stream)
                self.start(task.spec, task.attempt + 1, [*task.lost, reply["lost"]])
            else:
                error = f"lost {ATTEMPTS} times: {'; '.join([*task.lost, reply['lost']])[:2000]}"
                finished.append(self._failed(task, error, reply.get("log", ""), reply.get("host")))
        return finished

    def stop(self) -> None:
        """Interrupted: the unfinished runs leave no record and run next time. They end with the
        driver's connection (Ray ends a finished job's workers, and a run's process ends with its
        worker); ``ray.cancel(force=True)`` is not used, as it can race a task that is completing
        and abort the driver. A caller that keeps its connection has them cancelled instead."""
        if self.keep_connection:
            for ref in self.pending:
                self.ray.cancel(ref)
        self.pending.clear()

    def _log(self, task: _Task, text: str, host: str | None) -> Path:
        path = self.results / LOG_DIR / f"{task.spec.key}.log"
        header = "".join(f"attempt {i} of {ATTEMPTS} lost: {why}\n" for i, why in enumerate(task.lost, 1))
        header += f"attempt {task.attempt} of {ATTEMPTS} on node {host or 'unknown'}\n"

        def write(tmp: str) -> None:
            Path(tmp).write_text(header + text, encoding="utf-8")

        atomic_write(path, write)
        return path

    def _fields(self, task: _Task, host: str | None, node: str | None) -> dict:
        return {"jobs": self.jobs_on.get(node or "", 1), "node": host, "attempts": task.attempt, "runner": "ray"}

    def _finished(self, task: _Task, reply: dict) -> Finished:
        log = self._log(task, reply.get("log", ""), reply.get("host"))
        return Finished(task.spec, reply["outcome"], reply.get("started") or now(), log,
                        self._fields(task, reply.get("host"), reply.get("node")))

    def _failed(self, task: _Task, error: str, log: str = "", host: str | None = None) -> Finished:
        return Finished(task.spec, {"status": "failed", "error": error}, now(), self._log(task, log, host),
                        self._fields(task, host, None))


def _resources(node: dict) -> str:
    r = node.get("Resources", {})
    return f"{node.get('NodeManagerAddress', '?')}: {r.get('CPU', 0):g} CPUs, {r.get('GPU', 0):g} GPUs"


def _concurrency(node: dict, cpus: float, gpus: float) -> int:
    """How many runs the node holds at once: they share its machine (the cost table's "parallel jobs")."""
    r = node.get("Resources", {})
    held = int(r.get("CPU", 0) // cpus)
    if gpus:
        held = min(held, int(r.get("GPU", 0) // gpus))
    return max(1, held)
