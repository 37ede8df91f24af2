"""`results import`: a `results export` CSV back into a registry; what it cannot take is refused
naming the file, the line and the column, and nothing already in the registry is replaced."""

import csv

import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import UserInputError
from mmrec_ld4mrec.study.experiment import RunSpec
from mmrec_ld4mrec.study.registry import Registry
from mmrec_ld4mrec.study.results_view import records_from_csv, records_from_jsonl

METRICS = {"Recall@10": 0.1, "Recall@20": 0.2, "NDCG@10": 0.05, "NDCG@20": 0.07}


OVERRIDES = {"reg_weight": 250.0, "epochs": 3, "use_pg": False, "dims": [200, 600], "note": "a, \"b\"\nc"}


def _record(seed: int, recall20: float = 0.2, status: str = "done") -> dict:
    spec = RunSpec("synthetic", "EASE", seed, OVERRIDES)
    record = {"key": spec.key, "status": status, "experiment": "exp",
              "spec": {"dataset": "synthetic", "model": "EASE", "seed": seed, "overrides": dict(OVERRIDES)},
              "environment": {"accelerator": None, "cpus": 2}, "code": {"commit": "abc", "dirty": True}, "jobs": 1}
    if status == "done":
        record["result"] = {"valid": dict(METRICS), "test": {**METRICS, "Recall@20": recall20}, "best_epoch": 0,
                            "epochs_run": 1, "train_seconds_per_epoch": 0.5, "inference_seconds": 0.1}
    else:
        record["error"] = "boom"
    return record


def _export(tmp_path, records, name="runs.csv"):
    with Registry(tmp_path / name.replace(".csv", "")) as reg:
        for r in records:
            reg.put(r)
    out = tmp_path / name
    assert main(["results", "export", "--results", str(tmp_path / name.replace(".csv", "")), "--out", str(out)]) == 0
    return out


def test_import_keeps_what_the_registry_holds_and_adds_the_rest(tmp_path, capsys):
    out = _export(tmp_path, [_record(1, 0.2), _record(2, 0.3), _record(3, status="failed")])
    target = tmp_path / "target"
    with Registry(target) as reg:
        reg.put(_record(1, 0.9))  # the registry's own run of seed 1
    assert main(["results", "import", str(out), "--results", str(target)]) == 0
    assert "imported 2 run(s)" in capsys.readouterr().out
    with Registry(target, readonly=True) as reg:
        runs = {r["spec"]["seed"]: r for r in reg.records()}
    assert runs[1]["result"]["test"]["Recall@20"] == 0.9 and "imported_from" not in runs[1]
    line = next(n for n, text in enumerate(out.read_text().split("\n"), 1) if text.startswith(runs[2]["key"]))
    assert runs[2]["result"]["test"]["Recall@20"] == 0.3 and runs[2]["imported_from"] == f"runs.csv line {line}"
    assert runs[3]["status"] == "failed" and runs[3]["error"] == "boom"
    assert runs[2]["environment"]["cpus"] == 2 and runs[2]["code"] == {"commit": "abc", "dirty": True}
    assert runs[2]["spec"]["overrides"] == OVERRIDES and type(runs[2]["spec"]["overrides"]["epochs"]) is int
    assert runs[2]["label"] == "EASE@synthetic seed 2"


def test_a_finished_row_replaces_a_failed_run_but_never_a_finished_one(tmp_path):
    out = _export(tmp_path, [_record(1, 0.2), _record(2, status="failed")])
    target = tmp_path / "target"
    with Registry(target) as reg:
        reg.put(_record(1, status="failed"))
        reg.put(_record(2, 0.9))
    assert main(["results", "import", str(out), "--results", str(target)]) == 0
    with Registry(target, readonly=True) as reg:
        runs = {r["spec"]["seed"]: r for r in reg.records()}
    assert runs[1]["status"] == "done" and runs[1]["result"]["test"]["Recall@20"] == 0.2
    assert runs[2]["status"] == "done" and runs[2]["result"]["test"]["Recall@20"] == 0.9


def test_spreadsheet_csvs_and_cells_over_several_lines(tmp_path):
    """A byte-order mark is read past; a failed run's error spanning lines keeps its line breaks,
    and each row is named by the line it starts on."""
    failed = _record(1, status="failed")
    failed["error"] = "line one\r\nline two"
    out = _export(tmp_path, [failed, _record(2)])
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + out.read_bytes())
    records = records_from_csv(bom)
    error = next(r for r in records if r["status"] == "failed")
    assert error["error"] == "line one\r\nline two"
    # the second row starts on line 3 after a one-line row, on line 4 after the two-line one
    assert [r["imported_from"] for r in records] == ["bom.csv line 2", "bom.csv line " +
                                                     ("4" if records[0] is error else "3")]


def test_a_metric_the_run_did_not_compute_stays_out(tmp_path):
    record = _record(1)
    del record["result"]["valid"]["Recall@10"], record["result"]["test"]["Recall@10"]
    imported = records_from_csv(_export(tmp_path, [record]))[0]["result"]
    assert "Recall@10" not in imported["valid"] and "Recall@10" not in imported["test"]


@pytest.mark.parametrize("value", [float("nan"), -5.0, 5.0])
def test_a_metric_no_run_can_have_is_refused_naming_line_and_column(tmp_path, value):
    """NaN, -5 or 5 as Recall@20: no run computes it (the report used to bold NaN ± NaN as best)."""
    record = _record(1)
    record["result"]["test"]["Recall@20"] = value
    with pytest.raises(UserInputError, match=r"line 2: 'test Recall@20' must be"):
        records_from_csv(_export(tmp_path, [record]))


def test_imports_leave_out_fig3_runs_when_asked_and_refuse_a_bad_core_count(tmp_path, capsys):
    study = _record(2)
    study["spec"]["overrides"] = {**OVERRIDES, "inference_study": [0, 1]}
    study["key"] = RunSpec("synthetic", "EASE", 2, study["spec"]["overrides"]).key
    out = _export(tmp_path, [_record(1), study])
    target = tmp_path / "target"
    assert main(["results", "import", str(out), "--results", str(target), "--without-inference-runs"]) == 0
    assert "1 run(s) of Fig. 3's inference study left out" in capsys.readouterr().out
    with Registry(target, readonly=True) as reg:
        assert [r["spec"]["seed"] for r in reg.records()] == [1]
    assert main(["results", "import", str(out), "--results", str(target), "--cpus", "0"]) == 2
    assert "--cpus" in capsys.readouterr().err


def test_rows_of_an_older_export_take_the_core_count_given_and_leave_local_changes_unknown(tmp_path):
    out = _export(tmp_path, [_record(1)])
    rows = list(csv.DictReader(out.open()))
    del rows[0]["cpus"], rows[0]["code_dirty"]
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert records_from_csv(old)[0]["environment"]["cpus"] is None
    imported = records_from_csv(old, cpus=2)[0]
    assert imported["environment"]["cpus"] == 2 and imported["code"] == {"commit": "abc", "dirty": None}


def _edited(tmp_path, column, value):
    out = _export(tmp_path, [_record(1), _record(2)])
    rows = list(csv.DictReader(out.open(newline="")))
    if value is None:  # the first row again
        rows[1] = dict(rows[0])
    else:
        rows[1][column] = value
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return bad


@pytest.mark.parametrize("column, value, needle", [
    ("test Recall@20", "high", "'test Recall@20' must be a number"),
    ("jobs", "two", "'jobs' must be a whole number"),
    ("seed", "1.5", "'seed' must be a whole number"),
    ("overrides", "[1]", "'overrides' must be a JSON mapping"),
    ("overrides", '{"reg_weight": 100.0}', "is not the key of its dataset, model, seed and overrides"),
    ("status", "running", "'status' must be done or failed"),
    ("best_epoch", "inf", "'best_epoch' must be a whole number"),
    ("code_dirty", "yes", "'code_dirty' must be True, False or blank"),
    ("key", None, "the run of line 2 again"),
])
def test_a_bad_row_is_refused_naming_its_line_and_column(tmp_path, column, value, needle):
    bad = _edited(tmp_path, column, value)
    with pytest.raises(UserInputError) as err:
        records_from_csv(bad)
    assert str(bad) in str(err.value) and "line 3" in str(err.value) and needle in str(err.value)


def test_a_row_with_a_missing_cell_is_refused_naming_its_line(tmp_path):
    out = _export(tmp_path, [_record(1), _record(2)])
    lines = out.read_text().split("\n")
    short = tmp_path / "short.csv"
    short.write_text("\n".join([lines[0], lines[1], lines[2].rsplit(",", 1)[0]] + lines[3:]))
    with pytest.raises(UserInputError, match=r"short.csv line \d+: \d+ columns expected"):
        records_from_csv(short)


def test_a_file_that_is_not_an_export_is_refused_and_nothing_is_imported(tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("key,status\nabc,done\n")
    target = tmp_path / "target"
    assert main(["results", "import", str(other), "--results", str(target)]) == 2
    err = capsys.readouterr().err
    assert str(other) in err and "'experiment'" in err
    assert not (target / "registry.lmdb").exists()
    bad = _edited(tmp_path, "seed", "x")
    assert main(["results", "import", str(bad), "--results", str(target)]) == 2
    assert not (target / "registry.lmdb").exists()  # every row is read before the registry is opened


def test_results_list_shows_control_characters_escaped_not_run_by_the_terminal(tmp_path, capsys):
    record = _record(1)
    record["spec"]["dataset"] = "synthetic\x1b[2J\x1b[31m"  # a hand-made record's names reach the terminal
    record["key"] = RunSpec(record["spec"]["dataset"], "EASE", 1, record["spec"]["overrides"]).key
    with Registry(tmp_path / "r") as reg:
        reg.put(record)
    assert main(["results", "list", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_a_jsonl_export_leaves_out_the_data_folder_of_the_machine_it_ran_on(tmp_path):
    """An export is shared or committed: the run's data folder (a path of its machine) stays in
    the registry only; everything else of the record comes back whole."""
    record = _record(1)
    record["result"]["config"] = {"data_path": "/scratch/someone/data/", "reg_weight": 250.0}
    with Registry(tmp_path / "r") as reg:
        reg.put(record)
    out = tmp_path / "runs.jsonl"
    assert main(["results", "export", "--results", str(tmp_path / "r"), "--format", "jsonl", "--out", str(out)]) == 0
    assert "/scratch/someone" not in out.read_text()
    (exported,) = records_from_jsonl(out)
    assert exported["result"]["config"] == {"reg_weight": 250.0}
    assert {k: v for k, v in exported.items() if k != "result"} == {k: v for k, v in record.items() if k != "result"}
