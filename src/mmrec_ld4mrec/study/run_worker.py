"""One registry run in a process of its own: ``python -m mmrec_ld4mrec.study.run_worker SPEC.json OUT.json``.

A fresh process per run keeps peak memory a per-run number and a crash (or an out-of-memory
kill) confined to that run. The spec file holds ``{model, dataset, config, threads}`` (and
``mmrec_root`` for a config with ``engine: mmrec``, and ``snapshot``: the file the run saves
its training state to, so that a run stopped with its sweep resumes, ``engine.snapshot``; and
``code``: the version the sweep runs, which this process must run too, as a Ray node may not);
the outcome, with where the run ran (``environment``) and the code that ran it, is written to
OUT.json by rename, so the sweep reads either a whole file or none.

The process asks to end with its parent before it imports torch: a sweep or Ray worker killed
during those seconds leaves no run behind.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from ..files import die_with_parent


def other_version(expected: dict | None, here: dict) -> str | None:
    """Why the code here is not the version the sweep runs (package or commit), or None."""
    if not expected or not expected.get("package"):
        return None
    theirs, mine = (expected.get("package"), expected.get("commit")), (here.get("package"), here.get("commit"))
    if theirs[0] != mine[0] or (theirs[1] and mine[1] and theirs[1] != mine[1]):
        return (f"this node runs mmrec-ld4mrec {mine[0]} (commit {mine[1]}), the sweep {theirs[0]} "
                f"(commit {theirs[1]}): install the same version on every node")
    return None


def main(argv: list[str]) -> int:
    import torch

    from ..engine.quick_start import run
    from ..mmrec.driver import run_in_mmrec
    from .inference_study import split_inference_study
    from .registry import code_version, environment, jsonable

    spec_path, out_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    threads = int(spec.get("threads") or 0)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    start = time.time()
    code_here = code_version()
    try:
        mismatch = other_version(spec.get("code"), code_here)
        if mismatch:
            raise RuntimeError(mismatch)
        if threads:
            torch.set_num_threads(threads)
        config = dict(spec["config"])
        resumable = {"snapshot": spec["snapshot"], "snapshot_every": float(spec.get("snapshot_every") or 120)} \
            if spec.get("snapshot") else {}
        if config.pop("engine", "standalone") == "mmrec":
            result = run_in_mmrec(spec["mmrec_root"], spec["model"], spec["dataset"], config, **resumable)
        else:
            config, study = split_inference_study(config)
            result = run(spec["model"], spec["dataset"], config, after_fit=study, **resumable)
        outcome = {"status": "done", "result": result}
        code = 0
    except Exception as exc:  # the sweep records it and goes on
        traceback.print_exc()
        outcome = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    outcome.update(wall_seconds=time.time() - start, code=code_here)
    try:
        outcome["environment"] = environment()
    except Exception:  # e.g. a CUDA error that outlived the run: the outcome matters more
        traceback.print_exc()
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(outcome, default=jsonable), encoding="utf-8")
    os.replace(tmp, out_path)
    return code


if __name__ == "__main__":
    die_with_parent()
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: the sweep reports it, once
        sys.exit(130)
