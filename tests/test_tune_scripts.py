"""The tuning scripts around `tune`: the MODELS filter of experiments/tune-DATASET.sh and the
time-limited GPU workers of experiments/gpu/tune.sh, run with a stand-in `mmrec-ld4mrec`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _repo_copy(tmp_path: Path, fake_cli: str) -> tuple[Path, dict]:
    """The scripts in a scratch repository layout, with ``fake_cli`` as `mmrec-ld4mrec` on PATH."""
    repo = tmp_path / "repo"
    for script in ("experiments/tune-tiktok.sh", "experiments/tune-ml-1m.sh", "experiments/gpu/tune.sh"):
        (repo / script).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / script, repo / script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cli = bin_dir / "mmrec-ld4mrec"
    cli.write_text(f"#!{sys.executable}\n{fake_cli}")
    cli.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", DATA="D", MMREC_ROOT="M",
               PYTHONPATH=str(ROOT / "src"), PYTHON=sys.executable)
    env.pop("MODELS", None)
    return repo, env


RECORDING_CLI = """import os, sys
with open(os.environ["CALLS"], "a") as f:
    f.write(sys.argv[3] + "\\n")  # tune -m MODEL ...
"""


def test_models_runs_only_the_named_studies_in_the_scripts_order(tmp_path):
    repo, env = _repo_copy(tmp_path, RECORDING_CLI)
    calls = tmp_path / "calls.txt"
    env["CALLS"] = str(calls)
    subprocess.run(["bash", "experiments/tune-tiktok.sh"], cwd=repo, env=dict(env, MODELS="DiffRec MGCN"), check=True)
    assert calls.read_text().split() == ["MGCN", "DiffRec"]
    calls.unlink()
    subprocess.run(["bash", "experiments/tune-ml-1m.sh"], cwd=repo, env=env, check=True)
    assert calls.read_text().split() == ["EASE", "BPR", "LD4MRecPaper", "LD4MRec", "SimGCL", "DiffRec", "LightGCN"]


# A worker stopped by SIGTERM that takes a while to record it, as `tune` marks its trial failed
# and queues it again: here, two seconds, then a trial in the study of the journal.
SLOW_TO_STOP_CLI = """import signal, sys, time
import optuna
from mmrec_ld4mrec.study.tune import open_storage

def stop(signum, frame):
    time.sleep(2)
    study = optuna.load_study(study_name="MGCN-tiktok", storage=open_storage("journal:" + JOURNAL))
    study.enqueue_trial({"learning_rate": 0.01})
    sys.exit(1)

JOURNAL = "experiments/results/tune/tiktok/studies.journal"
signal.signal(signal.SIGTERM, stop)
time.sleep(120)
"""


def test_gpu_workers_stop_at_the_limit_and_their_last_records_come_back(tmp_path):
    optuna = pytest.importorskip("optuna")
    from mmrec_ld4mrec.study.tune import open_storage

    repo, env = _repo_copy(tmp_path, SLOW_TO_STOP_CLI)
    journal = repo / "experiments/results/tune/tiktok/studies.journal"
    journal.parent.mkdir(parents=True)
    optuna.create_study(study_name="MGCN-tiktok", storage=open_storage(f"journal:{journal}"))
    out = tmp_path / "out"
    done = subprocess.run(["bash", "experiments/gpu/tune.sh", "tiktok:MGCN"], cwd=repo,
                          env=dict(env, OUT=str(out), LIMIT="2", WORKERS="1"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    returned = optuna.load_study(study_name="MGCN-tiktok", storage=open_storage(f"journal:{out / 'tiktok-studies.journal'}"))
    assert len(returned.trials) == 1  # written after the worker's bash had gone, and still copied
    assert "MGCN-tiktok" in (out / "tiktok-studies.txt").read_text()
    assert (out / "logs.tar.gz").is_file()


def test_gpu_workers_refuse_a_pair_without_its_script(tmp_path):
    repo, env = _repo_copy(tmp_path, RECORDING_CLI)
    done = subprocess.run(["bash", "experiments/gpu/tune.sh", "amazon:MGCN"], cwd=repo,
                          env=dict(env, OUT=str(tmp_path / "out")), capture_output=True, text=True)
    assert done.returncode == 2 and "amazon:MGCN" in done.stderr and "tune-amazon.sh" in done.stderr
