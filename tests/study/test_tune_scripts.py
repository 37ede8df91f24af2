"""The tuning scripts around `tune`: the MODELS filter of experiments/tune-DATASET.sh and the
time-limited GPU workers of experiments/gpu/tune.sh, run with a stand-in `mmrec-ld4mrec`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    calls.unlink()
    typo = subprocess.run(["bash", str(repo / "experiments/tune-ml-1m.sh")], cwd=tmp_path,
                          env=dict(env, MODELS="SimGCL\tSimGLC"), capture_output=True, text=True)
    assert typo.returncode == 2 and "has no study of SimGLC" in typo.stderr
    assert not calls.exists()  # refused before any study ran


# A worker stopped by SIGTERM that takes a while to record it, as `tune` marks its trial failed
# and queues it again: here, two seconds, then a trial in the study of the journal. The handler
# only notes the signal and is set before the slow imports (Optuna), so a loaded machine cannot
# deliver the limit's SIGTERM before it, and a second signal cannot interrupt the recording.
SLOW_TO_STOP_CLI = """import signal, sys, time

stopping = []
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
import optuna
from mmrec_ld4mrec.study.tune import open_storage

JOURNAL = "experiments/results/tune/tiktok/studies.journal"
deadline = time.time() + 120
while not stopping and time.time() < deadline:
    time.sleep(0.05)
if stopping:
    time.sleep(2)
    study = optuna.load_study(study_name="MGCN-tiktok", storage=open_storage("journal:" + JOURNAL))
    study.enqueue_trial({"learning_rate": 0.01})
    sys.exit(1)
"""


def _journal_with_study(repo: Path, study: str = "MGCN-tiktok"):
    optuna = pytest.importorskip("optuna")
    from mmrec_ld4mrec.study.tune import open_storage

    journal = repo / "experiments/results/tune/tiktok/studies.journal"
    journal.parent.mkdir(parents=True)
    optuna.create_study(study_name=study, storage=open_storage(f"journal:{journal}"))
    return optuna, open_storage


def test_gpu_workers_stop_at_the_limit_and_their_last_records_come_back(tmp_path):
    repo, env = _repo_copy(tmp_path, SLOW_TO_STOP_CLI)
    optuna, open_storage = _journal_with_study(repo)
    out = tmp_path / "out"
    stopped = repo / "experiments/results/tune/tiktok/snapshots/MGCN-tiktok/0123.snapshot"
    stopped.parent.mkdir(parents=True)
    stopped.write_text("a stopped trial's state")
    # LIMIT 6 s: the stand-in must be up (Python started, its handler set) before it, on a loaded machine too
    done = subprocess.run(["bash", "experiments/gpu/tune.sh", "tiktok:MGCN"], cwd=repo,
                          env=dict(env, OUT=str(out), LIMIT="6", WORKERS="1"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    returned = optuna.load_study(study_name="MGCN-tiktok", storage=open_storage(f"journal:{out / 'tiktok-studies.journal'}"))
    assert len(returned.trials) == 1  # written after the worker's bash had gone, and still copied
    assert "MGCN-tiktok" in (out / "tiktok-studies.txt").read_text()
    assert (out / "logs.tar.gz").is_file()
    with tarfile.open(out / "tiktok-snapshots.tar") as tar:  # the stopped trials' snapshots come back too
        assert tar.extractfile("snapshots/MGCN-tiktok/0123.snapshot").read() == b"a stopped trial's state"


def test_gpu_workers_that_fail_at_once_are_reported(tmp_path):
    repo, env = _repo_copy(tmp_path, "import sys\nsys.exit(3)\n")
    _journal_with_study(repo)
    done = subprocess.run(["bash", "experiments/gpu/tune.sh", "tiktok:MGCN"], cwd=repo,
                          env=dict(env, OUT=str(tmp_path / "out"), LIMIT="30", WORKERS="2"), capture_output=True, text=True)
    assert done.returncode == 1
    assert "worker tiktok-MGCN-1 ended with code 3" in done.stderr and "tiktok-MGCN-2" in done.stderr
    assert (tmp_path / "out" / "tiktok-studies.journal").is_file()  # what there is still comes back


def test_gpu_workers_refuse_a_bad_pair_before_any_starts(tmp_path):
    repo, env = _repo_copy(tmp_path, RECORDING_CLI)
    calls = tmp_path / "calls.txt"
    done = subprocess.run(["bash", "experiments/gpu/tune.sh", "tiktok:MGCN", "amazon:MGCN"], cwd=repo,
                          env=dict(env, OUT=str(tmp_path / "out"), CALLS=str(calls)), capture_output=True, text=True)
    assert done.returncode == 2 and "amazon:MGCN" in done.stderr and "tune-amazon.sh" in done.stderr
    assert not calls.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_gpu_workers_stop_with_the_script_and_their_records_still_come_back(tmp_path, signum):
    """SIGTERM to the script (a scheduler's limit) or Ctrl-C reaches every worker, as LIMIT does,
    and a worker stopped so is not reported as failed."""
    import signal
    import time

    repo, env = _repo_copy(tmp_path, SLOW_TO_STOP_CLI.replace("JOURNAL = ", "print('up', flush=True)\nJOURNAL = "))
    optuna, open_storage = _journal_with_study(repo)
    out = tmp_path / "out"
    # a terminal's job takes Ctrl-C; one started by a shell without job control inherits SIGINT ignored
    script = subprocess.Popen(["bash", "experiments/gpu/tune.sh", "tiktok:MGCN"], cwd=repo,
                              env=dict(env, OUT=str(out), LIMIT="100", WORKERS="2"), stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    logs = [out / "logs" / f"tiktok-MGCN-{w}.log" for w in (1, 2)]
    deadline = time.time() + 30  # both workers are up (a worker signalled before it is up has no trial to lose)
    while time.time() < deadline and not all(log.is_file() and "up" in log.read_text() for log in logs):
        time.sleep(0.2)
    started = time.time()
    script.send_signal(getattr(signal, signum))
    _, err = script.communicate(timeout=60)
    assert script.returncode == 0 and "ended with code" not in err, err
    assert time.time() - started < 30  # not the 100 s of LIMIT
    returned = optuna.load_study(study_name="MGCN-tiktok", storage=open_storage(f"journal:{out / 'tiktok-studies.journal'}"))
    assert len(returned.trials) == 2  # one per worker
