"""``bench``: medians per model over the rounds, their ratios to the first model's and to the
bound of the dense products, and a bad model setting refused."""

import json

import pytest

from mmrec_ld4mrec.cli import main


def test_bench_reports_ratios_to_the_first_model(tmp_path, data_path, capsys):
    out = tmp_path / "bench.json"
    args = ["bench", "-d", "synthetic", "--data-path", str(data_path), "-m", "LD4MRec,LD4MRec:residual=false,Pop",
            "--epochs", "1", "--repeats", "1", "--set", "embedding_size=32", "hidden_size=16", "svd_rank=8",
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| LD4MRec:residual=false |" in printed and "inference vs LD4MRec" in printed
    report = json.loads(out.read_text())
    med, ratio = report["medians"], report["ratio_to_first"]
    assert set(med) == {"LD4MRec", "LD4MRec:residual=false", "Pop"}
    assert sorted(r["model"] for r in report["runs"]) == sorted(med)  # one measurement per model and round
    for model in med:
        for key in ("train_seconds_per_epoch", "inference_seconds", "peak_rss_mb"):
            assert ratio[model][key] == pytest.approx(med[model][key] / med["LD4MRec"][key]), (model, key)
            assert med[model][key] == next(r[key] for r in report["runs"] if r["model"] == model)
    assert med["LD4MRec"]["train_seconds_per_epoch"] > 0 and med["Pop"]["train_seconds_per_epoch"] == 0
    assert ratio["Pop"]["train_seconds_per_epoch"] == 0
    bound = report["ratio_to_bound"]
    assert med["LD4MRec"]["train_bound_seconds"] > 0 and med["LD4MRec"]["inference_bound_seconds"] > 0
    assert bound["LD4MRec"]["train"] == pytest.approx(med["LD4MRec"]["train_seconds_per_epoch"]
                                                       / med["LD4MRec"]["train_bound_seconds"])
    assert med["Pop"]["train_bound_seconds"] is None and bound["Pop"]["train"] is None  # no dense products
    assert f"| {ratio['LD4MRec:residual=false']['inference_seconds']:.3f}x |" in printed
    assert main(["bench", "-d", "synthetic", "--data-path", str(data_path), "-m", "LD4MRec:oops"]) == 2


def test_bench_leaves_no_temporary_folder_after_a_bad_src(tmp_path, monkeypatch, capsys):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert main(["bench", "-d", "tiktok", "-m", "Pop", "--src", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert list(scratch.iterdir()) == []


def test_bench_stopped_with_sigterm_during_a_scale_study_removes_its_generated_data(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "mmrec_ld4mrec.cli", "bench", "--scale", "-m", "EASE",
                             "--scale-factors", "1,2,4,8", "--epochs", "1"],
                            env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(p.name.startswith("ld4mrec-scale-") for p in scratch.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert not any(p.name.startswith("ld4mrec-") for p in scratch.iterdir()), list(scratch.iterdir())


def test_a_shape_measurement_of_a_model_without_a_matmul_bound_is_reported(tmp_path, capsys):
    """EASE trains no epochs and has no matmul bound: the measurement is printed and written."""
    out = tmp_path / "shape.json"
    assert main(["bench", "-m", "EASE", "--scale-shape", "200x100", "--epochs", "1", "--out", str(out)]) == 0
    assert "EASE at 200 users x 100 items" in capsys.readouterr().out
    assert json.loads(out.read_text())["runs"][0]["model"] == "EASE"
