"""A real Ray cluster on this machine for the tests: ``ray start --head`` and worker nodes, each
``ray start --block`` in a process group of its own with its raylet, ended by killing the
groups (``ray stop`` would end every Ray process of the machine, a user's cluster included).
A node's Ray workers have groups of their own and end when their raylet does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict, groups: list[subprocess.Popen], timeout: float = 90) -> None:
    """``ray start ARGS --block``, returned once it says the node runs (nodes join one at a time:
    two starting together can time out on one machine)."""
    with open(log, "w") as fh:
        proc = subprocess.Popen([RAY, "start", *args, "--block"], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    groups.append(proc)
    deadline = time.time() + timeout
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"ray start {' '.join(args)} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


@dataclass
class Cluster:
    address: str
    tmp: Path  # the nodes' TMPDIR: their scratch folders (ray_node.scratch_root) lie below it, removed with them


@contextmanager
def local_cluster(workers: int = 2, cpus_per_worker: int = 1) -> Iterator[Cluster]:
    """A head node with no CPUs (it places, never runs) and ``workers`` nodes."""
    port = _free_port()
    scratch = Path(tempfile.mkdtemp(prefix="ray-"))  # short: Ray's socket paths must stay under 108 bytes
    (scratch / "tmp").mkdir()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TMPDIR": str(scratch / "tmp")}
    common = ["--object-store-memory", str(100 << 20), "--disable-usage-stats", "--temp-dir", str(scratch / "t")]
    groups: list[subprocess.Popen] = []
    try:
        _start(["--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard=false", *common],
               scratch / "head.log", env, groups)
        for i in range(workers):
            _start(["--address", f"127.0.0.1:{port}", "--num-cpus", str(cpus_per_worker), *common],
                   scratch / f"worker{i}.log", env, groups)
        yield Cluster(f"127.0.0.1:{port}", scratch / "tmp")
    finally:
        for proc in reversed(groups):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)
