"""One run of a sweep as a Ray task, on whichever node Ray placed it (:mod:`.ray_runs` submits it).

The task runs the run exactly as a local sweep does, in a process of its own (``run_worker``,
which ends with the task: ``die_with_parent``), and returns the outcome with the run's log;
the node writes nothing a driver reads. Its scratch folder, ``$TMPDIR/mmrec-ld4mrec-ray``,
holds the node's copy of each shipped dataset (unpacked once per node and content), each
running run's files, and its snapshots, so that a run submitted again after its process was
lost resumes where its snapshot was when it lands on the same node.

This module imports neither torch nor Ray at its top: a node's task process stays light, and
the run's process pays for torch.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

LOG_LIMIT = 4 << 20  # the last 4 MiB of a run's log come back to the driver


def scratch_root() -> Path:
    return Path(tempfile.gettempdir()) / "mmrec-ld4mrec-ray"


def unpack_dataset(blob: bytes, digest: str) -> str:
    """The node's copy of a shipped ``<dataset>/`` folder (a tar ``digest`` names), unpacked by
    the first run that needs it; returns the ``data_path`` that holds it."""
    target = scratch_root() / "data" / digest
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=target.parent))
        try:
            with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
                # the driver packed plain files only; the "data" filter, where Python has it, checks anyway
                tar.extractall(staging, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
            os.rename(staging, target)  # whole or not at all; a run that unpacked it first wins
        except OSError:
            if not target.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return str(target) + "/"


def _missing_here(payload: dict) -> str | None:
    """What the run needs that this node lacks: the dataset folder or the MMRec checkout,
    which must be at the same path on every node when they are not shipped."""
    host = socket.gethostname()
    folder = Path(payload["config"]["data_path"]) / payload["dataset"]
    if not folder.is_dir():
        return (f"{folder}: the dataset folder is not on node {host}; put the data folder where every node sees "
                f"it at the same path (a shared file system) and pass it as --data-path")
    root = payload.get("mmrec_root")
    if root and not Path(root).is_dir():
        return f"{root}: the MMRec checkout is not on node {host}; give every node one at the same path"
    return None


def _node_id() -> str | None:
    ray = sys.modules.get("ray")  # loaded in a Ray worker; elsewhere, asking would start a cluster
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None


def run_on_node(payload: dict, key: str, sweep: str, digest: str | None, blob: bytes | None) -> dict:
    """Run ``payload`` (``run_worker``'s spec) here; returns {outcome, log, started, host, node},
    or, when the run's process ended without an outcome (killed, out of memory), {lost: why,
    log, ...} instead of the outcome: the driver then submits the run again, as it does when
    Ray loses the task's worker or node.
    ``blob``: the dataset folder shipped through the object store (``digest`` names it), else
    the dataset is read at ``payload``'s data_path. ``sweep`` keeps apart the snapshots of
    sweeps into different results folders."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    payload = {**payload, "config": dict(payload["config"])}
    if blob is not None and digest:
        payload["config"]["data_path"] = unpack_dataset(blob, digest)
    reply = {"started": started, "host": socket.gethostname(), "node": _node_id(), "log": ""}
    missing = _missing_here(payload)
    if missing:
        return {**reply, "outcome": {"status": "failed", "error": missing}}
    if payload.get("snapshot_every"):
        payload["snapshot"] = str(scratch_root() / "snapshots" / sweep / f"{key}.snapshot")
    folder = scratch_root() / "runs" / sweep / key  # one per run: an attempt clears what a lost one left
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        spec, out, log = folder / "spec.json", folder / "out.json", folder / "run.log"
        spec.write_text(json.dumps(payload), encoding="utf-8")
        with open(log, "w", encoding="utf-8") as fh:
            code = subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.study.run_worker", str(spec), str(out)],
                                  stdout=fh, stderr=subprocess.STDOUT,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode
        with open(log, "rb") as fh:
            fh.seek(max(0, log.stat().st_size - LOG_LIMIT))
            reply["log"] = fh.read().decode("utf-8", errors="replace")
        try:
            outcome = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {**reply, "lost": f"the run's process ended with code {code} and no result"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {**reply, "outcome": outcome}
