import json
import logging
import shutil

import pandas as pd
import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.quick_start import grid, run


def test_same_seed_same_metrics(data_path, small_ld4mrec):
    cfg = {"data_path": f"{data_path}/", **small_ld4mrec}
    a, b = run("LD4MRec", "synthetic", cfg), run("LD4MRec", "synthetic", cfg)
    assert a["test"] == b["test"] and a["valid"] == b["valid"]
    c = run("LD4MRec", "synthetic", {**cfg, "seed": [8]})
    assert c["valid"] != a["valid"]


def test_ld4mrec_beats_pop_on_synthetic(data_path, small_ld4mrec):
    cfg = {"data_path": f"{data_path}/", **small_ld4mrec, "epochs": 10, "learning_rate": 0.005}
    ld = run("LD4MRec", "synthetic", cfg)
    pop = run("Pop", "synthetic", {"data_path": f"{data_path}/"})
    assert ld["test"]["Recall@20"] >= 2 * pop["test"]["Recall@20"]


def test_grid_is_the_product_of_hyper_parameters(data_path):
    config = Config("LD4MRecPaper", "synthetic", {"data_path": f"{data_path}/"})
    points = grid(config)
    assert len(points) == 25 and points[0] == {"seed": 999, "soft_prob": 0.005, "smooth": 0.005}


def test_grid_selects_on_validation(data_path, small_ld4mrec):
    cfg = {"data_path": f"{data_path}/", **small_ld4mrec, "epochs": 2, "soft_prob": [0.01, 0.2]}
    result = run("LD4MRecPaper", "synthetic", cfg)
    assert len(result["grid"]) == 2
    best = max(result["grid"], key=lambda g: g["valid"]["Recall@20"])
    assert result["hyper_parameters"] == best["point"]


def test_cli_out_save_load_and_refusal(tmp_path, data_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    out, ckpt = tmp_path / "ld.json", tmp_path / "ckpt"
    args = ["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", str(data_path), "--set", "epochs=2",
            "embedding_size=32", "hidden_size=16", "svd_rank=8", "soft_prob=0.01", "smooth=0.01"]
    assert main(args + ["--out", str(out), "--save", str(ckpt)]) == 0
    printed = capsys.readouterr().out
    assert "epoch   0" in caplog.text and "valid Recall@20" in caplog.text
    assert "Recall@20" in printed.splitlines()[-4] and printed.splitlines()[-2].startswith("test")
    result = json.loads(out.read_text())
    for key in ("model", "dataset", "config", "best_epoch", "valid", "test", "train_seconds_per_epoch",
                "inference_seconds", "peak_rss_mb"):
        assert key in result
    assert result["test"]["Recall@20"] > 0 and result["config"]["soft_prob"] == 0.01

    csvs = list(ckpt.glob("LD4MRec-synthetic-idx0-top50-*.csv"))
    assert len(csvs) == 1
    top = pd.read_csv(csvs[0], sep="\t")
    assert list(top.columns) == ["id"] + [f"top_{i}" for i in range(50)]
    assert (ckpt / "model.pt").is_file()

    before = (ckpt / "model.pt").read_bytes()
    assert main(args + ["--save", str(ckpt)]) == 2  # an existing checkpoint is never overwritten
    assert "already there" in capsys.readouterr().err and (ckpt / "model.pt").read_bytes() == before

    reloaded = tmp_path / "re.json"
    assert main(args + ["--load", str(ckpt), "--out", str(reloaded)]) == 0
    assert json.loads(reloaded.read_text())["test"] == pytest.approx(result["test"])

    other = tmp_path / "other"
    shutil.copytree(data_path / "synthetic", other / "synthetic")
    df = pd.read_csv(other / "synthetic" / "synthetic.inter", sep="\t")
    df.iloc[:-5].to_csv(other / "synthetic" / "synthetic.inter", sep="\t", index=False)
    capsys.readouterr()
    bad = ["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", str(other), "--load", str(ckpt)]
    assert main(bad) == 2
    assert "refusing to load" in capsys.readouterr().err


def test_compare_prints_one_table_and_writes_json(tmp_path, data_path, capsys):
    out = tmp_path / "cmp.json"
    args = ["compare", "-d", "synthetic", "-m", "LD4MRec,Pop", "--data-path", str(data_path), "--set", "epochs=2",
            "embedding_size=32", "hidden_size=16", "svd_rank=8", "soft_prob=0.01", "smooth=0.01", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| model | R@10 | R@20 | N@10 | N@20 | best epoch | s/epoch |" in printed
    assert "| LD4MRec |" in printed and "| Pop |" in printed
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["results"]] == ["LD4MRec", "Pop"] and data["table"] in printed
    assert main(["compare", "-d", "synthetic", "-m", "LD4MRec", "--engine", "mmrec"]) == 2
    assert "--mmrec-root" in capsys.readouterr().err


