"""Experiments, the results registry, tables and figures."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scipy import stats

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import ConfigError, UserInputError
from mmrec_ld4mrec.study import tables
from mmrec_ld4mrec.study.experiment import load_experiment
from mmrec_ld4mrec.study.figures import plotting_available
from mmrec_ld4mrec.study.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
SMALL = "{embedding_size: 64, hidden_size: 16, svd_rank: 16}"


def _experiment(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---- experiment files ---------------------------------------------------------------------------
def test_fig3_reads_t_alone_and_names_the_file_when_the_config_is_refused(tmp_path):
    """A report rebuilt from a registry needs only T for Fig. 3's strategies: a file whose
    settings name an option since removed still gives it; the runs themselves are refused
    (check_runs), and a T that needs the refused config names the file and the model."""
    text = "datasets: [synthetic]\nseeds: [1]\nmodels: {LD4MRec: {steps: 20, ema_decay: 0.99}}\n" \
           "studies: {inference: {steps: [1, T]}}\n"
    exp = load_experiment(_experiment(tmp_path, text))
    assert exp.inference_strategies("synthetic", "LD4MRec") == [0, 1, 20]
    exp = load_experiment(_experiment(tmp_path, text.replace("steps: 20, ", ""), "b.yaml"))
    with pytest.raises(ConfigError, match=r"b.yaml: models.LD4MRec: unknown config key 'ema_decay'.*removed") as caught:
        exp.inference_strategies("synthetic", "LD4MRec")
    assert caught.value.key == "ema_decay"


@pytest.mark.parametrize("text, needle", [
    ("datasets: [synthetic]\nseeds: [1]\n", "'models'"),
    ("datasets: synthetic\nseeds: [1]\nmodels: {EASE: {}}\n", "'datasets'"),
    ("datasets: [synthetic]\nseeds: [1, 1]\nmodels: {EASE: {}}\n", "repeats a seed"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {Nope: {}}\n", "models.Nope"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\nours: LD4MRec\n", "'ours'"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\nstudies: {figure9: {}}\n", "figure9"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\nstudies: {robustness: {ratios: [-1]}}\n", "ratios"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\nstudies: {inference: {steps: [0]}}\n", "steps"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\nbase: {seed: 3}\n", "'seeds'"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\nprepare: {x: {source: zip}}\n", "prepare.x"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}}\ntypo: 1\n", "typo"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {profile: nope.yaml}}\n", "models.EASE.profile"),
    ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {profile: 3}}\n", "models.EASE.profile"),
])
def test_bad_experiment_files_name_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError, match="exp.yaml") as err:
        load_experiment(_experiment(tmp_path, text))
    assert needle in str(err.value)


def test_a_model_entry_takes_a_tuned_profile_under_its_own_keys(tmp_path):
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "EASE.best.yaml").write_text(
        "model: EASE\nsettings: {reg_weight: 77.0, hyper_parameters: []}\n")
    exp = load_experiment(_experiment(tmp_path, "datasets: [synthetic]\nseeds: [1, 2]\n"
                                                "models: {EASE: {profile: tuned/EASE.best.yaml, epochs: 2}}\n"))
    assert exp.models["EASE"] == {"reg_weight": 77.0, "hyper_parameters": [], "epochs": 2}
    assert [r.overrides["reg_weight"] for r in exp.main_runs("synthetic", "EASE")] == [77.0, 77.0]
    (tmp_path / "tuned" / "Pop.best.yaml").write_text("model: Pop\nsettings: {}\n")
    with pytest.raises(ConfigError, match="Pop's profile, not EASE's"):
        load_experiment(_experiment(tmp_path, "datasets: [synthetic]\nseeds: [1]\n"
                                              "models: {EASE: {profile: tuned/Pop.best.yaml}}\n"))


def test_the_report_shows_each_tuned_models_budget(tmp_path):
    from mmrec_ld4mrec.study.registry import Registry
    from mmrec_ld4mrec.study.report import write_report

    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "EASE.best.yaml").write_text(
        "model: EASE\nstudy: EASE-synthetic\ntrial: 3\nvalid_Recall@20: 0.4321\n"
        "budget: {trials: 20, complete: 17, pruned: 3, failed: 1, wall_seconds: 1234.5}\n"
        "settings: {reg_weight: 77.0}\n")
    exp = load_experiment(_experiment(tmp_path, "datasets: [synthetic]\nseeds: [1]\n"
                                                "models: {EASE: {profile: tuned/EASE.best.yaml}, Pop: {}}\n"))
    assert list(exp.profiles) == ["EASE"] and exp.profiles["EASE"]["path"] == "tuned/EASE.best.yaml"
    with Registry(tmp_path / "results") as registry:
        write_report(exp, registry, tmp_path / "report.md")
    text = (tmp_path / "report.md").read_text()
    assert "| EASE | EASE-synthetic | 20 | 17 | 3 | 1 | 1,234 | 3 | Recall@20 0.4321 |" in text
    assert "without a study: Pop" in text
    rows = list(csv.DictReader((tmp_path / "report" / "tuning-budget.csv").open()))
    assert rows[0]["pruned"] == "3" and rows[0]["profile"] == "tuned/EASE.best.yaml"
    # a hand-written profile (no study, no budget) is shown as such, not as a tuned one
    (tmp_path / "tuned" / "EASE.best.yaml").write_text("model: EASE\nsettings: {reg_weight: 7.0}\n")
    exp = load_experiment(tmp_path / "exp.yaml")
    assert tables.budget_markdown(tables.budget_rows(exp.profiles)).splitlines()[2] == \
        "| EASE | — (no study) | — | — | — | — | — | — | — |"
    # a budget that is not tune's (it would skip the unfinished-study check) is refused
    for budget in ("5", "oops", "{trials: '20', complete: 1, pruned: 0}"):
        (tmp_path / "tuned" / "EASE.best.yaml").write_text(f"model: EASE\nbudget: {budget}\nsettings: {{}}\n")
        with pytest.raises(ConfigError, match="'budget' must hold whole numbers"):
            load_experiment(tmp_path / "exp.yaml")
    # so is a profile that would move the run's data
    (tmp_path / "tuned" / "EASE.best.yaml").write_text("model: EASE\nsettings: {data_path: /elsewhere/}\n")
    with pytest.raises(ConfigError, match="settings.data_path"):
        load_experiment(tmp_path / "exp.yaml")
    # a profile tuned on another dataset is refused
    (tmp_path / "tuned" / "EASE.best.yaml").write_text("model: EASE\ndataset: tiktok\nsettings: {}\n")
    with pytest.raises(ConfigError, match="tuned on tiktok"):
        load_experiment(tmp_path / "exp.yaml")
    # a profile a worker exported while other workers' trials still ran is refused
    (tmp_path / "tuned" / "EASE.best.yaml").write_text(
        "model: EASE\nbudget: {trials: 20, complete: 15, pruned: 3, failed: 0}\nsettings: {}\n")
    with pytest.raises(ConfigError, match="unfinished study \\(18 of 20"):
        load_experiment(tmp_path / "exp.yaml")


@pytest.mark.parametrize("dataset", ["tiktok", "ml-1m"])
def test_each_tuned_comparison_runs_the_models_its_script_tunes(dataset):
    """experiments/tune-DATASET.sh studies every model of DATASET-tuned.yaml but Pop, into the
    folder the experiment's profiles are read from, with one early stopping for all."""
    import re

    import yaml

    script = (ROOT / "experiments" / f"tune-{dataset}.sh").read_text()
    studies = re.findall(r"^study (\S+) \"\$\{COMMON\[@\]\}\"( \"\$\{MMREC\[@\]\}\")?"
                         r"(?: --space (configs/search/\S+\.yaml))?$", script, re.M)
    assert len(studies) == len(re.findall(r"^study ", script, re.M))  # every study in the one form
    assert 'study() { [[ -z $MODELS || " $MODELS " == *" $1 "* ]] || return 0; mmrec-ld4mrec tune -m "$@"; }' in script
    standalone = [m for m, mmrec, _ in studies if not mmrec]
    in_mmrec = [m for m, mmrec, _ in studies if mmrec]
    for model, _, space in studies:  # another space of the same model, committed
        assert not space or ((ROOT / space).is_file() and Path(space).stem.split("-")[0] == model), space
    assert 'MMREC=(--engine mmrec --mmrec-root' in script
    models = yaml.safe_load((ROOT / "experiments" / f"{dataset}-tuned.yaml").read_text())["models"]
    assert sorted(standalone + in_mmrec) == sorted(m for m, entry in models.items() if "profile" in entry)
    assert set(models) - set(standalone + in_mmrec) <= {"Pop", "LD4MRec-defaults"}
    assert f"OUT=experiments/results/tune/{dataset}" in script and "stopping_step=20" in script
    for model in standalone + in_mmrec:
        assert models[model]["profile"] == f"results/tune/{dataset}/{model}-{dataset}.best.yaml"
        assert models[model].get("engine", "standalone") == ("mmrec" if model in in_mmrec else "standalone"), model


def test_runs_shared_by_studies_are_one_run(data_path):
    exp = load_experiment(ROOT / "experiments" / "tiny.yaml")
    from dataclasses import replace

    exp = replace(exp, data_path=str(data_path) + "/")
    runs = exp.all_runs()
    assert len({r.key for r in runs}) == len(runs)
    main_ld = exp.main_runs("synthetic", "LD4MRec")
    # Fig. 3 ranks the main runs' trained states with every strategy; the clean robustness
    # point and the full model of the ablation are main runs too
    assert exp.inference_runs("synthetic")["LD4MRec"][0].key == main_ld[0].key
    assert main_ld[0].overrides["inference_study"] == [0, 1, 5]  # forward-free, 1-step, T (its own 5 steps)
    assert exp.robustness_runs("synthetic")[("LD4MRec", 0.0)][0].key == main_ld[0].key
    assert exp.ablation_runs("synthetic")["LD4MRec"][0].key == main_ld[0].key
    assert len(runs) == 4 + 3 + 2 + 4  # main, ablations, noisy runs, p x gamma: no training for Fig. 3


def test_figure_3_and_5_on_several_ld4mrec_models_are_labelled_by_model(tmp_path):
    exp = load_experiment(_experiment(tmp_path, "datasets: [synthetic]\nseeds: [1]\n"
                                                "models: {LD4MRec: {}, LD4MRecPaper: {}, EASE: {}}\n"
                                                "studies: {inference: {steps: [2], models: [LD4MRec, LD4MRecPaper]},\n"
                                                "  ablation: {variants: {w/o PG: {use_pg: false}},\n"
                                                "             models: [LD4MRec, LD4MRecPaper]}}\n"))
    assert set(exp.inference_runs("synthetic")) == {"LD4MRec", "LD4MRecPaper"}
    assert set(exp.ablation_runs("synthetic")) == {"LD4MRec", "LD4MRec w/o PG", "LD4MRecPaper", "LD4MRecPaper w/o PG"}
    assert "inference_study" not in exp.main_runs("synthetic", "EASE")[0].overrides
    with pytest.raises(ConfigError, match="studies.inference.models"):
        load_experiment(_experiment(tmp_path, "datasets: [synthetic]\nseeds: [1]\nmodels: {LD4MRec: {}, EASE: {}}\n"
                                              "studies: {inference: {steps: [2], models: [EASE]}}\n", "bad.yaml"))


def test_inference_groups_split_each_run_by_strategy():
    from mmrec_ld4mrec.study.figures import inference_groups

    record = {"result": {"inference_study": [{"inference_steps": k, "valid": {"Recall@20": k / 10},
                                              "test": {"Recall@20": k / 20}} for k in (0, 2, 5)]}}
    groups = inference_groups({"LD4MRec": [record, record]}, {"LD4MRec": 5})
    assert list(groups) == ["LD4MRec: forward-free", "LD4MRec: 2-step", "LD4MRec: 5-step (T)"]
    assert [g["result"]["test"]["Recall@20"] for g in groups["LD4MRec: 2-step"]] == [0.1, 0.1]


# ---- registry -------------------------------------------------------------------------------------
def _stored(key: str, status: str, **fields) -> dict:
    spec = {"dataset": "d", "model": "M", "seed": 1, "overrides": {}}
    return {"key": key, "status": status, "spec": spec, **fields}


def test_registry_reads_back_what_it_stored_and_names_a_missing_one(tmp_path):
    with Registry(tmp_path) as reg:
        reg.put(_stored("aaa1", "done", result={"valid": {}, "test": {"Recall@20": 0.1}}))
        reg.put(_stored("aaa2", "failed", error="boom"))
        reg.put(_stored("aaa1", "done", result={"valid": {}, "test": {"Recall@20": 0.2}}))  # same run again: replaced
        with pytest.raises(ValueError):
            reg.put(_stored("b", "running"))
        with pytest.raises(ValueError):  # the tables could not read it
            reg.put(_stored("b", "done", result={"valid": {}, "test": {"Recall@20": "high"}}))
    with Registry(tmp_path, readonly=True) as reg:
        assert [r["key"] for r in reg.records()] == ["aaa1", "aaa2"]
        assert reg.done() == {"aaa1": _stored("aaa1", "done", result={"valid": {}, "test": {"Recall@20": 0.2}})}
        assert reg.find("aaa2")["error"] == "boom"
        with pytest.raises(UserInputError, match="2 runs"):
            reg.find("aaa")
    with pytest.raises(UserInputError, match="no results registry"):
        Registry(tmp_path / "elsewhere", readonly=True)


# ---- tables ---------------------------------------------------------------------------------------
def _row(model: str, values: dict[int, float]) -> tables.Row:
    return tables.Row(model, {c: dict(values) for c in tables.COLUMNS})


def test_accuracy_table_marks_best_and_tests_against_the_best_baseline():
    ours = {1: 0.30, 2: 0.32, 3: 0.31}
    strong = {1: 0.28, 2: 0.27, 3: 0.30}
    table = tables.AccuracyTable("d", [_row("LD4MRec", ours), _row("A", strong), _row("B", {1: 0.1, 2: 0.1, 3: 0.1})],
                                 "LD4MRec", ["A", "B"])
    assert table.best_baseline("Recall@20").model == "A"
    pct, name = table.improvement("Recall@20")
    assert name == "A" and pct == pytest.approx(100 * (0.31 - 0.85 / 3) / (0.85 / 3))
    p, n = table.p_value("Recall@20")
    assert n == 3 and p == pytest.approx(stats.ttest_rel([0.30, 0.32, 0.31], [0.28, 0.27, 0.30]).pvalue)
    md = tables.to_markdown(table)
    assert "| LD4MRec | 3 | **0.3100** |" in md and "<u>0.2833</u>" in md and "+9.4% vs A" in md
    tex = tables.to_latex(table)
    assert r"\textbf{0.3100}" in tex and r"\underline{0.2833}" in tex and r"+9.4\%" in tex
    rows = list(csv.reader(tables.to_csv(table).splitlines()))
    assert rows[1][:3] == ["LD4MRec", "3", "0.310000"] and rows[-2][0] == "p_value_t"
    assert rows[-1][:3] == ["t_test", "", "paired"]
    assert "| p (t-test) | |" in md and "(paired, n=3)" in md


def test_runs_on_different_devices_are_compared_by_welch_not_paired():
    ours = {1: 0.30, 2: 0.32, 3: 0.31}
    strong = {1: 0.28, 2: 0.27, 3: 0.30}
    same = {1: "H200", 2: "H200", 3: "H200"}
    mixed = {1: "H200", 2: "CPU (2 cores)", 3: "CPU (2 cores)"}
    paired = tables.AccuracyTable("d", [tables.Row("LD4MRec", {c: ours for c in tables.COLUMNS}, same),
                                        tables.Row("A", {c: strong for c in tables.COLUMNS}, same)], "LD4MRec", ["A"])
    assert paired.t_test("Recall@20") == (pytest.approx(stats.ttest_rel(list(ours.values()), list(strong.values())).pvalue),
                                          3, "paired")
    crossed = tables.AccuracyTable("d", [tables.Row("LD4MRec", {c: ours for c in tables.COLUMNS}, same),
                                         tables.Row("A", {c: strong for c in tables.COLUMNS}, mixed)], "LD4MRec", ["A"])
    welch = stats.ttest_ind(list(ours.values()), list(strong.values()), equal_var=False).pvalue
    assert crossed.t_test("Recall@20") == (pytest.approx(welch), 6, "Welch")
    assert welch != pytest.approx(paired.t_test("Recall@20")[0])
    assert "(Welch, n=6)" in tables.to_markdown(crossed)


def test_p_value_is_missing_not_invented_below_two_seeds():
    table = tables.AccuracyTable("d", [_row("LD4MRec", {1: 0.3}), _row("A", {1: 0.2})], "LD4MRec", ["A"])
    p, n = table.p_value("NDCG@20")
    assert math.isnan(p) and n == 1
    assert "— (paired, n=1)" in tables.to_markdown(table)


# ---- the tiny profile, end to end -----------------------------------------------------------------
@pytest.mark.slow
def test_tiny_profile_builds_every_table_and_figure(tmp_path, data_path, capsys):
    results = tmp_path / "results"
    code = main(["reproduce", str(ROOT / "experiments" / "tiny.yaml"), "--results", str(results), "--jobs", "2",
                 "--data-path", str(data_path)])
    assert code == 0
    report = results / "report"
    table = list(csv.DictReader((report / "table2-synthetic.csv").open()))
    assert [r["model"] for r in table[:2]] == ["LD4MRec", "EASE"]
    assert all(0 < float(r["Recall@20 mean"]) <= 1 for r in table[:2])
    assert (report / "table2-synthetic.tex").read_text().startswith(r"\begin{tabular}")
    assert "| LD4MRec | 2 |" in (report / "table2-synthetic.md").read_text()
    cost = list(csv.DictReader((report / "table5-cost.csv").open()))
    assert {r["model"] for r in cost} == {"LD4MRec", "EASE"} and all(float(r["peak_rss_mb"]) > 0 for r in cost)
    figures = {"fig3-inference-synthetic": 3, "fig4-robustness-synthetic": 4, "fig5-ablation-synthetic": 4,
               "heatmap-pgamma-synthetic": 4}
    for stem, n_rows in figures.items():
        rows = list(csv.DictReader((report / f"{stem}.csv").open()))
        assert len(rows) == n_rows, stem
        assert all(0 < float(r["test Recall@20" if "test Recall@20" in r else "test Recall@20 mean"]) <= 1
                   for r in rows), stem
        png = report / f"{stem}.png"
        if plotting_available():
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (results / "report.md").read_text()
    assert "13 of 13 finished" in text and "## Table 2: synthetic" in text
    # results list / show / export read the same registry
    capsys.readouterr()
    assert main(["results", "list", "--results", str(results)]) == 0
    listing = capsys.readouterr().out
    assert "13 run(s): 13 done, 0 failed" in listing
    key = listing.splitlines()[1].split()[0]
    assert main(["results", "show", key[:8], "--results", str(results)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["key"] == key and shown["result"]["history"] and shown["code"]["package"]
    out = tmp_path / "runs.csv"
    assert main(["results", "export", "--results", str(results), "--out", str(out)]) == 0
    assert len(list(csv.DictReader(out.open()))) == 13
    # a registry rebuilt from that CSV: exported again it is the same file, the sweep finds every run
    # done, and the report gives the same tables and figures but Fig. 3 (the CSV has no inference study)
    rebuilt = tmp_path / "rebuilt"
    assert main(["results", "import", str(out), "--results", str(rebuilt)]) == 0
    assert "imported 13 run(s)" in capsys.readouterr().out
    again = tmp_path / "again.csv"
    assert main(["results", "export", "--results", str(rebuilt), "--out", str(again)]) == 0
    assert again.read_text() == out.read_text()
    assert main(["reproduce", str(ROOT / "experiments" / "tiny.yaml"), "--results", str(rebuilt),
                 "--data-path", str(data_path)]) == 0
    swept = capsys.readouterr().out
    assert "13 runs: 13 already done, 0 finished now, 0 failed" in swept, swept
    for stem in ("table2-synthetic", "table5-cost", "fig4-robustness-synthetic", "fig5-ablation-synthetic",
                 "heatmap-pgamma-synthetic"):
        assert (rebuilt / "report" / f"{stem}.csv").read_text() == (report / f"{stem}.csv").read_text(), stem
    assert not (rebuilt / "report" / "fig3-inference-synthetic.csv").exists()  # no empty figure
    text = (rebuilt / "report.md").read_text()
    assert "Fig. 3: inference strategies of one trained model (synthetic): its runs were imported" in text
    assert "13 of these run(s) were imported" in text


@pytest.mark.slow
def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, data_path, capsys):
    exp = _experiment(tmp_path, f"""
name: failing
datasets: [synthetic]
seeds: [1]
base: {{epochs: 2}}
models:
  LD4MRec: {SMALL}
  EASE: {{reg_weight: 250.0, hyper_parameters: []}}
  LD4MRecPaper: {{embedding_size: 64, hidden_size: 16, svd_rank: 100000, soft_prob: 0.01, smooth: 0.01,
                 hyper_parameters: []}}
""")
    # svd_rank above min(|U|, |I|) passes every check made before the sweep: only the data show it wrong
    results = tmp_path / "r"
    code = main(["reproduce", str(exp), "--results", str(results), "--data-path", str(data_path)])
    assert code == 1
    with Registry(results, readonly=True) as reg:
        records = {r["spec"]["model"]: r for r in reg.records()}
    assert records["LD4MRec"]["status"] == records["EASE"]["status"] == "done"
    assert records["LD4MRecPaper"]["status"] == "failed" and "svd_rank" in records["LD4MRecPaper"]["error"]
    assert "## Failed runs" in (results / "report.md").read_text()


# ---- killed mid-way and resumed --------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_sweep_resumes_without_recomputing(tmp_path, data_path):
    exp = _experiment(tmp_path, f"""
name: killed
datasets: [synthetic]
seeds: [1, 2, 3, 4]
base: {{epochs: 2}}
models:
  LD4MRec: {SMALL}
""")
    results = tmp_path / "r"
    cmd = [sys.executable, "-m", "mmrec_ld4mrec.cli", "reproduce", str(exp), "--results", str(results),
           "--data-path", str(data_path)]
    sweep = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 240
    finished_before: dict[str, dict] = {}
    while time.time() < deadline and len(finished_before) < 2:
        time.sleep(0.3)
        if (results / "registry.lmdb" / "data.mdb").exists():
            with Registry(results, readonly=True) as reg:
                finished_before = reg.done()
    os.killpg(sweep.pid, signal.SIGKILL)  # the sweep and the run it had started, mid-way
    sweep.wait()
    assert 2 <= len(finished_before) < 4, "the sweep should have been killed part-way"
    with Registry(results, readonly=True) as reg:
        finished_before = reg.done()
    logs_before = {k: (results / r["log"]).stat().st_mtime_ns for k, r in finished_before.items()}

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(finished_before)} already in" in resumed.stderr
    with Registry(results, readonly=True) as reg:
        records = list(reg.records())
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == 4 and all(r["status"] == "done" for r in records)
    for key, before in finished_before.items():  # untouched: same record, same log, not rerun
        after = next(r for r in records if r["key"] == key)
        assert after == before
        assert (results / before["log"]).stat().st_mtime_ns == logs_before[key]
    assert sorted(r["spec"]["seed"] for r in records) == [1, 2, 3, 4]


# ---- the robustness study's noise, and the sweep's options ---------------------------------------
def test_false_positives_are_new_training_pairs_drawn_by_seed(data_path):
    from mmrec_ld4mrec.engine.config import Config
    from mmrec_ld4mrec.engine.dataset import RecDataset, inject_false_positives

    config = Config("Pop", "synthetic", {"data_path": str(data_path) + "/"})
    train, valid, _ = RecDataset(config).split()
    noisy = inject_false_positives(train, 0.2, seed=3)
    uid, iid = train.uid_field, train.iid_field
    old = set(zip(train.df[uid], train.df[iid]))
    new = set(zip(noisy.df[uid], noisy.df[iid])) - old
    assert len(noisy) == len(train) + round(0.2 * len(train)) == len(old) + len(new)
    assert set(noisy.df[uid]) <= set(train.df[uid]) and noisy.df[iid].max() < train.item_num
    again = inject_false_positives(train, 0.2, seed=3)
    assert again.df.equals(noisy.df)
    assert not inject_false_positives(train, 0.2, seed=4).df.equals(noisy.df)
    assert inject_false_positives(train, 0.0, seed=3) is train
    assert len(valid) == len(RecDataset(config).split()[1])


def test_a_bad_noise_ratio_names_the_key(data_path):
    from mmrec_ld4mrec.engine.quick_start import run

    with pytest.raises(ConfigError, match="train_noise_ratio"):
        run("Pop", "synthetic", {"data_path": str(data_path) + "/", "train_noise_ratio": -0.1})


def test_robustness_refuses_models_run_in_mmrec(tmp_path):
    text = ("datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}, MGCN: {engine: mmrec}}\n"
            "studies: {robustness: {ratios: [0.1]}}\n")
    with pytest.raises(ConfigError, match="'MGCN' runs in MMRec"):
        load_experiment(_experiment(tmp_path, text))
    ok = load_experiment(_experiment(tmp_path, text.replace("ratios: [0.1]", "ratios: [0.1], models: [EASE]")))
    assert ok.mmrec_models() == ["MGCN"] and ok.baselines() == ["MGCN"]


def test_mmrec_models_need_a_checkout_before_anything_runs(tmp_path, data_path, capsys, monkeypatch):
    exp = _experiment(tmp_path, "datasets: [synthetic]\nseeds: [1]\nmodels: {EASE: {}, MGCN: {engine: mmrec}}\n")
    monkeypatch.delenv("MMREC_ROOT", raising=False)
    assert main(["reproduce", str(exp), "--results", str(tmp_path / "r"), "--data-path", str(data_path)]) == 2
    assert "models MGCN use engine: mmrec; pass --mmrec-root" in capsys.readouterr().err
    with Registry(tmp_path / "r") as reg:
        assert list(reg.records()) == []
    assert main(["reproduce", str(exp), "--results", str(tmp_path / "r"), "--data-path", str(data_path),
                 "--mmrec-root", str(tmp_path)]) == 2
    assert "not an MMRec checkout" in capsys.readouterr().err


def test_models_option_runs_a_subset_and_the_report_marks_the_rest_missing(tmp_path, data_path, capsys):
    exp = _experiment(tmp_path, "name: sub\ndatasets: [synthetic]\nseeds: [1]\n"
                                "models: {EASE: {reg_weight: 250.0, hyper_parameters: []}, Pop: {}}\nours: EASE\n")
    results = tmp_path / "r"
    assert main(["reproduce", str(exp), "--results", str(results), "--data-path", str(data_path),
                 "--models", "Pop"]) == 0
    with Registry(results, readonly=True) as reg:
        assert [r["spec"]["model"] for r in reg.records()] == ["Pop"]
    report = (results / "report.md").read_text()
    assert "1 of 2 finished" in report and "| EASE | 0 | — |" in report
    assert main(["reproduce", str(exp), "--results", str(results), "--models", "Nope"]) == 2
    assert "--models: Nope not under 'models'" in capsys.readouterr().err


def test_cost_table_keeps_devices_apart():
    def record(device, seconds):
        return {"environment": {"accelerator": device, "cpus": 2}, "jobs": 1,
                "result": {"train_seconds_per_epoch": seconds, "inference_seconds": 1.0, "peak_rss_mb": 10.0}}

    rows = tables.cost_rows({("d", "M"): [record(None, 4.0), record("H200", 1.0), record(None, 6.0)]})
    assert [(r["device"], r["runs"], r["train_seconds_per_epoch"]) for r in rows] == [
        ("CPU (2 cores)", 2, 5.0), ("H200", 1, 1.0)]
    assert "—" in tables.cost_markdown(rows)  # no GPU peak recorded


def test_written_files_get_the_usual_permissions(tmp_path):
    from mmrec_ld4mrec.files import atomic_write

    umask = os.umask(0o022)
    try:
        atomic_write(tmp_path / "out.md", lambda tmp: Path(tmp).write_text("x"))
    finally:
        os.umask(umask)
    assert (tmp_path / "out.md").stat().st_mode & 0o777 == 0o644


def test_a_run_whose_config_changed_since_is_refused_then_rerun_on_request(tmp_path, data_path, capsys):
    """A registry key hashes the experiment's overrides, not the YAML defaults beneath them: a
    finished run that ran with other settings than the config files give now is not reused
    silently. (The stored setting is altered here, as if overall.yaml had said 10 back then.)"""
    exp = _experiment(tmp_path, "name: drift\ndatasets: [synthetic]\nseeds: [1]\n"
                                "models: {EASE: {reg_weight: 250.0, hyper_parameters: []}}\nours: EASE\n")
    results = tmp_path / "r"
    args = ["reproduce", str(exp), "--results", str(results), "--data-path", str(data_path)]
    assert main(args) == 0
    with Registry(results) as reg:
        (record,) = reg.records()
        now = record["result"]["config"]["stopping_step"]
        record["result"]["config"]["stopping_step"] = 10
        reg.put(record)
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 finished run(s)" in err and f"EASE@synthetic seed 1 (key {record['key']}): stopping_step 10 → {now!r}" in err
    assert "--rerun-changed" in err
    assert main([*args, "--report-only"]) == 0
    assert "**1 run(s) below ran with settings that today's config files no longer give**" in (results / "report.md").read_text()
    assert main([*args, "--rerun-changed"]) == 0
    with Registry(results, readonly=True) as reg:
        (rerun,) = reg.records()
    assert rerun["result"]["config"]["stopping_step"] == now and rerun["finished_at"] != record["finished_at"]
    assert "no longer give" not in (results / "report.md").read_text()
    assert main(args) == 0  # nothing changed now: reused


def test_grid_points_and_where_a_run_happened_are_not_changes():
    from mmrec_ld4mrec.study.drift import changed_settings

    now = {"hyper_parameters": ["seed", "learning_rate"], "learning_rate": [0.1, 0.01], "device": "cuda:0",
           "data_path": "/b/", "steps": 5, "new_key": 1, "eval_batch_size": 512}
    recorded = {"learning_rate": 0.01, "device": "cpu", "data_path": "/a/", "steps": 10, "eval_batch_size": 4096}
    assert changed_settings(recorded, now, "EASE") == {"steps": (10, 5)}
    assert changed_settings({**recorded, "learning_rate": 0.5}, now, "EASE")["learning_rate"] == (0.5, [0.1, 0.01])


def test_ld4mrec_settings_are_compared_as_the_model_reads_them():
    """A record that predates a switch ran without it: it counts as the code's default (off),
    so turning the switch on in the YAML is a change; on a dataset without item features the
    content graph is off either way, and its weight does not count while it is off."""
    from mmrec_ld4mrec.study.drift import changed_settings

    before = {"learning_rate": 0.001, "vision_feature_file": "image_feat.npy"}  # no item_graph_* keys yet
    today = {**before, "item_graph_k": 10, "item_graph_weight": 1.0}
    changed = changed_settings(before, today, "LD4MRec")
    assert changed == {"item_graph_k": (0, 10), "item_graph_weight": (0.5, 1.0)}
    no_features = {"vision_feature_file": "", "text_feature_file": ""}
    assert changed_settings({**before, **no_features}, {**today, **no_features}, "LD4MRec") == {}
    assert changed_settings({**before, "item_graph_k": 0, "item_graph_weight": 0.3}, before, "LD4MRec") == {}  # k = 0: off
    assert changed_settings(before, today, "EASE") == {}  # other models: the keys both hold
