"""`results import`: a `results export` CSV back into a registry; what it cannot take is refused
naming the file, the line and the column, and nothing already in the registry is replaced."""

import csv

import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import UserInputError
from mmrec_ld4mrec.study.experiment import RunSpec
from mmrec_ld4mrec.study.registry import Registry
from mmrec_ld4mrec.study.results_view import records_from_csv

METRICS = {"Recall@10": 0.1, "Recall@20": 0.2, "NDCG@10": 0.05, "NDCG@20": 0.07}


def _record(seed: int, recall20: float = 0.2, status: str = "done") -> dict:
    spec = RunSpec("synthetic", "EASE", seed, {"reg_weight": 250.0})
    record = {"key": spec.key, "status": status, "experiment": "exp",
              "spec": {"dataset": "synthetic", "model": "EASE", "seed": seed, "overrides": {"reg_weight": 250.0}},
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
    assert runs[2]["result"]["test"]["Recall@20"] == 0.3 and runs[2]["imported_from"] == "runs.csv line 3"
    assert runs[3]["status"] == "failed" and runs[3]["error"] == "boom"
    assert runs[2]["environment"]["cpus"] == 2 and runs[2]["code"] == {"commit": "abc", "dirty": True}


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
    rows = list(csv.DictReader(out.open()))
    rows[1][column] = value
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return bad


@pytest.mark.parametrize("column, value, needle", [
    ("test Recall@20", "high", "'test Recall@20' must be a number"),
    ("test Recall@20", "", "'test Recall@20' is blank"),
    ("seed", "1.5", "'seed' must be a whole number"),
    ("overrides", "[1]", "'overrides' must be a JSON mapping"),
    ("overrides", '{"reg_weight": 100.0}', "is not the key of its dataset, model, seed and overrides"),
    ("status", "running", "'status' must be done or failed"),
    ("best_epoch", "inf", "'best_epoch' must be a whole number"),
    ("code_dirty", "yes", "'code_dirty' must be True, False or blank"),
])
def test_a_bad_row_is_refused_naming_its_line_and_column(tmp_path, column, value, needle):
    bad = _edited(tmp_path, column, value)
    with pytest.raises(UserInputError) as err:
        records_from_csv(bad)
    assert str(bad) in str(err.value) and "line 3" in str(err.value) and needle in str(err.value)


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
