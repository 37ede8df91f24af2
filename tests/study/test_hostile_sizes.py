"""Inputs that used to end in a traceback or exhaust memory: a 400-digit bound, a superscript
digit in a shape, a million tuning seeds, an overrides cell nested thousands deep. Each is
refused in one line naming its flag, file or column."""

from __future__ import annotations

import csv

import pytest

from mmrec_ld4mrec.errors import UserInputError
from mmrec_ld4mrec.study.experiment import RunSpec
from mmrec_ld4mrec.study.results_view import FLAT_FIELDS, records_from_csv

from ..hostile import assert_clean_error, cli, snapshot


def test_a_400_digit_bound_in_a_search_space_is_refused(tmp_path, data_path, capsys):
    (tmp_path / "space.yaml").write_text(f"reg_weight: {{type: log_float, low: 1.0, high: {'9' * 400}}}\n")
    before = snapshot(tmp_path)
    outcome = cli(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--trials", "1",
                   "--results", tmp_path / "R", "--space", tmp_path / "space.yaml"], capsys)
    assert_clean_error(outcome, "space.yaml", "reg_weight", "finite, at most 2**53")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("shape", ["²x100", "1" * 40 + "x100", "100x", "x100"])
def test_a_shape_that_is_not_two_plain_numbers_is_refused(shape, capsys):
    assert_clean_error(cli(["bench", "-m", "EASE", "--scale-shape", shape], capsys), "--scale-shape")


def test_a_million_tuning_seeds_are_refused_before_anything_is_made(tmp_path, data_path, capsys):
    outcome = cli(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--trials", "1",
                   "--results", tmp_path / "R", "--seeds", "1000000000"], capsys)
    assert_clean_error(outcome, "--seeds", "1 to 100")
    assert list(tmp_path.iterdir()) == []


def test_an_overrides_cell_nested_thousands_deep_is_refused_naming_line_and_column(tmp_path):
    spec = RunSpec("synthetic", "Pop", 1, {})
    row = {f: "" for f in FLAT_FIELDS} | {"key": spec.key, "status": "done", "experiment": "x", "model": "Pop",
                                          "dataset": "synthetic", "seed": "1", "overrides": "[" * 5000 + "]" * 5000}
    row.update({f"{s} {c}": "0.1" for s in ("valid", "test") for c in ("Recall@10", "Recall@20", "NDCG@10",
                                                                       "NDCG@20")})
    with open(tmp_path / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FLAT_FIELDS)
        writer.writeheader()
        writer.writerow(row)
    with pytest.raises(UserInputError, match="line 2: 'overrides'"):
        records_from_csv(tmp_path / "runs.csv")


@pytest.mark.parametrize("model, line, key", [
    ("LD4MRec", "soft_prob: {type: float, low: -0.5, high: 0.1}\n", "soft_prob"),
    ("LD4MRec", "steps: {type: categorical, choices: [5, 1]}\n", "steps"),
    ("EASE", "learning_rate: {type: categorical, choices: [0.01, -1.0]}\n", "learning_rate"),
    # the models' own checks (check_settings), not only the engine's keys
    ("EASE", "reg_weight: {type: categorical, choices: [100.0, -1.0]}\n", "reg_weight"),
    ("EASE", "reg_weight: {type: categorical, choices: [2020-01-01]}\n", "reg_weight"),
    ("DiffRec", "noise_max: {type: categorical, choices: [0.01, 2.0]}\n", "noise_max"),
    ("DiffRec", "history_num_per_term: {type: int, low: 0, high: 5}\n", "history_num_per_term"),
    ("SimGCL", "eps: {type: float, low: -0.5, high: 0.1}\n", "eps"),
    ("MMSSL", "head_num: {type: categorical, choices: [4, 3]}\n", "head_num"),
    ("DiffMM", "steps: {type: categorical, choices: [5, 1]}\n", "steps"),
])
def test_a_search_space_value_a_run_would_refuse_is_refused_before_the_study_exists(model, line, key, tmp_path,
                                                                                    data_path, capsys):
    (tmp_path / "space.yaml").write_text(line)
    outcome = cli(["tune", "-m", model, "-d", "synthetic", "--data-path", data_path, "--trials", "1",
                   "--results", tmp_path / "R", "--space", tmp_path / "space.yaml"], capsys)
    assert_clean_error(outcome, "space.yaml", f"key '{key}'", "a run would refuse")
    assert not (tmp_path / "R").exists()  # no study, no storage


@pytest.mark.parametrize("argv", [["--scale-shape", "100000000000x100000"],
                                  ["--scale", "--scale-users", "100000000000", "--scale-items", "1000"]])
def test_a_size_that_cannot_fit_is_refused_before_anything_is_generated(argv, tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outcome = cli(["bench", "-m", "LD4MRec", *argv], capsys)
    assert_clean_error(outcome, "GiB", "more than this machine's")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, flags", [
    (["--scale-users", "100", "--scale-items", "50"], "--scale-users, --scale-items"),
    (["--scale-shape", "200x100", "--scale-factors", "1,2"], "--scale-factors"),
])
def test_scale_sizes_without_the_scale_study_are_refused(argv, flags, capsys):
    assert_clean_error(cli(["bench", "-m", "EASE", *argv], capsys), flags, "only size the --scale study")


def test_a_shape_too_small_for_the_model_settings_names_the_key_not_a_traceback(tmp_path, monkeypatch, capsys):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outcome = cli(["bench", "-m", "LD4MRec", "--scale-shape", "10x10", "--set", "svd_rank=4"], capsys)
    assert_clean_error(outcome, "benchmark of LD4MRec", "config key 'item_graph_k'", "fewer than |I| = 10")
    assert "Error:" not in outcome.err and "mmrec_ld4mrec.errors" not in outcome.err
    assert list(tmp_path.iterdir()) == []
