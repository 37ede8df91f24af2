"""The generated results pages: a report built from a committed runs file (`reproduce
--report-only --runs`), rows whose study is pending, rows of another model class with a note,
the protocol read from the studies' journal, and the committed pages themselves."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.errors import UserInputError
from mmrec_ld4mrec.study.experiment import RunSpec, load_experiment
from mmrec_ld4mrec.study.results_view import records_from_jsonl

ROOT = Path(__file__).resolve().parents[2]
METRICS = {"Recall@10": 0.1, "Recall@20": 0.2, "NDCG@10": 0.05, "NDCG@20": 0.07}
PROTOCOL = {"engine": "standalone", "seeds": [1001], "sampler_seed": 0,
            "pruner": {"kind": "median", "startup_trials": 5, "warmup_epochs": 20},
            "settings": {"epochs": 1000, "stopping_step": 20}}


def _journal(path: Path, studies: dict[str, int]) -> None:
    """A journal holding each study with that many finished trials (and one failed)."""
    storage = JournalStorage(JournalFileBackend(str(path)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, finished in studies.items():
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        study.set_user_attr("protocol", PROTOCOL)
        for i in range(finished):
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.1 * i))
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, state=optuna.trial.TrialState.FAIL))


def _record(model: str, seed: int, overrides: dict, recall20: float) -> dict:
    spec = RunSpec("synthetic", model, seed, overrides)
    return {"key": spec.key, "status": "done", "experiment": "exp",
            "spec": {"dataset": "synthetic", "model": model, "seed": seed, "overrides": overrides},
            "environment": {"accelerator": None, "cpus": 2}, "code": {"commit": "abc", "dirty": False}, "jobs": 1,
            "result": {"valid": dict(METRICS), "test": {**METRICS, "Recall@20": recall20}, "best_epoch": 0,
                       "epochs_run": 1, "train_seconds_per_epoch": 0.5, "inference_seconds": 0.1}}


@pytest.fixture
def bench(tmp_path):
    """An experiment with a finished study (EASE), one in progress (SimGCL: 3 of 4 trials, no
    profile) and one not started (DiffRec), a second row of EASE with a note, and its runs."""
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    _journal(tuned / "studies.journal", {"EASE-synthetic": 4, "SimGCL-synthetic": 3})
    (tuned / "EASE-synthetic.best.yaml").write_text(
        "model: EASE\nstudy: EASE-synthetic\ntrial: 3\nvalid_Recall@20: 0.3\n"
        "budget: {trials: 4, complete: 4, pruned: 0, failed: 1, wall_seconds: 12.0}\nsettings: {reg_weight: 77.0}\n")
    exp = tmp_path / "exp.yaml"
    exp.write_text("name: bench\ntitle: 'Benchmark: synthetic'\nabout: A small split.\ndatasets: [synthetic]\n"
                   "seeds: [1, 2]\ntuning: {journal: tuned/studies.journal, trials: 4}\nours: EASE\n"
                   "ours_variants: [EASE-shipped]\n"
                   "models:\n  EASE: {profile: tuned/EASE-synthetic.best.yaml}\n"
                   "  EASE-shipped: {model: EASE, reg_weight: 250.0, note: 'as shipped, outside the comparison'}\n"
                   "  Pop: {note: nothing to tune}\n"
                   "  SimGCL: {profile: tuned/SimGCL-synthetic.best.yaml}\n"
                   "  DiffRec: {profile: tuned/DiffRec-synthetic.best.yaml}\n")
    records = [_record("EASE", s, {"reg_weight": 77.0}, 0.2 + s / 100) for s in (1, 2)]
    records += [_record("EASE", s, {"reg_weight": 250.0}, 0.25) for s in (1, 2)]
    records += [_record("Pop", s, {}, 0.1) for s in (1, 2)]
    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return exp, runs


def test_pending_studies_keep_their_row_and_have_no_runs(bench):
    exp = load_experiment(bench[0])
    assert exp.pending == {"SimGCL": "3 of 4 trials", "DiffRec": "0 of 4 trials"}
    assert exp.main_runs("synthetic", "SimGCL") == [] and exp.profiles.keys() == {"EASE"}
    assert {s.model for s in exp.all_runs()} == {"EASE", "Pop"}
    shipped = exp.main_runs("synthetic", "EASE-shipped")[0]  # a row of another class: the class's run key
    assert shipped == RunSpec("synthetic", "EASE", 1, {"reg_weight": 250.0})
    assert exp.notes == {"EASE-shipped": "as shipped, outside the comparison", "Pop": "nothing to tune"}
    # the study finishes: its profile is read and its runs appear
    (bench[0].parent / "tuned" / "SimGCL-synthetic.best.yaml").write_text(
        "model: SimGCL\nbudget: {trials: 4, complete: 3, pruned: 1, failed: 0}\nsettings: {cl_rate: 0.1}\n")
    exp = load_experiment(bench[0])
    assert "SimGCL" not in exp.pending and exp.main_runs("synthetic", "SimGCL")[0].overrides == {"cl_rate": 0.1}


def test_a_page_built_from_a_runs_file_says_what_is_pending_and_why(bench, tmp_path, capsys):
    exp, runs = bench
    page = tmp_path / "site" / "bench.md"
    argv = ["reproduce", str(exp), "--report-only", "--std", "--runs", str(runs), "--report", str(page)]
    assert main(argv) == 0
    text = page.read_text()
    assert text.startswith("# Benchmark: synthetic\n") and "A small split." in text
    assert f"from the runs file `{runs}`" in text and "registry" not in text.split("\n")[2]
    assert "| SimGCL | study pending: 3 of 4 trials | — | — | — | — |" in text
    assert "| DiffRec | study pending: 0 of 4 trials |" in text
    assert "| EASE | 2 | " in text and "0.2150 ± 0.0071" in text  # seeds 1-2: 0.21 and 0.22
    assert "| EASE-shipped | 2 |" in text and "- **EASE-shipped**: as shipped, outside the comparison" in text
    assert "Studies pending: SimGCL (3 of 4 trials), DiffRec (0 of 4 trials)." in text
    assert "runs to 4 finished trials" in text and "median pruner after 5 trials and 20 warm-up epochs" in text
    assert "tuning seed(s) 1001" in text
    # the same page from a registry holding the same runs, but for the line naming the source
    results = tmp_path / "results"
    assert main(["results", "import", str(runs), "--results", str(results)]) == 0
    other = tmp_path / "other" / "bench.md"
    assert main(["reproduce", str(exp), "--report-only", "--std", "--results", str(results), "--report", str(other)]) == 0
    assert _body(other.read_text()) == _body(text)


def _body(text: str) -> list[str]:
    """A page less its build line (time, source, command)."""
    return [line for line in text.splitlines() if not line.startswith("Built ")]


def test_a_runs_file_is_read_whole_or_refused_naming_the_line(bench, tmp_path, capsys):
    exp, runs = bench
    lines = runs.read_text().splitlines()
    record = json.loads(lines[1])
    record["result"]["test"]["Recall@20"] = "high"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n")
    with pytest.raises(UserInputError, match=r"bad.jsonl line 2: .*'result.test.Recall@20' must be a number"):
        records_from_jsonl(bad)
    record = json.loads(lines[0])
    record["result"]["test"]["Recall@20"] = 5.0
    bad.write_text(json.dumps(record) + "\n")
    with pytest.raises(UserInputError, match=r"line 1: .*'result.test.Recall@20' must be a metric in \[0, 1\]"):
        records_from_jsonl(bad)
    record = json.loads(lines[0])
    record["spec"]["seed"] = 9  # an edited spec no longer has its key
    bad.write_text(json.dumps(record) + "\n")
    with pytest.raises(UserInputError, match="line 1: 'key' .* is not the key of its spec"):
        records_from_jsonl(bad)
    bad.write_text('{"key": ' + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(UserInputError, match="line 1: not a JSON record"):
        records_from_jsonl(bad)
    bad.write_text(lines[0] + "\n" + lines[0] + "\n")
    with pytest.raises(UserInputError, match="line 2: the run of line 1 again"):
        records_from_jsonl(bad)
    page = tmp_path / "p.md"
    for extra, needle in ((["--results", str(tmp_path / "r")], "--report-only"), ([], "--report-only")):
        argv = ["reproduce", str(exp), "--runs", str(runs), "--report", str(page), *extra]
        assert main(argv) == 2 and needle in capsys.readouterr().err
    assert main(["reproduce", str(exp), "--report-only", "--runs", str(runs)]) == 2
    assert "--report" in capsys.readouterr().err
    assert not page.exists()


def test_a_rebuild_removes_what_the_last_one_wrote_and_this_one_does_not(bench, tmp_path):
    exp, runs = bench
    page = tmp_path / "bench.md"
    argv = ["reproduce", str(exp), "--report-only", "--runs", str(runs), "--report", str(page)]
    assert main(argv) == 0
    (tmp_path / "bench" / "fig3-inference-synthetic.csv").write_text("an earlier build's figure\n")
    (tmp_path / "bench" / "notes.txt").write_text("the user's\n")
    assert main(argv) == 0
    assert not (tmp_path / "bench" / "fig3-inference-synthetic.csv").exists()
    assert (tmp_path / "bench" / "notes.txt").is_file() and (tmp_path / "bench" / "table2-synthetic.csv").is_file()


# ---- the committed pages ------------------------------------------------------------------------
PAGES = ["tiktok", "ml-1m"]


@pytest.mark.parametrize("dataset", PAGES)
def test_each_committed_page_is_what_its_command_builds_from_its_runs_file(dataset, tmp_path, monkeypatch, capsys):
    """The command printed at the top of docs/results/DATASET.md, run from the project root
    into a scratch copy, writes the committed page and tables again (the build time aside).
    The committed pages are built without the plots extra: their figures are tables (PNG
    bytes differ between matplotlib versions)."""
    page = ROOT / "docs" / "results" / f"{dataset}.md"
    text = page.read_text(encoding="utf-8")
    command = re.search(r"Command: `mmrec-ld4mrec (.+?)`\.", text).group(1)
    argv = shlex.split(command)
    assert argv[:2] == ["reproduce", f"experiments/{dataset}-tuned.yaml"] and "--report-only" in argv
    assert argv[argv.index("--runs") + 1] == f"docs/results/{dataset}-runs.jsonl"
    assert argv[argv.index("--report") + 1] == f"docs/results/{dataset}.md"
    argv[argv.index("--report") + 1] = str(tmp_path / f"{dataset}.md")
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("sys.argv", ["mmrec-ld4mrec", *shlex.split(command)])  # the command the page prints
    monkeypatch.setattr("mmrec_ld4mrec.study.figures._pyplot", lambda: None)  # built without the plots extra
    assert main(argv) == 0
    assert _body((tmp_path / f"{dataset}.md").read_text(encoding="utf-8")) == _body(text)
    committed = sorted(p.name for p in (ROOT / "docs" / "results" / dataset).iterdir())
    assert sorted(p.name for p in (tmp_path / dataset).iterdir()) == committed
    for name in committed:
        assert (tmp_path / dataset / name).read_bytes() == (ROOT / "docs" / "results" / dataset / name).read_bytes(), name


def _table(text: str, heading: str) -> dict[str, list[str]]:
    """model -> cells of the first Markdown table after ``heading``."""
    rows, inside = {}, False
    for line in text[text.index(heading):].splitlines()[1:]:
        if line.startswith("|"):
            inside = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("*")] = cells[1:]
        elif inside:
            break
    return rows


def test_the_readme_headline_is_the_tiktok_pages_table_2():
    """Every row of the README's headline table has the page's Recall@20 and NDCG@20 (mean ± std)
    or its pending status, and every row of the page's Table 2 is in the README."""
    page = _table((ROOT / "docs" / "results" / "tiktok.md").read_text(encoding="utf-8"), "## Table 2: tiktok")
    readme = _table((ROOT / "README.md").read_text(encoding="utf-8"), "## Headline result")
    header = readme.pop("model")
    assert header == ["R@20", "N@20"]
    readme.pop(next(k for k in readme if set(k) <= {"-"}))  # the rule under the header
    models = [m for m in page if m not in ("Model", "") and not set(m) <= {"-"} and not m.startswith(("Improv", "p ("))]

    def plain(cell: str) -> str:
        return re.sub(r"</?u>|\*\*", "", cell)

    assert sorted(re.sub(r" \(.*\)$", "", m) for m in readme) == sorted(models)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    prose = text[text.index("## Headline result"):text.index("## Layout")].split("| DiffMM |")[-1]
    page_text = (ROOT / "docs" / "results" / "tiktok.md").read_text(encoding="utf-8")
    for pct in re.findall(r"(\d+\.\d) %", prose):  # the gaps the prose quotes are the page's improvement row
        assert f"-{pct}% vs" in page_text, pct
    for p in re.findall(r"p = (\d\.\de-\d+)", prose):  # and its p-values
        assert re.sub(r"e-(\d)$", r"e-0\1", p) in page_text, p
    for label, cells in readme.items():
        model = re.sub(r" \(.*\)$", "", label)
        seeds, r10, r20, n10, n20 = page[model]
        want = [seeds, "—"] if seeds.startswith(("study pending", "not run")) else [plain(r20), plain(n20)]
        assert [plain(c) for c in cells] == want, model


def test_findings_quotes_the_pages_own_test_figures():
    """findings.md's test figures (where LD4MRec stands) are the TikTok page's, row for row."""
    page = _table((ROOT / "docs" / "results" / "tiktok.md").read_text(encoding="utf-8"), "## Table 2: tiktok")
    text = (ROOT / "docs" / "findings.md").read_text(encoding="utf-8")
    for row, r20 in re.findall(r'"(LD4MRec[\w-]*)": Recall@20\s+(0\.\d{4} ± 0\.\d{4})', text.replace("\n", " ")):
        assert re.sub(r"</?u>|\*\*", "", page[row][2]) == r20, row
    assert re.search(r'"LD4MRec-defaults": Recall@20', text.replace("\n", " "))


def _with_segments(record: dict, coverage: float, recall_tail: float) -> dict:
    record = json.loads(json.dumps(record))
    record["result"]["test"].update({"ItemCoverage@20": coverage, "GiniIndex@20": 0.5, "AveragePopularity@20": 12.0,
                                     "TailPercentage@20": 0.25})
    row = {"users": 10, "test items": 12, "Recall@20": recall_tail, "NDCG@20": 0.1}
    record["result"]["segments"] = {"user activity": {"1-3": dict(row), "4+": {**row, "users": 5, "test items": 9}},
                                    "test item popularity": {"head 20%": dict(row), "tail 80%": dict(row)}}
    return record


def test_the_beyond_accuracy_and_segment_tables_count_the_seeds_that_measured_them(bench, tmp_path):
    """Seeds 1 and 2 of EASE measured (mean ± std), seed 1 of Pop only (its value, labelled 1
    seed), EASE-shipped none (its runs predate the figures)."""
    exp, runs = bench
    records = [json.loads(line) for line in runs.read_text().splitlines()]
    for r in records:
        if r["spec"]["model"] == "EASE" and r["spec"]["overrides"] == {"reg_weight": 77.0}:
            r.update(_with_segments(r, 0.2 + r["spec"]["seed"] / 10, 0.3))
        elif r["spec"]["model"] == "Pop" and r["spec"]["seed"] == 1:
            r.update(_with_segments(r, 0.05, 0.0))
    runs.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    page = tmp_path / "site" / "bench.md"
    assert main(["reproduce", str(exp), "--report-only", "--std", "--runs", str(runs), "--report", str(page)]) == 0
    text = page.read_text()
    assert "| EASE | 2 (1, 2) | 0.3500 ± 0.0707 | 0.5000 ± 0.0000 | 12.0 ± 0.0 | 0.2500 ± 0.0000 |" in text
    assert "| Pop | 1 (1) | 0.0500 | 0.5000 | 12.0 | 0.2500 |" in text
    assert "| EASE-shipped | none measured |" in text
    assert "users with 1-3 (10 users, 12 test items) | users with 4+ (5 users, 9 test items) | head 20% items" in text
    assert "| Pop | 1 (1) | 0.0000 | 0.0000 | 0.0000 | 0.0000 |" in text  # its Recall@20 by segment
    assert (page.with_suffix("") / "beyond-synthetic.md").is_file()
    assert (page.with_suffix("") / "segments-recall-synthetic.md").is_file()


def test_add_segments_reruns_only_seed_1_of_runs_recorded_without_them(tmp_path, data_path, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"name: seg\ndatasets: [synthetic]\nseeds: [1, 2]\ndata_path: {data_path}/\n"
                   "models:\n  Pop: {}\n  EASE: {reg_weight: 250.0, hyper_parameters: []}\n")
    old = [_record("Pop", s, {}, 0.1) for s in (1, 2)]  # recorded before the figures existed
    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(json.dumps(r) + "\n" for r in old))
    results = tmp_path / "R"
    assert main(["results", "import", str(runs), "--results", str(results)]) == 0
    assert main(["reproduce", str(exp), "--results", str(results), "--add-segments", "1"]) == 0
    from mmrec_ld4mrec.study.registry import Registry

    with Registry(results, readonly=True) as registry:
        done = registry.done()
    seed1, seed2 = (done[RunSpec("synthetic", "Pop", s, {}).key] for s in (1, 2))
    assert seed1["result"]["segments"]["test item popularity"] and "ItemCoverage@20" in seed1["result"]["test"]
    assert seed2 == json.loads(json.dumps(old[1])) | {k: seed2[k] for k in seed2 if k not in old[1]}
    assert "segments" not in seed2["result"]
    assert not any(r["spec"]["model"] == "EASE" for r in done.values())  # the missing runs did not run
    assert main(["reproduce", str(exp), "--results", str(results), "--add-segments", "3"]) == 2
    assert "not among the experiment's seeds" in capsys.readouterr().err
