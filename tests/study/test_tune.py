"""``tune``: search spaces refused with the file and key named, a killed study that resumes
without losing or repeating trials, two workers sharing one study, pruning, export."""

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import ConfigError, UserInputError
from mmrec_ld4mrec.study.tune import (
    Dimension,
    TuneRequest,
    load_space,
    objective_value,
    patience_epochs,
    search_space_path,
    trial_settings,
    tune,
    tuning_seeds,
)

from ..hostile import tamper_snapshot

ROOT = Path(__file__).resolve().parents[2]
OURS = sorted(p.stem for p in (ROOT / "configs" / "model").glob("*.yaml") if p.stem != "Pop")


def _space(tmp_path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, key, expected", [
    ("learning_rat: {type: log_float, low: 1.0e-4, high: 1.0e-2}", "learning_rat", "not a config key"),
    ("learning_rate: {type: log_float, low: 1.0e-2, high: 1.0e-4}", "learning_rate", "low < high"),
    ("learning_rate: {type: log_float, low: 0.0, high: 1.0e-2}", "learning_rate", "low > 0"),
    ("learning_rate: {type: uniform, low: 0.0, high: 1.0}", "learning_rate", "type must be one of"),
    ("steps: {type: int, low: 2.5, high: 10}", "steps", "integer bounds"),
    ("loss: {type: categorical, choices: []}", "loss", "non-empty list"),
    ("loss: {type: categorical, choices: [mse], low: 1}", "loss", "unexpected field"),
    ("soft_prob: {type: float, low: nan, high: 0.1}", "soft_prob", "needs numbers"),
    ("seed: {type: int, low: 1, high: 5}", "seed", "fixed by the protocol"),
    ("smooth: 0.1", "smooth", "expected a mapping"),
])
def test_a_bad_search_space_is_refused_naming_the_file_and_key(tmp_path, text, key, expected):
    path = _space(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_space(path, "LD4MRec")
    assert str(path) in str(err.value) and f"'{key}'" in str(err.value) and expected in str(err.value)


@pytest.mark.parametrize("model", OURS)
def test_every_model_of_ours_has_a_valid_search_space(model):
    dims = load_space(search_space_path(model), model)
    assert dims and len({d.name for d in dims}) == len(dims)


def test_the_multimodal_space_of_ld4mrec_is_its_default_space_plus_the_item_graph():
    plain = {d.name: d for d in load_space(search_space_path("LD4MRec"), "LD4MRec")}
    path = search_space_path("LD4MRec").with_name("LD4MRec-multimodal.yaml")
    multimodal = {d.name: d for d in load_space(path, "LD4MRec")}
    assert {k: multimodal[k] for k in plain} == plain  # the same ranges: one search, more keys
    extra = set(multimodal) - set(plain)
    assert extra == {"item_graph_k", "item_graph_weight"}
    off = {"item_graph_k": 0}
    assert all(off[k] in multimodal[k].choices for k in off)  # the paper's reading stays reachable


def test_a_trial_runs_scalar_values_and_no_yaml_grid():
    request = TuneRequest(model="DiffRec", dataset="d", trials=1, storage="", study_name="s", settings={"epochs": 3},
                          seeds=[1], space=[Dimension("dims", "categorical", choices=("[200, 600]", "[1000]"))])
    settings = trial_settings(request, {"dims": "[200, 600]"}, seed=4)
    assert settings == {"epochs": 3, "dims": [200, 600], "seed": 4, "hyper_parameters": []}


def _worker(storage: str, trials: int, log: Path, hang_on_call: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.study.tune_worker", storage, str(trials), "0.25", str(log),
                             str(hang_on_call)], cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _trials(storage: str):
    from mmrec_ld4mrec.study.tune import open_storage

    return optuna.load_study(study_name="s", storage=open_storage(storage)).get_trials(deepcopy=False)


def test_a_study_killed_mid_trial_resumes_without_losing_or_repeating_trials(tmp_path):
    storage, log = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "runs.jsonl"
    worker = _worker(storage, 4, log, hang_on_call=3)  # the third trial hangs; the worker is killed in it
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) == 2
                                          and any(t.state == TrialState.RUNNING for t in _trials(storage))):
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = {t.number: t for t in _trials(storage)}
    assert [t.state for t in before.values()] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]
    time.sleep(1.5)  # past the grace period (4 heartbeats of 0.25 s)
    assert _worker(storage, 4, log).wait(timeout=120) == 0
    after = {t.number: t for t in _trials(storage)}
    complete = [t for t in after.values() if t.state == TrialState.COMPLETE]
    assert len(complete) == 4  # the budget, exactly
    for n in (0, 1):  # finished before the kill: kept as they were
        assert after[n].state == TrialState.COMPLETE and after[n].value == before[n].value
        assert after[n].datetime_complete == before[n].datetime_complete
    assert after[2].state == TrialState.FAIL  # the killed trial, failed ...
    assert after[2].user_attrs["wall_seconds"] > 0  # (the time it ran counts in the budget table)
    retried = [t for t in complete if t.user_attrs.get("retry_of") == 2]
    assert len(retried) == 1 and retried[0].params == before[2].params  # ... and its parameters run again
    runs = [json.loads(line)["lr"] for line in log.read_text().splitlines()]
    assert len(runs) == 4 and sorted(runs) == sorted(t.params["learning_rate"] for t in complete)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_workers_on_one_storage_finish_n_trials_in_total(tmp_path, kind):
    storage = f"sqlite:///{tmp_path / 'study.db'}" if kind == "sqlite" else f"journal:{tmp_path / 'study.journal'}"
    log = tmp_path / "runs.jsonl"
    workers = [_worker(storage, 8, log), _worker(storage, 8, log)]
    assert [w.wait(timeout=180) for w in workers] == [0, 0]
    trials = _trials(storage)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 8
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 8 and len({r["lr"] for r in runs}) == 8  # no trial ran twice
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers took trials


def test_a_trial_trailing_earlier_ones_is_pruned(tmp_path, lr_study):
    request = dataclasses.replace(lr_study(tmp_path, trials=7), warmup_epochs=3)
    calls = []

    def run(model, dataset, config, on_evaluation=None):
        calls.append(config["learning_rate"])
        level = 0.5 if len(calls) <= 5 else 0.1  # the sixth trial on trails the first five at every epoch
        for epoch in range(10):
            on_evaluation(epoch, {"Recall@20": level})
        return {"valid": {"Recall@20": level}, "test": {}, "best_epoch": 9}

    study = tune(request, run_fn=run)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE] * 5 + [TrialState.PRUNED] * 2
    assert all(t.last_step == 3 for t in study.get_trials()[5:])  # stopped once the warm-up epochs passed


def test_no_trial_is_pruned_within_its_warm_up(tmp_path, lr_study):
    request = dataclasses.replace(lr_study(tmp_path, trials=7), warmup_epochs=20)
    calls = []

    def run(model, dataset, config, on_evaluation=None):
        calls.append(1)
        level = 0.5 if len(calls) <= 5 else 0.1  # trails from its first epoch, but stops (early) at epoch 15
        for epoch in range(15):
            on_evaluation(epoch, {"Recall@20": level})
        return {"valid": {"Recall@20": level}, "test": {}, "best_epoch": 0}

    assert [t.state for t in tune(request, run_fn=run).get_trials()] == [TrialState.COMPLETE] * 7


def test_the_pruner_warm_up_defaults_to_early_stopping_patience():
    assert patience_epochs({"stopping_step": 20}, {"stopping_step": 10, "eval_step": 1}) == 20
    assert patience_epochs({}, {"stopping_step": 10, "eval_step": 5}) == 50
    with pytest.raises(ConfigError, match="stopping_step"):
        patience_epochs({"stopping_step": "x"}, {"eval_step": 1})


def test_tuning_seeds_are_apart_from_the_reported_ones():
    assert tuning_seeds(2) == [1001, 1002]
    assert not set(tuning_seeds(3)) & set(range(1, 11))


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_study_resumed_under_another_protocol_is_refused(tmp_path, kind, lr_study):
    settings = {"epochs": 1000, "stopping_step": 20, "noise_scale": 0.005, "hyper_parameters": [], "loss": "mse"}
    storage = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:{tmp_path / 's.journal'}"
    request = dataclasses.replace(lr_study(tmp_path, trials=1), storage=storage, settings=settings)
    run = lambda model, dataset, config, on_evaluation=None: {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 0}  # noqa: E731
    tune(request, run_fn=run)
    tune(dataclasses.replace(request, trials=2), run_fn=run)  # the same protocol, read back from the storage: resumed
    for change, key in (({"warmup_epochs": 3}, "pruner"), ({"seeds": [1, 2]}, "seeds"),
                        ({"settings": {**settings, "stopping_step": 5}}, "settings"), ({"engine": "mmrec"}, "engine")):
        with pytest.raises(UserInputError, match=f"another protocol.*{key}"):
            tune(dataclasses.replace(request, trials=2, **change), run_fn=run)
    with pytest.raises(UserInputError, match="another search space.*learning_rate"):
        tune(dataclasses.replace(request, trials=2, space=[Dimension("learning_rate", "log_float", 1e-4, 1e-1)]), run_fn=run)
    # the data path and the device are this machine's, not the protocol's
    tune(dataclasses.replace(request, trials=3, settings={**settings, "data_path": "/elsewhere/", "gpu_id": 3}),
         run_fn=run)
    with pytest.raises(UserInputError, match="--set: every fixed value"):
        tune(dataclasses.replace(request, settings={**settings, "when": __import__("datetime").date(2020, 1, 1)}),
             run_fn=run)


def test_a_study_from_before_protocols_were_recorded_is_not_resumed(tmp_path, lr_study):
    request = lr_study(tmp_path, trials=1)
    study = optuna.create_study(storage=request.storage, study_name="s", direction="maximize")
    study.set_user_attr("model", "LD4MRec")
    study.set_user_attr("dataset", "d")
    study.enqueue_trial({"learning_rate": 1e-3})
    with pytest.raises(UserInputError, match="before studies recorded their protocol"):
        tune(dataclasses.replace(request, trials=2), run_fn=lambda *a, **k: {})
    # also when its space has changed since: the protocol is what stands in the way
    with pytest.raises(UserInputError, match="before studies recorded their protocol"):
        tune(dataclasses.replace(request, trials=2, space=[Dimension("learning_rate", "log_float", 1e-4, 1e-1)]),
             run_fn=lambda *a, **k: {})


def test_a_study_whose_config_files_changed_since_is_not_resumed(tmp_path, lr_study):
    """Trials run the model's YAML beneath their parameters: a study resumed after that YAML
    changed would mix two configurations, so it is refused, naming the setting."""
    from mmrec_ld4mrec.study.tune import open_storage

    request = dataclasses.replace(lr_study(tmp_path, trials=1), dataset="synthetic")
    run = lambda model, dataset, config, on_evaluation=None: {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 0}  # noqa: E731
    tune(request, run_fn=run)
    study = optuna.load_study(study_name="s", storage=open_storage(request.storage))
    base = study.user_attrs["base_settings"]
    assert "learning_rate" not in base and base["steps"] == 5  # the trials' own keys aside
    tune(dataclasses.replace(request, trials=2), run_fn=run)  # nothing changed: resumed
    study.set_user_attr("base_settings", {**base, "steps": 10})  # as if LD4MRec.yaml had said T = 10 back then
    with pytest.raises(UserInputError, match=r"no longer give \(steps 10 → 5\); put the config file back"):
        tune(dataclasses.replace(request, trials=3), run_fn=run)
    assert len(_trials(request.storage)) == 2
    tune(dataclasses.replace(request, trials=2), run_fn=run)  # its budget spent: a warning, the profile exported


def test_a_study_from_before_settings_were_recorded_is_stamped_with_where_the_check_starts(tmp_path, lr_study):
    from mmrec_ld4mrec.study.tune import open_storage

    request = dataclasses.replace(lr_study(tmp_path, trials=1), dataset="synthetic")
    run = lambda model, dataset, config, on_evaluation=None: {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 0}  # noqa: E731
    tune(request, run_fn=run)
    study = optuna.load_study(study_name="s", storage=open_storage(request.storage))
    assert "base_settings_from_trial" not in study.user_attrs  # new: checked from its first trial
    study.set_user_attr("base_settings", None)  # as a study from before the record
    tune(dataclasses.replace(request, trials=2), run_fn=run)
    study = optuna.load_study(study_name="s", storage=open_storage(request.storage))
    assert study.user_attrs["base_settings_from_trial"] == 1 and study.user_attrs["base_settings"]["steps"] == 5


def test_changed_settings_see_what_a_searched_key_leaves_to_the_yaml():
    """The item graph's weight is compared even when its k is a searched key (left out of the
    settings a study shares), and a record from before the SVD's oversampling ran without it."""
    from mmrec_ld4mrec.study.drift import changed_settings

    assert changed_settings({"item_graph_weight": 0.3}, {"item_graph_weight": 1.0}, "LD4MRec") == {
        "item_graph_weight": (0.3, 1.0)}
    assert changed_settings({}, {"svd_oversampling": 100, "svd_power_iterations": 8}, "LD4MRec") == {
        "svd_oversampling": (0, 100), "svd_power_iterations": (4, 8)}


def test_the_objective_averages_the_seeds_and_keeps_test_aside(tmp_path):
    request = TuneRequest(model="LD4MRec", dataset="d", trials=1, storage="", study_name="s", settings={},
                          seeds=[1, 2], space=[Dimension("learning_rate", "log_float", 1e-5, 1e-1)])
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    scores = {1: 0.2, 2: 0.4}
    value = objective_value(request, trial, lambda model, dataset, config, on_evaluation=None: {
        "valid": {"Recall@20": scores[config["seed"]]}, "test": {"Recall@20": 9.0, "NDCG@20": 9.0}, "best_epoch": 1})
    assert value == pytest.approx(0.3)
    assert trial.user_attrs["seed_2"]["test"]["Recall@20"] == 9.0  # recorded, not in the objective


def test_tune_cli_exports_the_best_trial_chosen_on_validation(tmp_path, data_path, capsys):
    out = tmp_path / "tune"
    assert main(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--trials", "3",
                 "--results", str(out)]) == 0
    profile = yaml.safe_load((out / "EASE-synthetic.best.yaml").read_text())
    study = optuna.load_study(study_name="EASE-synthetic", storage=f"sqlite:///{out / 'optuna.db'}")
    assert profile["trial"] == study.best_trial.number
    assert profile["settings"]["reg_weight"] == study.best_trial.params["reg_weight"]
    assert profile["budget"]["complete"] == 3
    # a second call finds the budget spent and runs nothing new
    assert main(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--trials", "3",
                 "--results", str(out)]) == 0
    assert len(study.get_trials()) == 3
    # the protocol the command recorded: tuning seed 1001, the pruner's warm-up = overall.yaml's patience
    recorded = study.user_attrs["protocol"]
    assert recorded["seeds"] == [1001] and recorded["engine"] == "standalone"
    assert recorded["pruner"]["warmup_epochs"] == 20 and recorded["settings"] == {}
    assert all(t.user_attrs.get("seed_1001") for t in study.get_trials())
    # --set stopping_step moves the warm-up with it; resuming with another patience is refused
    assert main(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--trials", "1",
                 "--results", str(out), "--study", "short", "--set", "stopping_step=7", "eval_step=2"]) == 0
    short = optuna.load_study(study_name="short", storage=f"sqlite:///{out / 'optuna.db'}")
    assert short.user_attrs["protocol"]["pruner"]["warmup_epochs"] == 14
    capsys.readouterr()
    assert main(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--trials", "2",
                 "--results", str(out), "--study", "short", "--set", "stopping_step=8", "eval_step=2"]) != 0
    assert "another protocol" in capsys.readouterr().err


def test_run_takes_an_exported_profile_and_refuses_another_models(tmp_path, data_path, capsys):
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"model": "EASE", "settings": {"reg_weight": 123.0}}))
    out = tmp_path / "r.json"
    assert main(["run", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--profile", str(profile),
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["reg_weight"] == 123.0
    assert main(["run", "-m", "Pop", "-d", "synthetic", "--data-path", str(data_path), "--profile", str(profile)]) != 0
    assert "EASE's, not Pop's" in capsys.readouterr().err


def test_a_trial_stopped_by_ctrl_c_is_retried_by_the_next_run(tmp_path, lr_study):
    request = lr_study(tmp_path, trials=3)
    seen = []

    def run(model, dataset, config, on_evaluation=None):
        seen.append(config["learning_rate"])
        if len(seen) == 2:
            raise KeyboardInterrupt
        return {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 0}

    with pytest.raises(KeyboardInterrupt):
        tune(request, run_fn=run)
    study = tune(request, run_fn=run)
    states = [t.state for t in study.get_trials()]
    assert states.count(TrialState.COMPLETE) == 3 and states.count(TrialState.FAIL) == 1
    retried = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == 1]
    assert retried[0].params["learning_rate"] == seen[1] == seen[2]


def test_a_stopped_trial_resumes_from_its_snapshot_and_finished_trials_leave_none(tmp_path, lr_study):
    request = dataclasses.replace(lr_study(tmp_path, trials=3), snapshot_dir=str(tmp_path / "snapshots"))
    paths = []

    def run(model, dataset, config, on_evaluation=None, snapshot=None):
        paths.append(snapshot)
        if len(paths) == 2:  # the second trial saves its state, then its worker is stopped
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            snapshot.write_text("state")
            raise KeyboardInterrupt
        return {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 0}

    with pytest.raises(KeyboardInterrupt):
        tune(request, run_fn=run)
    assert paths[1].read_text() == "state"  # kept for the retry
    study = tune(request, run_fn=run)
    assert paths[2] == paths[1]  # the retry of trial 1 (same parameters, same seed) finds it
    assert paths[0] != paths[1] and all(p.parent == tmp_path / "snapshots" / "s" for p in paths)
    assert not list((tmp_path / "snapshots").rglob("*.snapshot"))  # finished trials leave nothing behind
    stopped = next(t for t in study.get_trials() if t.state == TrialState.FAIL)
    assert stopped.user_attrs["wall_seconds"] >= 0  # the stopped attempt's time counts in the budget table


@pytest.fixture
def stoppable_study(tmp_path, data_path):
    """(request(name, snapshots), a run that Ctrl-C stops at epoch 2) for a one-trial LD4MRec
    study of the learning rate, 4 epochs."""
    from mmrec_ld4mrec.engine.quick_start import run as engine_run

    fixed = {"data_path": f"{data_path}/", "epochs": 4, "stopping_step": 100, "embedding_size": 64, "hidden_size": 32,
             "svd_rank": 16}
    space = [Dimension("learning_rate", "log_float", 1e-4, 1e-2)]

    def request(name: str, snapshots: bool) -> TuneRequest:
        return TuneRequest(model="LD4MRec", dataset="synthetic", trials=1, storage=f"sqlite:///{tmp_path / 's.db'}",
                           study_name=name, settings=fixed, seeds=[1001], space=space, sampler_seed=3,
                           snapshot_dir=str(tmp_path / "snapshots") if snapshots else None, snapshot_every=0)

    def stopped_at_epoch_2(model, dataset, config, on_evaluation=None, snapshot=None):
        def stop(epoch, valid):
            if epoch == 2:
                raise KeyboardInterrupt
        return engine_run(model, dataset, config, on_evaluation=stop, snapshot=snapshot, snapshot_every=0)

    return request, stopped_at_epoch_2


def test_a_real_trial_stopped_mid_run_resumes_with_the_value_of_one_never_stopped(stoppable_study, caplog):
    request, stopped_at_epoch_2 = stoppable_study
    caplog.set_level(logging.INFO, logger="mmrec_ld4mrec")
    never_stopped = tune(request("whole", snapshots=False)).best_trial
    with pytest.raises(KeyboardInterrupt):
        tune(request("stopped", snapshots=True), run_fn=stopped_at_epoch_2)
    resumed = tune(request("stopped", snapshots=True)).best_trial
    assert "resuming from" in caplog.text and "saved after epoch 1" in caplog.text
    assert resumed.params == never_stopped.params
    assert resumed.value == never_stopped.value
    assert resumed.user_attrs["seed_1001"]["best_epoch"] == never_stopped.user_attrs["seed_1001"]["best_epoch"]


def test_a_trial_stopped_by_sigterm_is_queued_again_at_once(tmp_path, lr_study):
    """A Slurm time limit or `kill` sends SIGTERM; background workers ignore Ctrl-C's SIGINT."""
    request = lr_study(tmp_path, trials=3)
    seen = []

    def run(model, dataset, config, on_evaluation=None):
        seen.append(config["learning_rate"])
        if len(seen) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives here
        return {"valid": {"Recall@20": 0.1}, "test": {}, "best_epoch": 0}

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit):
        tune(request, run_fn=run)
    assert signal.getsignal(signal.SIGTERM) == before  # restored
    study = tune(request, run_fn=run)
    retried = [t for t in study.get_trials() if t.user_attrs.get("retry_of") == 1]
    assert retried[0].params["learning_rate"] == seen[1] == seen[2]
    assert [t.state for t in study.get_trials()].count(TrialState.COMPLETE) == 3


@pytest.mark.parametrize("argv, needle", [
    (["--storage", "optuna.db"], "--storage"),
    (["--trials", "0"], "--trials"),
    (["--space", "{missing}"], "no search space"),
])
def test_bad_tune_arguments_are_one_line_errors(tmp_path, data_path, capsys, argv, needle):
    argv = [a.replace("{missing}", str(tmp_path / "none.yaml")) for a in argv]
    base = ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--results", str(tmp_path / "t")]
    if "--trials" not in argv:
        base += ["--trials", "1"]
    assert main(base + argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "t").exists()  # refused before anything was written


@pytest.mark.parametrize("text, needle", [("[1, 2]\n", "expected a mapping"),
                                           ("model: EASE\n", "profile written by `tune`")])
def test_a_file_that_is_not_a_profile_is_refused_naming_it(tmp_path, data_path, capsys, text, needle):
    bad = tmp_path / "p.yaml"
    bad.write_text(text)
    assert main(["run", "-m", "EASE", "-d", "synthetic", "--data-path", str(data_path), "--profile", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and needle in err


@pytest.mark.parametrize("tamper", ["optimizer of another shape", "next_epoch far beyond", "RNG cut short"])
def test_a_trial_whose_snapshot_is_damaged_runs_again_from_epoch_0_to_the_value_of_one_never_stopped(
        stoppable_study, tmp_path, caplog, tamper):
    """The issue's trial level: a stopped trial's snapshot that cannot be restored (an optimizer
    state a fused step would write past, a counter out of range, a generator cut short) is set
    aside; the trial is neither failed nor queued forever: it runs from epoch 0 and completes
    with the value of a trial never stopped."""
    request, stopped_at_epoch_2 = stoppable_study
    caplog.set_level(logging.INFO, logger="mmrec_ld4mrec")
    never_stopped = tune(request("whole", snapshots=False)).best_trial
    with pytest.raises(KeyboardInterrupt):
        tune(request("stopped", snapshots=True), run_fn=stopped_at_epoch_2)
    [file] = [p for p in (tmp_path / "snapshots").rglob("*") if p.is_file()]
    tamper_snapshot(file, tamper)
    study = tune(request("stopped", snapshots=True))
    trials = study.get_trials()
    # trial 0 is the one Ctrl-C stopped; its retry (not a second failure, as before) completes
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], trials
    assert trials[1].user_attrs["retry_of"] == 0
    assert "starts from epoch 0" in caplog.text
    assert study.best_trial.params == never_stopped.params and study.best_trial.value == never_stopped.value
    assert study.best_trial.user_attrs["seed_1001"]["best_epoch"] == never_stopped.user_attrs["seed_1001"]["best_epoch"]
