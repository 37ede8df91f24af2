"""Resumable training (engine.snapshot): a run stopped between epochs and started again from its
snapshot ends with the digits of a run never stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mmrec_ld4mrec.engine.quick_start import run
from mmrec_ld4mrec.engine.snapshot import (
    Snapshot,
    SnapshotUnusable,
    frame_order,
    reordered,
    rng_state,
    set_rng_state,
)
from mmrec_ld4mrec.study.tune import default_config


class Stop(Exception):
    """Stands for a worker stopped mid-run (SIGTERM, the end of a lease)."""


EPOCHS, STOP_AT = 3, 2
# small and fast; every model that trains, the two with training state beyond their weights included
BIG_BATCH = {"train_batch_size": 8192}  # the graph models run their whole graph per batch: few batches
TRAINED = {"LD4MRec": {"embedding_size": 64, "hidden_size": 32, "svd_rank": 16},
           "SimGCL": {"embedding_size": 16, **BIG_BATCH},
           "DiffRec": {"dims": [32], "steps": 5},
           "MMSSL": {"embedding_size": 16, **BIG_BATCH},
           "DiffMM": {"embedding_size": 16, "steps": 5, **BIG_BATCH}}
SLOW = {"LD4MRecPaper": {"embedding_size": 64, "hidden_size": 32, "svd_rank": 16}}  # LD4MRec's code path


def _config(data_path, settings: dict, model: str = "SimGCL") -> dict:
    """One grid point: the first value of each of the YAML's grid keys, then ``settings``."""
    defaults = default_config(model)
    first = {k: defaults[k][0] for k in defaults["hyper_parameters"] if isinstance(defaults[k], list)}
    return {"data_path": f"{data_path}/", "epochs": EPOCHS, "stopping_step": 100, "hyper_parameters": [],
            **first, "seed": 5, **settings}


def _interrupted(model: str, config: dict, file: Path, at: int = STOP_AT) -> None:
    """Run ``model`` with snapshots in ``file`` until the evaluation of epoch ``at`` stops it."""

    def stop(epoch, valid):
        if epoch == at:
            raise Stop

    with pytest.raises(Stop):
        run(model, "synthetic", config, on_evaluation=stop, snapshot=file, snapshot_every=0)


def _comparable(result: dict) -> dict:
    # the first run in a process may sum an epoch's loss in another order (last digits): loss to 1e-6
    history = [{k: (pytest.approx(v, rel=1e-6) if k == "loss" else v) for k, v in entry.items() if k != "train_seconds"}
               for entry in result["history"]]
    return {"best_epoch": result["best_epoch"], "epochs_run": result["epochs_run"], "valid": result["valid"],
            "test": result["test"], "history": history}


@pytest.mark.parametrize("model", [*sorted(TRAINED), *(pytest.param(m, marks=pytest.mark.slow) for m in SLOW)])
def test_a_run_stopped_between_epochs_resumes_with_the_digits_of_one_never_stopped(tmp_path, data_path, model):
    config = _config(data_path, {**TRAINED, **SLOW}[model], model)
    whole = run(model, "synthetic", config)
    file = tmp_path / "run.snapshot"
    seen = []

    def stop_at(epoch, valid):
        seen.append(epoch)
        if epoch == STOP_AT:
            raise Stop

    with pytest.raises(Stop):
        run(model, "synthetic", config, on_evaluation=stop_at, snapshot=file, snapshot_every=0)
    assert file.is_file()
    seen.clear()
    resumed = run(model, "synthetic", config, on_evaluation=lambda e, v: seen.append(e), snapshot=file,
                  snapshot_every=0)
    assert _comparable(resumed) == _comparable(whole)
    assert resumed["resumed_from_epoch"] == STOP_AT and "resumed_from_epoch" not in whole  # the record says so
    # the snapshot was saved before epoch STOP_AT: its evaluations are passed on again, then the rest
    assert seen == list(range(EPOCHS))
    assert not file.exists()  # the run finished: nothing is left to resume


def test_a_snapshot_made_for_other_settings_is_set_aside_not_loaded(tmp_path, data_path):
    settings = TRAINED["SimGCL"]
    file = tmp_path / "run.snapshot"

    _interrupted("SimGCL", _config(data_path, settings), file, at=2)
    other = _config(data_path, {**settings, "learning_rate": 0.01})
    fresh = run("SimGCL", "synthetic", other)
    resumed = run("SimGCL", "synthetic", other, snapshot=file, snapshot_every=0)
    assert _comparable(resumed) == _comparable(fresh)  # started at epoch 0, not from the other run's state
    assert (tmp_path / "run.snapshot.unused").is_file()


def test_an_unreadable_snapshot_is_set_aside_and_the_run_starts_over(tmp_path, caplog):
    file = tmp_path / "run.snapshot"
    file.write_bytes(b"not a snapshot")
    assert Snapshot(file, "x").load(None, None) is None
    assert not file.exists() and (tmp_path / "run.snapshot.unused").read_bytes() == b"not a snapshot"
    assert "run.snapshot" in caplog.text and "starts from epoch 0" in caplog.text


def test_weights_that_do_not_fit_are_set_aside_before_anything_is_loaded(tmp_path, caplog):
    """The code changed under a stopped trial (a layer's size): a fresh start, not a failed trial."""
    file = tmp_path / "run.snapshot"
    then = torch.nn.Linear(2, 3)
    Snapshot(file, "x").save({"next_epoch": 4, "model": then.state_dict(),
                              "optimizer": torch.optim.Adam(then.parameters()).state_dict()})
    now = torch.nn.Linear(2, 4)
    before = {k: v.clone() for k, v in now.state_dict().items()}
    (tmp_path / "run.snapshot.unused").write_text("set aside earlier")
    assert Snapshot(file, "x").load(now, torch.optim.Adam(now.parameters())) is None
    assert all(torch.equal(before[k], v) for k, v in now.state_dict().items())
    assert "'weight' has shape (3, 2), here (4, 2)" in caplog.text
    assert (tmp_path / "run.snapshot.unused").read_text() == "set aside earlier"  # kept, not overwritten
    assert (tmp_path / "run.snapshot.unused2").is_file()


def test_a_restore_failing_part_way_sets_the_snapshot_aside_and_says_to_start_over(tmp_path, caplog):
    file = tmp_path / "run.snapshot"
    file.write_text("state")
    with pytest.raises(SnapshotUnusable) as caught, Snapshot(file, "x").restoring():
        raise KeyError("rng")
    assert isinstance(caught.value.__cause__, KeyError)
    assert not file.exists() and (tmp_path / "run.snapshot.unused").is_file()
    assert "could not be put back" in caplog.text


def test_a_run_whose_restore_fails_part_way_starts_over_from_epoch_0_with_a_fresh_model(tmp_path, data_path,
                                                                                          monkeypatch, caplog):
    """The weights are loaded, then the random generators fail to come back: the run builds its
    model afresh and ends with the digits of one never stopped (no half-restored start, no
    failed attempt)."""
    from mmrec_ld4mrec.engine import trainer

    config = _config(data_path, TRAINED["SimGCL"])
    whole = run("SimGCL", "synthetic", config)
    file = tmp_path / "run.snapshot"

    _interrupted("SimGCL", config, file)

    def broken(state):
        raise ValueError("state is not a 3-tuple")

    monkeypatch.setattr(trainer, "set_rng_state", broken)
    resumed = run("SimGCL", "synthetic", config, snapshot=file, snapshot_every=0)
    assert "resumed_from_epoch" not in resumed and _comparable(resumed) == _comparable(whole)
    assert (tmp_path / "run.snapshot.unused").is_file() and "could not be put back" in caplog.text


def test_a_model_whose_training_state_beyond_its_weights_changed_is_not_resumed(tmp_path, caplog):
    class WithState(torch.nn.Linear):
        def training_state(self) -> dict:
            return {}

    file = tmp_path / "run.snapshot"
    plain = torch.nn.Linear(2, 3)
    Snapshot(file, "x").save({"model": plain.state_dict(), "model_training_state": None,
                              "optimizer": torch.optim.Adam(plain.parameters()).state_dict()})
    now = WithState(2, 3)
    assert Snapshot(file, "x").load(now, torch.optim.Adam(now.parameters())) is None
    assert "training state beyond the weights" in caplog.text


def test_a_snapshot_lacking_an_entry_the_run_needs_is_set_aside(tmp_path, caplog):
    file = tmp_path / "run.snapshot"
    model = torch.nn.Linear(2, 3)
    optimizer = torch.optim.Adam(model.parameters())
    Snapshot(file, "x").save({"next_epoch": 4, "model": model.state_dict(), "optimizer": optimizer.state_dict()})
    assert Snapshot(file, "x").load(model, optimizer, ("next_epoch", "evaluations")) is None
    assert "no 'evaluations'" in caplog.text and (tmp_path / "run.snapshot.unused").is_file()


def test_a_run_of_several_grid_points_is_not_resumable_and_says_so(data_path, tmp_path, caplog):
    config = {**_config(data_path, TRAINED["LD4MRec"], "LD4MRec"), "epochs": 2, "hyper_parameters": ["learning_rate"],
              "learning_rate": [0.01, 0.001]}
    result = run("LD4MRec", "synthetic", config, snapshot=tmp_path / "s", snapshot_every=0)
    assert len(result["grid"]) == 2
    assert "2 grid points" in caplog.text and "not resumable" in caplog.text
    assert not (tmp_path / "s").exists()


def test_a_sweep_stopped_mid_run_resumes_the_run_from_its_snapshot(tmp_path, data_path):
    """`reproduce` interrupted (Ctrl-C) while a run trains: the next sweep resumes that run and
    records the digits of an uninterrupted sweep."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from mmrec_ld4mrec.cli import main
    from mmrec_ld4mrec.study.registry import Registry

    exp = tmp_path / "exp.yaml"
    exp.write_text("name: resume\ndatasets: [synthetic]\nseeds: [1]\nbase: {epochs: 12, stopping_step: 50}\n"
                   "models:\n  LD4MRec: {embedding_size: 64, hidden_size: 32, svd_rank: 16}\n")

    def sweep(results, *extra):
        return [*map(str, ["reproduce", exp, "--results", results, "--data-path", data_path, *extra])]

    stopped = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "mmrec_ld4mrec.cli", *sweep(stopped, "--snapshot-every", "0.001")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not list((stopped / "snapshots").glob("*.snapshot")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert list((stopped / "snapshots").glob("*.snapshot"))  # kept for the next sweep
    assert main(sweep(stopped, "--snapshot-every", "0.001")) == 0
    assert main(sweep(tmp_path / "whole", "--snapshot-every", "0")) == 0
    logs = "".join(p.read_text() for p in (stopped / "logs").glob("*.log"))
    assert "resuming from" in logs
    assert not list((stopped / "snapshots").glob("*.snapshot"))

    def recorded(results):
        with Registry(results, readonly=True) as registry:
            (record,) = registry.records()
        return {k: record["result"][k] for k in ("valid", "test", "best_epoch", "epochs_run")}

    assert recorded(stopped) == recorded(tmp_path / "whole")


def test_random_generators_come_back_exactly():
    torch.manual_seed(3)
    np.random.seed(3)
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), np.random.randn(1))
    torch.rand(5)
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), np.random.randn(1))
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and np.array_equal(first[2], again[2])


def test_a_shuffled_frame_is_saved_as_an_order_and_rebuilt_row_for_row():
    original = pd.DataFrame({"u": [0, 0, 1, 2, 2, 2], "i": [1, 3, 1, 0, 2, 2], "x_label": [0, 0, 0, 0, 0, 1]})
    shuffled = original.sample(frac=1, random_state=4).reset_index(drop=True)
    order = frame_order(shuffled, original, "u", "i")
    assert order.dtype == torch.int32
    rebuilt = reordered(original, order)
    assert rebuilt[["u", "i"]].equals(shuffled[["u", "i"]])
    with pytest.raises(ValueError, match="rows"):
        frame_order(shuffled.iloc[:-1], original, "u", "i")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_that_asked_to_die_with_its_parent_does_not_outlive_it(tmp_path):
    """What MMRec's run process and a sweep's worker do, so that none goes on writing snapshots."""
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child = ("import os, time; from mmrec_ld4mrec.files import die_with_parent; die_with_parent(); "
             f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys, time; "
                               f"subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"])
    deadline = time.time() + 30
    while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "Z" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def _tamper_optimizer(payload):  # a fused Adam step would write past these tensors' ends
    payload["optimizer"]["state"] = {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(2),
                                         "exp_avg_sq": torch.zeros(2)}}


def _tamper_rng(payload):
    payload["rng"]["python"][1] = payload["rng"]["python"][1][:10]


def _tamper_loader(payload):
    payload["loader"]["frame"] = torch.zeros_like(payload["loader"]["frame"])  # row 0, over and over


TAMPERED = {
    "optimizer state of another shape": (_tamper_optimizer, "has shape (2,)"),
    "next_epoch far beyond the epochs": (lambda p: p.update(next_epoch=10 ** 9), "'next_epoch' is 1000000000"),
    "a NaN best score": (lambda p: p.update(best=float("nan")), "'best' is nan"),
    "a negative patience count": (lambda p: p.update(stale=-1), "'stale' is -1"),
    "evaluations that are not pairs": (lambda p: p.update(evaluations=[[0, "x"]]), "'evaluations'"),
    "a NaN test result": (lambda p: p["fit"]["test"].update({"Recall@20": float("nan")}), "'fit.test'"),
    "a truncated random generator": (_tamper_rng, "Python generator"),
    "a loader order that repeats rows": (_tamper_loader, "does not order the"),
}


@pytest.mark.parametrize("what", sorted(TAMPERED))
def test_a_snapshot_that_cannot_be_this_runs_is_set_aside_and_the_run_starts_over(what, tmp_path, data_path, caplog):
    """Every restored value is checked for type, shape and range before anything is loaded: a
    damaged or hand-edited snapshot never crashes the process (an optimizer state of the wrong
    shape made fused Adam write out of bounds) or ends the run at a wrong score; the run starts
    from epoch 0 and ends with the digits of one never stopped."""
    tamper, needle = TAMPERED[what]
    config = _config(data_path, TRAINED["SimGCL"])
    whole = run("SimGCL", "synthetic", config)
    file = tmp_path / "run.snapshot"

    _interrupted("SimGCL", config, file)
    payload = torch.load(file, weights_only=True)
    tamper(payload)
    torch.save(payload, file)
    resumed = run("SimGCL", "synthetic", config, snapshot=file, snapshot_every=0)
    assert "resumed_from_epoch" not in resumed and _comparable(resumed) == _comparable(whole)
    assert (tmp_path / "run.snapshot.unused").is_file() and not file.exists()
    assert needle in caplog.text and "starts from epoch 0" in caplog.text


def test_a_snapshot_path_that_is_a_folder_is_set_aside_not_a_crash(tmp_path, data_path, caplog):
    config = _config(data_path, TRAINED["SimGCL"])
    (tmp_path / "run.snapshot").mkdir()
    result = run("SimGCL", "synthetic", config, snapshot=tmp_path / "run.snapshot", snapshot_every=0)
    assert result["epochs_run"] == EPOCHS and (tmp_path / "run.snapshot.unused").is_dir()
    assert "not a file" in caplog.text


def test_each_models_own_optimizers_are_checked_too(tmp_path, caplog):
    """DiffMM's denoisers' and MMSSL's discriminator's optimizers live in the model's training
    state: a state of the wrong shape there is refused as well."""
    from mmrec_ld4mrec.models.optimizer_state import optimizer_misfit

    layer = torch.nn.Linear(3, 2)
    adam = torch.optim.Adam(layer.parameters())
    layer(torch.ones(1, 3)).sum().backward()
    adam.step()
    good = adam.state_dict()
    assert optimizer_misfit(good, adam) is None
    bad = {**good, "state": {**good["state"], 0: {**good["state"][0], "exp_avg": torch.zeros(5)}}}
    assert "'exp_avg' of parameter 0 has shape (5,), its parameter (2, 3)" == optimizer_misfit(bad, adam)
    bad = {**good, "state": {**good["state"], 0: {**good["state"][0], "step": torch.tensor(float("inf"))}}}
    assert "'step' of parameter 0" in optimizer_misfit(bad, adam)
    bad = {**good, "state": {**good["state"], 7: good["state"][0]}}
    assert "holds parameter 7" in optimizer_misfit(bad, adam)
    bad = {**good, "state": {**good["state"], 1: {**good["state"][1], "exp_avg_sq": good["state"][1]["exp_avg_sq"].double()}}}
    assert "torch.float64" in optimizer_misfit(bad, adam)


def test_a_resumed_run_keeps_its_patience_count_and_stops_where_its_twin_stops(tmp_path, data_path):
    """The twin never stopped ends by early stopping after the snapshot's epoch, with evaluations
    without improvement already counted at the snapshot: the resumed run stops at the same epoch
    with the same best epoch (a patience count reset on resume would run on)."""
    config = {**_config(data_path, {**TRAINED["SimGCL"], "learning_rate": 0.05}), "epochs": 30, "stopping_step": 1}
    scores = []
    whole = run("SimGCL", "synthetic", config, on_evaluation=lambda e, v: scores.append(round(v["Recall@20"], 4)))
    assert whole["epochs_run"] < 30  # early stopping ended it
    stale, best, counts = 0, -1.0, []
    for score in scores:
        stale, best = (0, score) if score > best else (stale + 1, best)
        counts.append(stale)
    stop = next(e for e in range(2, len(scores)) if counts[e - 1] >= 1)  # saved before it: patience already counting
    file = tmp_path / "run.snapshot"

    _interrupted("SimGCL", config, file, at=stop)
    resumed = run("SimGCL", "synthetic", config, snapshot=file, snapshot_every=0)
    assert resumed["resumed_from_epoch"] == stop
    assert (resumed["epochs_run"], resumed["best_epoch"]) == (whole["epochs_run"], whole["best_epoch"])
