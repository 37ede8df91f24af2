"""The staged exploration runner: validation-only selection, carrying, resume, failures."""

from __future__ import annotations

import json

import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.study.explore import Plan, Stage, explore, load_plan, read_records

PLAN = Plan("M", "d", "Recall@20", {"epochs": 1}, (
    Stage("a", {"low": {"x": 1}, "high": {"x": 2}}),
    Stage("b", {"same": {}, "y": {"y": 5}, "boom": {"y": -1}}),
))


def fake_run(calls):
    """Valid metric rises with x and y; test metric falls (so picking on test would differ)."""
    def run(model, dataset, config):
        calls.append(dict(config))
        if config.get("y") == -1:
            raise ValueError("bad y")
        score = config.get("x", 0) + config.get("y", 0)
        return {"valid": {"Recall@20": score / 10}, "test": {"Recall@20": 1 - score / 10}, "best_epoch": 1,
                "epochs_run": 2, "train_seconds_per_epoch": 0.1}
    return run


def test_stages_pick_on_validation_and_carry(tmp_path):
    calls = []
    out = explore(PLAN, tmp_path / "r.jsonl", run_fn=fake_run(calls), log=lambda _: None)
    assert [s["winner"] for s in out["stages"]] == ["high", "y"]
    assert [r["variant"] for r in out["stages"][1]["runs"]] == ["same", "y", "boom"]
    assert out["carried"] == {"x": 2, "y": 5}
    # stage b starts from stage a's winner; "same" repeats it and is not recomputed
    assert calls[2:] == [{"epochs": 1, "x": 2, "y": 5}, {"epochs": 1, "x": 2, "y": -1}]
    failed = [r for r in read_records(tmp_path / "r.jsonl").values() if r["status"] == "failed"]
    assert len(failed) == 1 and "bad y" in failed[0]["error"]


def test_resume_recomputes_nothing_and_ignores_a_torn_line(tmp_path):
    results = tmp_path / "r.jsonl"
    explore(PLAN, results, run_fn=fake_run([]), log=lambda _: None)
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # killed while writing the third run
    calls = []
    out = explore(PLAN, results, run_fn=fake_run(calls), log=lambda _: None)
    assert len(calls) == 2 and out["carried"] == {"x": 2, "y": 5}
    keys = [json.loads(line)["key"] for line in results.read_text().splitlines()[3:]]
    assert len(keys) == len(set(keys)) == 2


def test_every_variant_failing_is_a_clear_error(tmp_path):
    plan = Plan("M", "d", "Recall@20", {}, (Stage("only", {"boom": {"y": -1}}),))
    with pytest.raises(ConfigError, match="stage 'only': every variant failed"):
        explore(plan, tmp_path / "r.jsonl", run_fn=fake_run([]), log=lambda _: None)


@pytest.mark.parametrize("text, needle", [
    ("- 1", "expected a mapping of keys"),
    ("model: M\ndataset: d\nstages: []", "'stages' must be a non-empty list"),
    ("model: M\ndataset: d\nstages: [{name: a, variants: {v: 3}}]", "stages[0].variants.v"),
    ("model: M\ndataset: d\nstages: [{name: a, variants: {v: {}}}, {name: a, variants: {w: {}}}]", "used twice"),
    ("model: M\nstages: [{name: a, variants: {v: {}}}]", "key 'dataset'"),
])
def test_bad_plans_name_the_key(tmp_path, text, needle):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_plan(path)


def test_cli_explores_ld4mrec_on_synthetic(tmp_path, data_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text("model: LD4MRec\ndataset: synthetic\n"
                    "base: {embedding_size: 32, hidden_size: 16, svd_rank: 8, epochs: 2, soft_prob: 0.01, smooth: 0.01}\n"
                    "stages:\n  - name: likelihood\n    variants: {mse: {}, multinomial: {loss: multinomial}}\n")
    args = ["explore", str(plan), "--data-path", str(data_path), "--results", str(tmp_path / "r.jsonl"),
            "--report", str(tmp_path / "r.md")]
    assert main(args) == 0
    report = (tmp_path / "r.md").read_text()
    assert "| mse" in report and "| multinomial" in report and "kept:" in report
    assert len(read_records(tmp_path / "r.jsonl")) == 2
    assert main(["explore", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_summarize_means_over_seeds_and_names_bad_files(tmp_path, capsys):
    from mmrec_ld4mrec.study.summarize import summary_rows

    def result(seed, r20):
        return {"model": "M", "dataset": "d", "config": {"seed": [seed]}, "train_seconds_per_epoch": 1.0,
                "valid": {"Recall@20": r20}, "test": {"Recall@20": r20 / 2, "NDCG@20": 0.1}}
    files = []
    for seed, r20 in ((1, 0.2), (2, 0.4)):
        files.append(tmp_path / f"m{seed}.json")
        files[-1].write_text(json.dumps(result(seed, r20)))
    row = summary_rows([json.loads(f.read_text()) for f in files])[0]
    assert row["n"] == 2 and row["seeds"] == [1, 2]
    assert row["test Recall@20"][0] == pytest.approx(0.15) and row["test Recall@20"][1] == pytest.approx(0.0707, abs=1e-4)
    assert main(["summarize", *map(str, files)]) == 0
    assert "0.1500 ± 0.0707" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"model": "M"}')
    assert main(["summarize", str(tmp_path / "bad.json")]) == 2
    assert "bad.json: missing key 'dataset'" in capsys.readouterr().err


def test_committed_exploration_is_complete_and_its_winner_is_the_tuned_yaml(data_path):
    """experiments/results/explore-tiktok.jsonl answers every run of the committed plan, and
    the configuration it carries to the end is what configs/model/LD4MRec.yaml sets."""
    from pathlib import Path

    from mmrec_ld4mrec.engine.config import Config

    root = Path(__file__).resolve().parents[1]
    plan = load_plan(root / "experiments" / "explore-tiktok.yaml")

    def must_not_run(*_):
        raise AssertionError("the committed results should cover every run of the plan")
    out = explore(plan, root / "experiments" / "results" / "explore-tiktok.jsonl", run_fn=must_not_run,
                  log=lambda _: None)
    tuned = Config("LD4MRec", "synthetic", {"data_path": f"{data_path}/"})
    paper = Config("LD4MRecPaper", "synthetic", {"data_path": f"{data_path}/"})
    assert out["carried"] and all(tuned[k] == v for k, v in out["carried"].items())
    differing = {k for k in paper.to_dict() if k in tuned and tuned[k] != paper[k]} - {"model"}
    assert differing == set(out["carried"]) | {"soft_prob", "smooth", "hyper_parameters"}


def _pooled_run(model, dataset, config):
    """Module-level, so worker processes can import it."""
    return {"valid": {"Recall@20": config["x"] / 10}, "test": {"Recall@20": 0.0}, "best_epoch": 0,
            "epochs_run": 1, "train_seconds_per_epoch": 0.0}


def test_parallel_jobs_give_the_same_choice_and_records(tmp_path):
    plan = Plan("M", "d", "Recall@20", {}, (Stage("a", {"one": {"x": 1}, "three": {"x": 3}, "two": {"x": 2}}),))
    out = explore(plan, tmp_path / "r.jsonl", jobs=2, run_fn=_pooled_run, log=lambda _: None)
    assert out["carried"] == {"x": 3}
    assert sorted(r["variant"] for r in read_records(tmp_path / "r.jsonl").values()) == ["one", "three", "two"]
