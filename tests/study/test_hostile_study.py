"""Hostile input to the study harness (``reproduce``, ``results``, ``summarize``, ``bench``,
``tune``): concurrent sweeps, a damaged registry, bad paths and values, Ctrl-C. Each case ends in
one clean line (exit code 2) or the documented behaviour, with no traceback and nothing changed
outside the intended folder. The ``synthetic`` generator raced by first runs:
tests/data/test_hostile_files.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from mmrec_ld4mrec.study.experiment import load_experiment
from mmrec_ld4mrec.study.registry import Registry

from ..hostile import assert_clean_error, cli, cli_process, snapshot, wait_for

POP = "name: {name}\ndatasets: [synthetic]\nseeds: {seeds}\nbase: {{epochs: 1}}\nmodels: {{Pop: {{}}}}\n"
CLI = [sys.executable, "-m", "mmrec_ld4mrec.cli"]


def _pop_experiment(folder: Path, seeds: list[int] | None = None, name: str = "pop", extra: str = "") -> Path:
    """A one-model experiment (Pop: no training, a run takes a process start) in ``folder``."""
    path = folder / "exp.yaml"
    path.write_text(POP.format(name=name, seeds=seeds or [1]) + extra)
    return path


def _record(key: str, status: str = "done", seed: int = 1, history: int = 0) -> dict:
    """A registry record shaped as ``reproduce`` writes it."""
    record = {"key": key, "label": f"Pop@synthetic seed {seed}", "status": status, "experiment": "pop",
              "spec": {"dataset": "synthetic", "model": "Pop", "seed": seed, "overrides": {"epochs": 1}},
              "jobs": 1, "code": {"package": "0", "commit": None, "dirty": None},
              "environment": {"accelerator": None, "cpus": 2}, "started_at": "t", "finished_at": "t",
              "wall_seconds": 1.0, "log": f"logs/{key}.log"}
    if status == "done":
        metrics = {"Recall@10": 0.1, "Recall@20": 0.2, "NDCG@10": 0.05, "NDCG@20": 0.07}
        record["result"] = {"valid": metrics, "test": metrics, "best_epoch": 0, "epochs_run": 1,
                            "train_seconds_per_epoch": 0.0, "inference_seconds": 0.1, "peak_rss_mb": 100.0,
                            "history": [{"epoch": e, "loss": 0.5} for e in range(history)]}
    else:
        record["error"] = "boom"
    return record


def _without_lock_file(state: dict) -> dict:
    """A snapshot less LMDB's lock.mdb (every reader updates its reader table) and the sweep's lock file."""
    return {k: v for k, v in state.items() if not k.endswith(("lock.mdb", ".lock"))}


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def _done_records(results: Path) -> list[dict]:
    if not (results / "registry.lmdb" / "data.mdb").is_file():
        return []
    with Registry(results, readonly=True) as reg:
        return [r for r in reg.records() if r["status"] == "done"]


# ---- 1. two sweeps on one results folder ----------------------------------------------------------------

def test_a_second_sweep_on_the_same_results_folder_is_refused(tmp_path, data_path, capsys):
    exp = _pop_experiment(tmp_path, seeds=[1, 2, 3], name="twice")
    results = tmp_path / "r"
    argv = ["reproduce", exp, "--results", results, "--data-path", data_path]
    first = subprocess.Popen([*CLI, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (results / "work").is_dir() or first.poll() is not None, what="the first sweep to start")
        assert first.poll() is None, first.communicate()
        second = cli_process(argv)
        # reading the registry while a sweep writes it still works
        listing = cli(["results", "list", "--results", results], capsys)
        report_only = cli(["reproduce", exp, "--results", results, "--report-only", "--report", tmp_path / "ro.md"],
                          capsys)
        out, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    line = assert_clean_error(second, str(results), "another sweep")
    assert "is running" in line
    assert listing.code == 0 and "run(s):" in listing.out, listing.err
    assert report_only.code == 0 and (tmp_path / "ro.md").is_file(), report_only.err
    with Registry(results, readonly=True) as reg:
        records = list(reg.records())
    assert sorted(r["spec"]["seed"] for r in records) == [1, 2, 3]
    assert all(r["status"] == "done" for r in records)
    assert "3 finished now" in out


def test_a_failed_record_never_replaces_a_finished_one(tmp_path):
    with Registry(tmp_path) as reg:
        reg.put(_record("k1", "done"))
        reg.put(_record("k1", "failed"))
        assert reg.get("k1")["status"] == "done"
        reg.put(_record("k2", "failed"))
        reg.put(_record("k2", "done"))  # a failed run that later finished is replaced
        assert reg.get("k2")["status"] == "done"


# ---- 3. output paths checked before any work ----------------------------------------------------------------

def _registry_for(exp: Path, results: Path) -> None:
    key = load_experiment(exp).main_runs("synthetic", "Pop")[0].key
    with Registry(results) as reg:
        reg.put(_record(key))


def _experiment_with_registry(tmp_path):
    """The Pop experiment and a results folder whose registry holds its runs."""
    exp = _pop_experiment(tmp_path)
    results = tmp_path / "r"
    _registry_for(exp, results)
    return exp, results


@pytest.mark.parametrize("case", ["report-only", "report-only-link", "report-only-no-suffix", "sweep-report",
                                  "results-export", "summarize", "bench", "tune-export"])
def test_an_output_path_is_checked_before_any_work(tmp_path, data_path, capsys, case):
    exp, results = _experiment_with_registry(tmp_path)
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside.txt").write_text("the user's file\n")
    if case == "report-only-link":
        (tmp_path / "precious.md").write_text("precious\n")
        target = tmp_path / "link.md"
        target.symlink_to(tmp_path / "precious.md")
    elif case == "report-only-no-suffix":
        target = tmp_path / "report"  # the assets folder would be the report itself
    result_json = tmp_path / "one.json"
    result_json.write_text(json.dumps({"model": "Pop", "dataset": "synthetic", "valid": {"Recall@20": 0.1},
                                       "test": {"Recall@20": 0.1}}))
    argv = {
        "report-only": ["reproduce", exp, "--results", results, "--report-only", "--report", target],
        "report-only-link": ["reproduce", exp, "--results", results, "--report-only", "--report", target],
        "report-only-no-suffix": ["reproduce", exp, "--results", results, "--report-only", "--report", target],
        "sweep-report": ["reproduce", exp, "--results", tmp_path / "fresh", "--data-path", data_path,
                         "--report", target],
        "results-export": ["results", "export", "--results", results, "--out", target],
        "summarize": ["summarize", result_json, "--out", target],
        "bench": ["bench", "-d", "synthetic", "--data-path", data_path, "-m", "Pop", "--epochs", "1",
                  "--repeats", "1", "--out", target],
        "tune-export": ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--trials", "1",
                        "--results", tmp_path / "tune", "--export", target],
    }[case]
    before = _without_lock_file(snapshot(tmp_path))
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, str(target))
    assert outcome.out == "", outcome.out  # refused before anything ran or was printed
    assert _without_lock_file(snapshot(tmp_path)) == before


REPORT_MARKER = ".mmrec-ld4mrec-report"


def test_the_report_never_writes_into_a_folder_of_the_users(tmp_path, capsys):
    """`--report X.md` writes its tables and figures into `X/`: only where that folder is new, empty or
    the report writer's own (its marker file), never over the user's files there."""
    exp, results = _experiment_with_registry(tmp_path)
    assets = tmp_path / "X"
    assets.mkdir()
    (assets / "table2-synthetic.csv").write_text("the user's own table\n")
    argv = ["reproduce", exp, "--results", results, "--report-only", "--report", tmp_path / "X.md"]
    before = _without_lock_file(snapshot(tmp_path))
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, str(assets), REPORT_MARKER)
    assert outcome.out == ""
    assert _without_lock_file(snapshot(tmp_path)) == before
    (assets / "table2-synthetic.csv").unlink()  # an empty folder may be written, and is marked as the report's
    assert cli(argv, capsys).code == 0
    assert (assets / REPORT_MARKER).is_file() and (assets / "table2-synthetic.csv").is_file()
    assert cli(argv, capsys).code == 0  # rebuilding into its own folder stays allowed
    for committed in (Path(__file__).resolve().parents[2] / "docs" / "results").iterdir():
        if committed.is_dir():
            assert (committed / REPORT_MARKER).is_file(), f"{committed}: a committed report folder carries the marker"


# ---- 4. a damaged registry ------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["list", "report-only", "sweep"])
def test_a_truncated_registry_is_refused_not_a_crash(tmp_path, data_path, command):
    exp = _pop_experiment(tmp_path)
    results = tmp_path / "r"
    with Registry(results) as reg:
        for i in range(60):
            reg.put(_record(f"k{i:03d}", history=40))
    data = results / "registry.lmdb" / "data.mdb"
    os.truncate(data, data.stat().st_size // 2 // 4096 * 4096)  # half its pages: the index points past the end
    argv = {"list": ["results", "list", "--results", results],
            "report-only": ["reproduce", exp, "--results", results, "--report-only"],
            "sweep": ["reproduce", exp, "--results", results, "--data-path", data_path]}[command]
    before = _without_lock_file(snapshot(tmp_path))
    outcome = cli_process(argv)  # a crash (SIGBUS) would end the test process: run it in its own
    assert_clean_error(outcome, "registry.lmdb", "damaged")
    assert _without_lock_file(snapshot(tmp_path)) == before


@pytest.mark.parametrize("content, fragment", [(b"", "an empty file"), (os.urandom(20000), "not an LMDB file"),
                                               (bytes(4096), "not an LMDB file")])
@pytest.mark.parametrize("command", ["list", "report-only"])
def test_a_data_file_that_is_not_lmdb_is_refused_naming_it(tmp_path, capsys, content, fragment, command):
    exp = _pop_experiment(tmp_path)
    data = tmp_path / "r" / "registry.lmdb" / "data.mdb"
    data.parent.mkdir(parents=True)
    data.write_bytes(content)
    argv = {"list": ["results", "list", "--results", tmp_path / "r"],
            "report-only": ["reproduce", exp, "--results", tmp_path / "r", "--report-only"]}[command]
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, "registry.lmdb", fragment)
    assert "Bad file descriptor" not in outcome.err and data.read_bytes() == content


def _corrupt(record: dict | None = None, raw: bytes | None = None) -> bytes:
    return raw if raw is not None else json.dumps(record).encode()


DAMAGED = {
    "not-json": (b"\x00\xff{not json", "not JSON"),
    "not-an-object": (b'["a", "list"]', "not a JSON object"),
    "no-status": (_corrupt({k: v for k, v in _record("k1").items() if k != "status"}), "'status'"),
    "bad-status": (_corrupt({**_record("k1"), "status": "running"}), "'status'"),
    "no-spec": (_corrupt({k: v for k, v in _record("k1").items() if k != "spec"}), "'spec'"),
    "text-metric": (_corrupt({**_record("k1"), "result": {**_record("k1")["result"],
                                                          "test": {"Recall@20": "high"}}}), "Recall@20"),
    "other-key": (_corrupt(_record("k2")), "'key'"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
@pytest.mark.parametrize("command", ["list", "show", "export", "report-only", "sweep"])
def test_a_damaged_record_is_refused_naming_the_registry(tmp_path, data_path, capsys, case, command):
    exp = _pop_experiment(tmp_path)
    results = tmp_path / "r"
    with Registry(results) as reg:
        reg.put(_record("k0"))
    value, fragment = DAMAGED[case]
    env = lmdb.open(str(results / "registry.lmdb"), subdir=True)
    with env.begin(write=True) as txn:
        txn.put(b"run:k1", value)
    env.close()
    argv = {"list": ["results", "list", "--results", results],
            "show": ["results", "show", "k0", "--results", results],
            "export": ["results", "export", "--results", results],
            "report-only": ["reproduce", exp, "--results", results, "--report-only"],
            "sweep": ["reproduce", exp, "--results", results, "--data-path", data_path]}[command]
    before = _without_lock_file(snapshot(tmp_path))
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, "registry.lmdb", "k1", fragment)
    assert _without_lock_file(snapshot(tmp_path)) == before


# ---- 5. bad values end in one line ---------------------------------------------------------------------------------

BAD_EXPERIMENTS = {
    "binary": (bytes(range(256)) * 4, "not UTF-8"),
    "keys-of-two-types": (b"1: x\nfoo: y\ndatasets: [synthetic]\nseeds: [1]\nmodels: {Pop: {}}\n", "keys must be text"),
    "negative-epochs": (POP.format(name="x", seeds=[1]).replace("epochs: 1", "epochs: -3").encode(), "base.epochs"),
    "fractional-epochs": (POP.format(name="x", seeds=[1]).replace("epochs: 1", "epochs: 1.5").encode(), "base.epochs"),
    "zero-batch": (POP.format(name="x", seeds=[1]).replace("{Pop: {}}", "{Pop: {train_batch_size: 0}}").encode(),
                   "models.Pop.train_batch_size"),
    "negative-rate": (POP.format(name="x", seeds=[1]).replace("{Pop: {}}", "{Pop: {learning_rate: -1}}").encode(),
                      "models.Pop.learning_rate"),
    "ablation-epochs": ((POP.format(name="x", seeds=[1]) + "studies: {ablation: {variants: {v: {epochs: 0}}}}\n").encode(),
                        "studies.ablation.variants.v.epochs"),
    "unknown-config-key": (POP.format(name="x", seeds=[1]).replace("epochs: 1", "epochs: 1, no_such_key: 1").encode(),
                           "no_such_key"),
    "ld4mrec-range": (b"datasets: [synthetic]\nseeds: [1]\nbase: {epochs: 1}\nmodels: {LD4MRec: {soft_prob: 2}}\n",
                      "soft_prob"),
    "name-parent": (POP.format(name="'..'", seeds=[1]).encode(), "'name'"),
    "name-dot": (POP.format(name="'.'", seeds=[1]).encode(), "'name'"),
    "name-absolute": (POP.format(name="/tmp/elsewhere", seeds=[1]).encode(), "'name'"),
    "name-nested": (POP.format(name="a/../../b", seeds=[1]).encode(), "'name'"),
    "data-path-a-file": ((POP.format(name="x", seeds=[1]) + "data_path: afile\n").encode(), "data_path"),
}


@pytest.mark.parametrize("case", sorted(BAD_EXPERIMENTS))
def test_a_bad_experiment_file_is_refused_before_any_run(tmp_path, capsys, case):
    text, fragment = BAD_EXPERIMENTS[case]
    exp = tmp_path / "exp.yaml"
    exp.write_bytes(text)
    (tmp_path / "afile").write_text("not a folder\n")
    before = snapshot(tmp_path)
    outcome = cli(["reproduce", exp, "--results", tmp_path / "r"], capsys)
    assert_clean_error(outcome, str(exp), fragment)
    assert snapshot(tmp_path) == before


def test_an_experiment_name_cannot_lead_out_of_the_working_folder(tmp_path, data_path, capsys, monkeypatch):
    work = tmp_path / "a" / "b" / "c" / "d"
    work.mkdir(parents=True)
    _pop_experiment(work, name="../../../escape")
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    outcome = cli(["reproduce", "exp.yaml", "--data-path", data_path], capsys)
    assert_clean_error(outcome, "exp.yaml", "'name'")
    assert snapshot(tmp_path) == before
    fine = tmp_path / "fine"
    fine.mkdir()
    assert load_experiment(_pop_experiment(fine, name="tiny-2")).name == "tiny-2"  # a plain name is kept
    stem = fine / "from-the-stem.yaml"
    stem.write_text("datasets: [synthetic]\nseeds: [1]\nmodels: {Pop: {}}\n")
    assert load_experiment(stem).name == "from-the-stem"


def test_a_binary_search_space_is_refused(tmp_path, data_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_bytes(bytes(range(256)) * 4)
    before = snapshot(tmp_path)
    outcome = cli(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--trials", "1",
                   "--space", space, "--results", tmp_path / "tune"], capsys)
    assert_clean_error(outcome, str(space), "not UTF-8")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["sweep", "report-only", "list", "show", "export"])
def test_results_that_is_a_file_is_refused(tmp_path, data_path, capsys, command):
    exp = _pop_experiment(tmp_path)
    results = tmp_path / "afile"
    results.write_text("not a folder\n")
    argv = {"sweep": ["reproduce", exp, "--results", results, "--data-path", data_path],
            "report-only": ["reproduce", exp, "--results", results, "--report-only"],
            "list": ["results", "list", "--results", results],
            "show": ["results", "show", "k", "--results", results],
            "export": ["results", "export", "--results", results]}[command]
    before = snapshot(tmp_path)
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, str(results))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["option", "experiment-default"])
def test_a_data_path_that_is_a_file_is_refused(tmp_path, capsys, where):
    exp = _pop_experiment(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    results = tmp_path / "r"
    if where == "option":
        argv = ["reproduce", exp, "--results", results, "--data-path", afile]
    else:  # the default, RESULTS/data, is a file
        results.mkdir()
        (results / "data").write_text("not a folder\n")
        argv = ["reproduce", exp, "--results", results]
    before = snapshot(tmp_path)
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, "data")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("option, value", [("--repeats", "0"), ("--repeats", "-2"), ("--epochs", "-1"),
                                           ("--epochs", "0")])
def test_bench_refuses_counts_below_one(tmp_path, data_path, capsys, option, value):
    argv = ["bench", "-d", "synthetic", "--data-path", data_path, "-m", "Pop", "--epochs", "1", "--repeats", "1",
            option, value]
    before = snapshot(tmp_path)
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, option)
    assert "round" not in outcome.out  # nothing was measured
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("content, fragment", [
    ({"model": "Pop", "dataset": "d", "valid": {"Recall@20": "high"}, "test": {}}, "valid.Recall@20"),
    ({"model": "Pop", "dataset": "d", "valid": {}, "test": {"NDCG@20": True}}, "test.NDCG@20"),
    ({"model": "Pop", "dataset": "d", "valid": [], "test": {}}, "'valid'"),
    ({"model": ["Pop"], "dataset": "d", "valid": {}, "test": {}}, "'model'"),
    ({"model": "Pop", "dataset": "d", "valid": {}, "test": {}, "train_seconds_per_epoch": "fast"},
     "train_seconds_per_epoch"),
    ({"model": "Pop", "dataset": "d", "valid": {}, "test": {}, "config": [1]}, "'config'"),
    (["not", "an", "object"], "a JSON object"),
    ({"model": "Pop", "dataset": "d", "valid": {"Recall@20": float("nan")}, "test": {}}, "valid.Recall@20"),
    ({"model": "Pop", "dataset": "d", "valid": {}, "test": {"NDCG@10": float("inf")}}, "test.NDCG@10"),
    ({"model": "Pop", "dataset": "d", "valid": {}, "test": {"Recall@10": float("-inf")}}, "test.Recall@10"),
    ({"model": "Pop", "dataset": "d", "valid": {"NDCG@20": -0.5}, "test": {}}, "valid.NDCG@20"),
])
def test_summarize_refuses_a_result_with_a_bad_value(tmp_path, capsys, content, fragment):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(content))
    outcome = cli(["summarize", path], capsys)
    assert_clean_error(outcome, str(path), fragment)


def test_ctrl_c_ends_the_sweep_in_one_line_and_leaves_no_half_record(tmp_path, data_path):
    # eight runs: under load the sweep must not be able to finish between the check below and the signal
    exp = _pop_experiment(tmp_path, seeds=list(range(1, 9)), name="ctrlc")
    results = tmp_path / "r"
    cmd = [*CLI, "reproduce", str(exp), "--results", str(results), "--data-path", str(data_path)]
    # a terminal's foreground job takes Ctrl-C; a test run started in the background by a shell
    # without job control inherits SIGINT ignored, which Python (and the sweep) would keep
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # one run finished and the next one started: a worker is running
        wait_for(lambda: sweep.poll() is not None or (
            _done_records(results) and any((results / "work").glob("*.spec.json"))), what="a run in flight")
        assert sweep.poll() is None, sweep.communicate()
        os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        out, err = sweep.communicate(timeout=60)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    assert "Traceback" not in err, err
    assert sweep.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    wait_for(lambda: not _processes_mentioning(str(results)), seconds=10, what="the workers to end")
    with Registry(results, readonly=True) as reg:
        records = list(reg.records())
    assert 1 <= len(records) < 8 and all(r["status"] == "done" for r in records)
    assert not (results / "work").exists() or not any((results / "work").iterdir())
    # and the next sweep takes the folder and finishes the rest
    resumed = cli_process(cmd[3:])
    assert resumed.code == 0, resumed.err
    assert len(_done_records(results)) == 8
