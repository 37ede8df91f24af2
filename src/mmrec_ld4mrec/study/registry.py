"""The results registry: one LMDB database per results folder, one record per run.

A record is JSON stored under ``run:<key>``, written in its own write transaction, so it is
either wholly there or absent: a sweep killed at any moment leaves every finished run intact
and nothing half-written. The key is the hash of what determines a run (dataset, model, seed,
config overrides), so the same run asked for twice, by two studies or two invocations, is one
record. A record holds ``status`` ("done" or "failed"), the run's spec, the engine's result
(config, per-epoch history, validation and test metrics, timings, peak memory) or the error,
and where and with what code it ran.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lmdb

from .. import __version__
from ..errors import UserInputError

REGISTRY_DIR = "registry.lmdb"
_PREFIX = b"run:"
_MAP_SIZE = 1 << 32  # address space only: the file grows with what is written


class Registry:
    """``with Registry(results_dir) as reg:`` opens (creating unless ``readonly``) the database."""

    def __init__(self, results_dir: Path, readonly: bool = False):
        self.path = Path(results_dir) / REGISTRY_DIR
        if readonly and not (self.path / "data.mdb").is_file():
            raise UserInputError(f"{self.path}: no results registry here (run `mmrec-ld4mrec reproduce` "
                                 "with --results pointing at this folder first)")
        try:
            if not readonly:
                self.path.mkdir(parents=True, exist_ok=True)
            self.env = self._open(readonly, lock=True)
        except lmdb.Error as exc:
            if not readonly:
                raise UserInputError(f"{self.path}: cannot open the results registry ({exc})") from None
            try:  # a read-only copy (no writable lock file): read without LMDB's reader lock
                self.env = self._open(readonly, lock=False)
            except lmdb.Error as exc2:
                raise UserInputError(f"{self.path}: cannot open the results registry ({exc2})") from None

    def _open(self, readonly: bool, lock: bool) -> lmdb.Environment:
        return lmdb.open(str(self.path), map_size=_MAP_SIZE, readonly=readonly, lock=lock, subdir=True, max_dbs=0)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.env.close()

    def put(self, record: dict) -> None:
        """Store one run's record atomically (replacing an earlier record of the same key)."""
        if record.get("status") not in ("done", "failed") or not record.get("key"):
            raise ValueError("a registry record needs 'key' and status 'done' or 'failed'")
        data = json.dumps(record, sort_keys=True, default=jsonable).encode()
        with self.env.begin(write=True) as txn:
            txn.put(_PREFIX + record["key"].encode(), data)

    def get(self, key: str) -> dict | None:
        with self.env.begin() as txn:
            data = txn.get(_PREFIX + key.encode())
        return None if data is None else json.loads(data)

    def records(self) -> Iterator[dict]:
        """Every record, in key order."""
        with self.env.begin() as txn:
            for _, data in _prefixed(txn):
                yield json.loads(data)

    def done(self) -> dict[str, dict]:
        """Finished runs by key."""
        return {r["key"]: r for r in self.records() if r["status"] == "done"}

    def find(self, prefix: str) -> dict:
        """The one record whose key starts with ``prefix``; errors name the prefix."""
        hits = [r for r in self.records() if r["key"].startswith(prefix)]
        if len(hits) != 1:
            what = "no run" if not hits else f"{len(hits)} runs ({', '.join(r['key'] for r in hits[:5])})"
            raise UserInputError(f"{self.path}: {what} with a key starting '{prefix}'")
        return hits[0]


def _prefixed(txn) -> Iterator[tuple[bytes, bytes]]:
    cursor = txn.cursor()
    if not cursor.set_range(_PREFIX):
        return
    for key, value in cursor:
        if not key.startswith(_PREFIX):
            break
        yield key, value


def jsonable(value):
    """JSON fallback for numpy scalars, sets and tuples (anything else as text)."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def code_version() -> dict:
    """The package version and, in a git checkout, its commit and whether it had local changes
    (``MMREC_LD4MREC_COMMIT``, when set, names the commit of a copy whose ``.git`` is absent or stale)."""
    here = Path(__file__).resolve().parent
    info: dict = {"package": __version__, "commit": None, "dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                    capture_output=True, text=True, timeout=10)
            info["dirty"] = bool(status.stdout.strip())
    except (OSError, subprocess.TimeoutExpired):
        pass
    if os.environ.get("MMREC_LD4MREC_COMMIT"):  # a copy of a checkout whose .git is absent or stale
        info.update(commit=os.environ["MMREC_LD4MREC_COMMIT"], dirty=None, given_by="MMREC_LD4MREC_COMMIT")
    return info


def environment() -> dict:
    """Where a run ran: interpreter, libraries, processor, accelerator."""
    import numpy
    import torch

    cuda = torch.cuda.is_available()
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "accelerator": torch.cuda.get_device_name(0) if cuda else None}
