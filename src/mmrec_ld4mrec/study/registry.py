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
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import lmdb
import numpy
import torch

from .. import __version__
from ..errors import UserInputError

REGISTRY_DIR = "registry.lmdb"
_PREFIX = b"run:"
_MAP_SIZE = 1 << 32  # address space only: the file grows with what is written


class Registry:
    """``with Registry(results_dir) as reg:`` opens (creating unless ``readonly``) the database.

    A registry that is damaged (its data file shorter than its own index says, a page LMDB
    cannot read, a record that is not a run record) is refused with one line naming it: a
    truncated file is found before any page is read, since reading past its end would end the
    process (SIGBUS)."""

    def __init__(self, results_dir: Path, readonly: bool = False):
        results_dir = Path(results_dir)
        self.path = results_dir / REGISTRY_DIR
        if os.path.lexists(results_dir) and not results_dir.is_dir():
            raise UserInputError(f"{results_dir}: not a folder (the results folder holds {REGISTRY_DIR}/)")
        data = self.path / "data.mdb"
        if os.path.lexists(self.path) and not self.path.is_dir():
            raise UserInputError(f"{self.path}: not a folder, so not a results registry")
        if os.path.lexists(data) and (data.is_symlink() or not stat.S_ISREG(os.lstat(data).st_mode)):
            raise UserInputError(f"{data}: not a regular file, so not a results registry")
        if readonly and not data.is_file():
            raise UserInputError(f"{self.path}: no results registry here (run `mmrec-ld4mrec reproduce` "
                                 "with --results pointing at this folder first)")
        if readonly and os.path.getsize(data) == 0:  # LMDB would say only "Bad file descriptor"
            raise UserInputError(f"{data}: an empty file, not a results registry (a registry that was never "
                                 "written, or a copy cut short)")
        try:
            if not readonly:
                self.path.mkdir(parents=True, exist_ok=True)
            self.env = self._open(readonly, lock=True)
        except OSError as exc:
            raise UserInputError(f"{self.path}: cannot create the results registry ({exc.strerror or exc})") from None
        except lmdb.Error as exc:
            if not readonly:
                raise UserInputError(f"{self.path}: cannot open the results registry ({exc})") from None
            try:  # a read-only copy (no writable lock file): read without LMDB's reader lock
                self.env = self._open(readonly, lock=False)
            except lmdb.Error as exc2:
                raise UserInputError(f"{self.path}: cannot open the results registry ({exc2})") from None
        try:
            self._check_size(data)
        except BaseException:
            self.env.close()
            raise

    def _open(self, readonly: bool, lock: bool) -> lmdb.Environment:
        return lmdb.open(str(self.path), map_size=_MAP_SIZE, readonly=readonly, lock=lock, subdir=True, max_dbs=0)

    def _check_size(self, data: Path) -> None:
        """The data file holds every page up to the last one its header names (LMDB reads pages
        through a memory map, where a page past the end of the file is a crash, not an error)."""
        try:
            needed = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
            size = os.stat(data).st_size
        except (lmdb.Error, OSError) as exc:
            raise UserInputError(f"{self.path}: damaged results registry ({exc}); "
                                 "restore it from a copy or move it away") from None
        if size < needed:
            raise UserInputError(f"{self.path}: damaged results registry: data.mdb holds {size} bytes but its "
                                 f"header needs {needed} (truncated?); restore it from a copy or move it away")

    def _damaged(self, what: str) -> UserInputError:
        return UserInputError(f"{self.path}: damaged results registry: {what}; restore it from a copy or move it away")

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.env.close()

    def put(self, record: dict) -> bool:
        """Store one run's record atomically, replacing an earlier record of the same key,
        except that a failed run never replaces a finished one; returns whether it was stored."""
        return self._store(record, keep_existing=False)

    def put_new(self, record: dict) -> bool:
        """Store ``record`` only where the registry has no finished run of its key (nothing, or a
        failed run that a finished one replaces), in one transaction: a run a sweep stores
        meanwhile is never replaced. Returns whether it was stored."""
        return self._store(record, keep_existing=True)

    def _store(self, record: dict, keep_existing: bool) -> bool:
        if not isinstance(record, dict) or not isinstance(record.get("key"), str) or not record["key"]:
            raise ValueError("a registry record needs a 'key'")
        problem = record_problem(record, record["key"])
        if problem:
            raise ValueError(f"not a registry record: {problem}")
        data = json.dumps(record, sort_keys=True, default=jsonable).encode()
        key, failed = _PREFIX + record["key"].encode(), record["status"] == "failed"
        try:
            with self.env.begin(write=True) as txn:
                old = txn.get(key) if failed or keep_existing else None
                if old is not None and (keep_existing and failed or self._decode(key, old)["status"] == "done"):
                    return False
                txn.put(key, data)
        except lmdb.Error as exc:
            raise self._damaged(f"cannot write ({exc})") from None
        return True

    def _decode(self, key: bytes, data: bytes) -> dict:
        """One stored record, checked: every field a reader uses is there with its type."""
        name = key[len(_PREFIX):].decode(errors="replace")
        try:
            record = json.loads(data)
        except ValueError:
            raise self._damaged(f"record '{name}' is not JSON") from None
        problem = record_problem(record, name)
        if problem:
            raise self._damaged(f"record '{name}': {problem}")
        return record

    def get(self, key: str) -> dict | None:
        try:
            with self.env.begin() as txn:
                data = txn.get(_PREFIX + key.encode())
        except lmdb.Error as exc:
            raise self._damaged(f"cannot read ({exc})") from None
        return None if data is None else self._decode(_PREFIX + key.encode(), data)

    def records(self) -> Iterator[dict]:
        """Every record, in key order (all read and checked before the first is returned)."""
        try:
            with self.env.begin() as txn:
                raw = list(_prefixed(txn))
        except lmdb.Error as exc:
            raise self._damaged(f"cannot read ({exc})") from None
        return iter([self._decode(key, data) for key, data in raw])

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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_problem(record, key: str) -> str | None:
    """What makes ``record`` not a run record stored under ``key`` (None when it is one): the
    fields the tables, figures and ``results`` read, each with its type."""
    if not isinstance(record, dict):
        return f"not a JSON object but {type(record).__name__}"
    if record.get("key") != key:
        return f"its 'key' is {record.get('key')!r:.60}, not the key it is stored under"
    if record.get("status") not in ("done", "failed"):
        return f"'status' must be 'done' or 'failed', got {record.get('status')!r:.60}"
    spec = record.get("spec")
    if not (isinstance(spec, dict) and isinstance(spec.get("dataset"), str) and isinstance(spec.get("model"), str)
            and isinstance(spec.get("seed"), int) and isinstance(spec.get("overrides"), dict)):
        return "'spec' must hold dataset, model (names), seed (an integer) and overrides (a mapping)"
    for field, kind in (("label", str), ("error", str), ("log", str), ("environment", dict), ("code", dict)):
        if record.get(field) is not None and not isinstance(record[field], kind):
            return f"'{field}' must be a {'text' if kind is str else 'mapping'}, got {record[field]!r:.60}"
    if record.get("jobs") is not None and (not isinstance(record["jobs"], int) or isinstance(record["jobs"], bool)):
        return f"'jobs' must be an integer, got {record['jobs']!r:.60}"
    if record["status"] == "failed":
        return None
    result = record.get("result")
    if not isinstance(result, dict):
        return "a finished run needs its 'result' (a mapping)"
    for split in ("valid", "test"):
        metrics = result.get(split)
        if not isinstance(metrics, dict):
            return f"'result.{split}' must map metric names to numbers"
        for name, value in metrics.items():
            if not _number(value):
                return f"'result.{split}.{name}' must be a number, got {value!r:.60}"
    for field in ("train_seconds_per_epoch", "inference_seconds", "peak_rss_mb", "peak_gpu_mb", "best_epoch",
                  "epochs_run"):
        if result.get(field) is not None and not _number(result[field]):
            return f"'result.{field}' must be a number, got {result[field]!r:.60}"
    return None


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
    cuda = torch.cuda.is_available()
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "accelerator": torch.cuda.get_device_name(0) if cuda else None}
