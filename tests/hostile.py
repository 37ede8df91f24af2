"""Helpers for the hostile-input tests: run the CLI as a user would, check that a bad input
ends in one clean line (exit code 2, no traceback), and that nothing outside the intended
folder changed."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mmrec_ld4mrec.cli import main

# Small LD4MRec settings so that a case that does train finishes in a second.
FAST = ["epochs=1", "embedding_size=8", "hidden_size=4", "svd_rank=2", "soft_prob=0.01", "smooth=0.01"]


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def cli(argv: list[str], capsys) -> Outcome:
    """The CLI in this process (fast); an exception escaping ``main`` fails the test as a traceback would."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


def cli_process(argv: list[str], cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> Outcome:
    """The CLI in its own process: for crashes a test process could not survive (SIGBUS) and signals."""
    proc = subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.cli", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_error(outcome: Outcome, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, the message on one line beginning ``error:``, naming each fragment."""
    assert "Traceback" not in outcome.err, outcome.err
    assert outcome.code == code, (outcome.code, outcome.err[-2000:])
    lines = [line for line in outcome.err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, outcome.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (not following links) with its kind, mode and content hash."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                digest = hashlib.sha1(path.read_bytes()).hexdigest()
            elif os.path.islink(path):
                digest = os.readlink(path)
            state[str(path.relative_to(root))] = (st.st_mode, digest)
    return state


def wait_for(condition, seconds: float = 120.0, what: str = "") -> None:
    deadline = time.time() + seconds
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def tamper_snapshot(file: Path, what: str) -> None:
    """Damage a saved snapshot as the issue's reproducers did: an optimizer state of another
    shape (a fused Adam step would write past it), an epoch far beyond the run, the Python
    random generator cut short."""
    import torch

    payload = torch.load(file, weights_only=True)
    if what == "optimizer of another shape":
        payload["optimizer"]["state"] = {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(2),
                                             "exp_avg_sq": torch.zeros(2)}}
    elif what == "next_epoch far beyond":
        payload["next_epoch"] = 10 ** 9
    elif what == "RNG cut short":
        payload["rng"]["python"][1] = payload["rng"]["python"][1][:10]
    else:
        raise ValueError(what)
    torch.save(payload, file)
