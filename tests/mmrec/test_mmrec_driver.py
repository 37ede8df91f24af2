"""How a run in MMRec's process is followed (no checkout needed: a stand-in child process):
each validation line reaches the callback once, and whatever stops the wait stops the child."""

import subprocess
import sys
import time
from dataclasses import replace

import pytest

from mmrec_ld4mrec.mmrec.driver import _follow, child_environment
from mmrec_ld4mrec.study.tune import default_run, tune


def _child(tmp_path, script: str) -> tuple[subprocess.Popen, object]:
    progress = tmp_path / "progress.jsonl"
    code = f"import json, time\nf = open({str(progress)!r}, 'a')\n" + script
    return subprocess.Popen([sys.executable, "-c", code]), progress


def test_each_line_reaches_the_callback_once_even_when_written_in_pieces(tmp_path):
    proc, progress = _child(tmp_path, (
        "f.write('{\"epoch\": 0, \"valid\": {\"Recall@20\": 0.1}}\\n{\"epoch\": 1, '); f.flush(); time.sleep(0.6)\n"
        "f.write('\"valid\": {\"Recall@20\": 0.2}}\\n'); f.flush(); time.sleep(0.6)\n"
        "f.write('{\"epoch\": 2, \"valid\": {\"Recall@20\": 0.3}}\\n'); f.close()\n"))  # exits right after
    seen = []
    _follow(proc, progress, lambda epoch, valid: seen.append((epoch, valid["Recall@20"])), timeout=30)
    assert seen == [(0, 0.1), (1, 0.2), (2, 0.3)]


def test_a_raising_callback_stops_the_child(tmp_path):
    proc, progress = _child(tmp_path, "f.write('{\"epoch\": 0, \"valid\": {}}\\n'); f.flush(); time.sleep(60)\n")

    def prune(epoch, valid):
        raise RuntimeError("pruned")

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="pruned"):
        _follow(proc, progress, prune, timeout=30)
    assert proc.poll() is not None and time.monotonic() - start < 20


@pytest.mark.parametrize("callback", [None, lambda epoch, valid: None])
def test_a_timeout_stops_the_child(tmp_path, callback):
    proc, progress = _child(tmp_path, "time.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        _follow(proc, progress, callback, timeout=1)
    assert proc.poll() is not None


def test_tune_passes_its_pruner_to_mmrec_runs(tmp_path, monkeypatch, lr_study):
    """Trials through MMRec report each validation to the pruner as standalone ones do."""
    import mmrec_ld4mrec.mmrec.driver as driver

    calls = []

    def fake_run_in_mmrec(root, model, dataset, config, on_evaluation=None, snapshot=None, snapshot_every=None):
        calls.append(on_evaluation)
        for epoch in range(5):
            on_evaluation(epoch, {"Recall@20": 0.1 if len(calls) < 6 else 0.01})
        return {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 4}

    monkeypatch.setattr(driver, "run_in_mmrec", fake_run_in_mmrec)
    request = replace(lr_study(tmp_path, trials=6), engine="mmrec", mmrec_root=str(tmp_path), warmup_epochs=3)
    study = tune(request, run_fn=default_run(request))
    assert all(callable(c) for c in calls)
    assert [t.state.name for t in study.get_trials()].count("PRUNED") == 1  # the sixth trails the median: pruned


def test_mmrec_child_gets_this_process_thread_budget(monkeypatch):
    """A run_worker of reproduce --jobs 2 on two cores runs torch with one thread: its MMRec child
    must too, not start two OpenMP threads per job."""
    import torch

    kept = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("MMREC_LD4MREC_STANDALONE", "1")
    try:
        torch.set_num_threads(1)
        env = child_environment()
    finally:
        torch.set_num_threads(kept)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert "MMREC_LD4MREC_STANDALONE" not in env
