"""The experiment's report, rebuilt from the registry alone: ``REPORT.md`` plus a folder beside
it (``REPORT/``) holding each table as Markdown, CSV and LaTeX and each figure as CSV (+ PNG).

Nothing here trains; a run the registry lacks shows as missing ("—"), never as a number.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserInputError
from ..files import atomic_write, check_output_file, check_output_folder
from . import figures, segment_tables, tables
from .drift import changed_runs, describe
from .experiment import Experiment, RunSpec
from .registry import Registry
from .summarize import COLUMNS
from .tune.storage import study_progress


def _write(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _done(done: dict[str, dict], specs: list[RunSpec]) -> list[dict]:
    return [done[s.key] for s in specs if s.key in done]


def accuracy_table(exp: Experiment, done: dict[str, dict], dataset: str) -> tables.AccuracyTable:
    rows = []
    for model in exp.models:
        records = _done(done, exp.main_runs(dataset, model))
        values = {c: {r["spec"]["seed"]: r["result"]["test"][c] for r in records if c in r["result"]["test"]}
                  for c in COLUMNS}
        devices = {r["spec"]["seed"]: tables.device_of(r) for r in records}
        status = f"study pending: {exp.pending[model]}" if model in exp.pending else \
            "" if records else f"runs pending: 0 of {len(exp.seeds)} seeds"
        rows.append(tables.Row(model, values, devices, status))
    return tables.AccuracyTable(dataset, rows, exp.ours, exp.baselines())


# The report writer's mark in its assets folder: a folder that holds other files but not this
# one is the user's, and the report never writes into it.
REPORT_MARKER = ".mmrec-ld4mrec-report"
# the names the report writes
OWN_FILES = ("table", "fig3-", "fig4-", "fig5-", "heatmap-", "tuning-budget.", "beyond-", "segments-")


def _check_assets_folder(assets: Path, what: str) -> None:
    """The assets folder may be written only where it does not exist, is empty, or carries the
    report writer's marker (left there by an earlier report)."""
    if not assets.is_dir() or (assets / REPORT_MARKER).is_file():
        return
    try:
        empty = not any(assets.iterdir())
    except OSError as exc:
        raise UserInputError(f"{what}: cannot list its assets folder {assets} ({exc.strerror or exc})") from None
    if not empty:
        raise UserInputError(f"{what}: its assets folder {assets} already holds files the report did not write "
                             f"(no {REPORT_MARKER} marker there); choose another --report path or empty that folder")


def check_report_path(md_path: Path, what: str = "--report") -> Path:
    """Refuse, before any work, a report path the report could not be written to: one that is
    not a regular file (a folder, a link, a device), has no suffix (its assets folder, the path
    less its suffix, would be the report itself), or whose assets folder is not a folder, or is a
    folder of the user's (not empty, and without the report writer's marker)."""
    md_path = Path(md_path)
    check_output_file(md_path, what)
    if not md_path.suffix or md_path.with_suffix("") == md_path:
        raise UserInputError(f"{what} {md_path}: give the report a suffix such as .md (its tables and figures go "
                             "in a folder named like it without the suffix)")
    check_output_folder(md_path.with_suffix(""), f"{what} {md_path}: its assets folder")
    _check_assets_folder(md_path.with_suffix(""), f"{what} {md_path}")
    return md_path


def protocol_lines(exp: Experiment) -> list[str]:
    """The equal budget in a few lines, read from the studies' journal (``tuning``): trials per
    model, sampler, pruner, early stopping and tuning seeds as each study recorded them."""
    if not exp.tuning:
        return []
    recorded = {}
    for model, profile in exp.profiles.items():
        study = profile.get("study")
        if isinstance(study, str):
            recorded[model] = study_progress(exp.tuning["journal"], study)[1]
    kinds: dict[str, list[str]] = {}
    for model, protocol in recorded.items():  # the engine aside: it is the model's, not the search's
        same = {k: v for k, v in protocol.items() if k != "engine"} if isinstance(protocol, dict) else protocol
        kinds.setdefault(json.dumps(same, sort_keys=True), []).append(model)
    seeds = ", ".join(map(str, exp.seeds))
    lines = [f"- **Selection on validation only.** Every epoch, grid point and trial is chosen on validation "
             f"Recall@20; the test split is read once, at the chosen state, for seeds {seeds}.",
             f"- **An equal budget.** Each tuned model's `tune` study runs to {exp.tuning['trials']} finished "
             "trials (pruned ones count) over its search space (`configs/search/`), then its best trial runs "
             "with every seed above."]
    for text, models in kinds.items():
        protocol = json.loads(text)
        if not isinstance(protocol, dict):
            lines.append(f"- {', '.join(models)}: the study recorded no protocol.")
            continue
        pruner, settings = protocol.get("pruner") or {}, protocol.get("settings") or {}
        who = "" if len(kinds) == 1 else f" ({', '.join(models)})"
        lines.append(f"- **The same search for every model{who}:** TPE sampler seed {protocol.get('sampler_seed')}; "
                     f"{pruner.get('kind', 'no')} pruner after {pruner.get('startup_trials')} trials and "
                     f"{pruner.get('warmup_epochs')} warm-up epochs; at most {settings.get('epochs')} epochs, early "
                     f"stopping after {settings.get('stopping_step')} evaluations without a better validation "
                     f"Recall@20; tuning seed(s) {', '.join(map(str, protocol.get('seeds') or []))}, apart from "
                     "the reported ones.")
    return lines


def write_report(exp: Experiment, registry: Registry, md_path: Path, with_std: bool = False,
                 command: str = "", source: str = "") -> list[Path]:
    """Write the report; returns every file written (tables and figures included). ``source``
    names where the runs came from (default: the registry's path)."""
    records = list(registry.records())  # a damaged registry is refused before anything is written
    assets = md_path.with_suffix("")
    _check_assets_folder(assets, f"report {md_path}")
    assets.mkdir(parents=True, exist_ok=True)
    if not (assets / REPORT_MARKER).is_file():
        _write(assets / REPORT_MARKER, "Written by `mmrec-ld4mrec reproduce`: its report may rebuild the files "
                                       "in this folder.\n")
    done = {r["key"]: r for r in records if r["status"] == "done"}
    failed = {r["key"]: r for r in records if r["status"] == "failed"}
    needed = exp.all_runs()
    written: list[Path] = []

    def put(name: str, text: str) -> Path:
        path = assets / name
        _write(path, text)
        written.append(path)
        return path

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    needed_keys = {s.key for s in needed}
    machines = Counter(_machine(r) for r in done.values() if r["key"] in needed_keys)
    lines = [f"# {exp.title or f'Results: {exp.name}'}", "",
             f"Built {now} from {source or f'the registry `{registry.path}`'} by `mmrec-ld4mrec`."
             + (f" Command: `{command}`." if command else ""), ""]
    if exp.about:
        lines += [exp.about, ""]
    protocol = protocol_lines(exp)
    if protocol:
        lines += ["## Protocol", "", *protocol, ""]
    lines += [f"Runs: {sum(s.key in done for s in needed)} of {len(needed)} finished, "
              f"{sum(s.key in failed for s in needed)} failed, "
              f"{sum(s.key not in done and s.key not in failed for s in needed)} not run. "
              f"Seeds: {list(exp.seeds)}. Test-split metrics (full ranking, training items masked); "
              "epochs and grid points were chosen on validation Recall@20.", ""]
    for machine, n in sorted(machines.items()):
        lines.append(f"- {n} run(s) on {machine}")
    imported = sum("imported_from" in r for r in done.values() if r["key"] in needed_keys)
    if imported:
        lines.append(f"- {imported} of these run(s) were imported from a `results export` CSV (`results import`): "
                     "their metrics as recorded, without the settings they ran with, so they were not checked "
                     "against today's config files")
    lines.append("")
    changed = changed_runs(needed, done, exp.data_path)
    if changed:
        lines += [f"**{len(changed)} run(s) below ran with settings that today's config files no longer give** "
                  "(a config file changed since; `reproduce --rerun-changed` runs them again):", ""]
        lines += [f"- {describe(spec, diff)}" for spec, diff in changed] + [""]

    for i, dataset in enumerate(exp.datasets):
        table = accuracy_table(exp, done, dataset)
        stem = f"table{i + 2}-{dataset}"
        put(f"{stem}.md", tables.to_markdown(table, with_std))
        put(f"{stem}.csv", tables.to_csv(table))
        put(f"{stem}.tex", tables.to_latex(table, with_std))
        lines += [f"## Table {i + 2}: {dataset}", "",
                  "Means ± sample std over seeds; **best**, <u>runner-up</u> by mean. "
                  f"Improvement and p-value: {exp.ours} against the best baseline of each column "
                  f"(baselines: {', '.join(exp.baselines()) or 'none'}).", "",
                  tables.to_markdown(table, True)]
        lines += [f"- **{model}**: {note}" for model, note in exp.notes.items()] + [""] * bool(exp.notes)
        lines += [f"Files: `{stem}.md|csv|tex`.", ""]
        lines += _beyond_sections(exp, done, dataset, put)

    if exp.profiles:
        budget = tables.budget_rows(exp.profiles)
        put("tuning-budget.md", tables.budget_markdown(budget))
        put("tuning-budget.csv", tables.budget_csv(budget))
        untuned = [m for m in exp.models if m not in exp.profiles and m not in exp.pending]
        lines += ["## Tuning budget", "",
                  "Each tuned model runs the best trial of its `tune` study, chosen on validation only "
                  "(trials: finished trials asked for; wall s: the trials' own time)."
                  + (f" Run as configured, without a study: {', '.join(untuned)}." if untuned else "")
                  + (f" Studies pending: {', '.join(f'{m} ({n})' for m, n in exp.pending.items())}."
                     if exp.pending else ""), "",
                  tables.budget_markdown(budget), "File: `tuning-budget.md|csv`.", ""]

    cost = tables.cost_rows({(d, m): _done(done, exp.main_runs(d, m)) for d in exp.datasets for m in exp.models})
    put("table5-cost.md", tables.cost_markdown(cost))
    put("table5-cost.csv", tables.cost_csv(cost))
    put("table5-cost.tex", tables.cost_latex(cost))
    lines += ["## Table 5: cost", "",
              "Means over the main runs. Runs sharing the machine (parallel jobs > 1) slow each other: compare "
              "times only within one table, and use `mmrec-ld4mrec bench` for a clean speed ratio.", "",
              tables.cost_markdown(cost), ""]

    heatmap_model = exp.studies.get("heatmap", {}).get("model", exp.ours)
    studies = (  # study, file stem, title, runs of each point, CSV, plot
        ("inference", "fig3-inference", "Fig. 3: inference strategies of one trained model ({})", exp.inference_runs,
         lambda g: figures.bars_csv(g, "inference"), figures.plot_bars),
        ("robustness", "fig4-robustness", "Fig. 4: false-positive noise ({})", exp.robustness_runs,
         figures.robustness_csv, figures.plot_robustness),
        ("ablation", "fig5-ablation", "Fig. 5: ablations ({})", exp.ablation_runs,
         lambda g: figures.bars_csv(g, "variant"), figures.plot_bars),
        ("heatmap", "heatmap-pgamma", f"p × γ ({{}}, {heatmap_model})", exp.heatmap_runs,
         figures.heatmap_csv, figures.plot_heatmap),
    )
    figure_specs, not_run = [], []
    for dataset in exp.datasets:
        for study, stem, title, runs_of, to_csv, plot in studies:
            if study in exp.studies:
                groups = {k: _done(done, v) for k, v in runs_of(dataset).items()}
                note = ""
                if study == "inference":  # one run per seed holds every strategy: a group per strategy
                    bare = sum("imported_from" in r and "inference_study" not in r.get("result", {})
                               for runs in groups.values() for r in runs)
                    groups = figures.inference_groups(
                        groups, {m: exp.model_steps(dataset, m) for m in exp.study_models("inference")})
                    if bare:
                        note = (f"{bare} run(s) of this figure were imported from a `results export` CSV, which does "
                                "not carry the strategies' metrics, and are missing from it; `results import "
                                "--without-inference-runs` leaves them out so that `reproduce` runs them again "
                                "(docs/reproduce.md).")
                if not _study_ran(exp, study, dataset, runs_of(dataset), done):
                    bare = study == "inference" and any(s.key in done for specs in runs_of(dataset).values()
                                                        for s in specs)
                    not_run.append(title.format(dataset) + (
                        ": its runs were imported from a `results export` CSV, which does not carry the strategies' "
                        "metrics (`results import --without-inference-runs` leaves them out, so that `reproduce` "
                        "runs them again)" if bare else ""))
                    continue
                figure_specs.append((f"{stem}-{dataset}", title.format(dataset), to_csv(groups), plot, groups, note))
    if not_run:
        lines += ["## The paper's studies not run yet", "", *[f"- {line}" for line in not_run], ""]
    for stem, title, csv_text, plot, groups, note in figure_specs:
        put(f"{stem}.csv", csv_text)
        png = assets / f"{stem}.png"
        lines += [f"## {title}", ""] + ([note, ""] if note else [])
        if plot(groups, title, png):
            written.append(png)
            lines += [f"![{title}]({assets.name}/{png.name})", ""]
        lines += [_csv_as_markdown(csv_text), f"File: `{stem}.csv`.", ""]

    failures = [failed[s.key] for s in needed if s.key in failed]
    if failures:
        lines += ["## Failed runs", ""] + [f"- `{r['key']}` {r.get('label', '')}: {r.get('error', '')}"
                                           for r in failures] + [""]
    _write(md_path, "\n".join(lines))
    written.append(md_path)
    for stale in assets.iterdir():  # what an earlier build wrote and this one did not (a study now pending)
        if stale.is_file() and stale not in written and stale.name.startswith(OWN_FILES):
            stale.unlink()
    return written


def _beyond_sections(exp: Experiment, done: dict[str, dict], dataset: str, put) -> list[str]:
    """The beyond-accuracy table and the segment tables of ``dataset`` (docs/metrics.md)."""
    runs = {model: _done(done, exp.main_runs(dataset, model)) for model in exp.models
            if model not in exp.pending}
    beyond = segment_tables.beyond_markdown(runs)
    put(f"beyond-{dataset}.md", beyond)
    lines = [f"## Beyond accuracy: {dataset}", "",
             "Test split, K = 20, the same top-20 lists as Table 2's: the share of items recommended to "
             "anyone (coverage), how unevenly the lists spread over items (Gini, 0 even to 1 on one item), the "
             "mean training interactions of the items listed, and the share of listed items outside the 20 % "
             "most-interacted (tail). Mean ± std over the seeds counted; definitions in docs/metrics.md.", "",
             beyond, f"File: `beyond-{dataset}.md`.", ""]
    for metric in segment_tables.SEGMENT_METRICS:
        table = segment_tables.segment_markdown(runs, metric)
        if not table:
            continue
        name = f"segments-{metric.split('@')[0].lower()}-{dataset}.md"
        put(name, table)
        lines += [f"## {metric} by segment: {dataset}", "",
                  "Users by their training interactions (bins 1-3, 4-7, 8-15, 16+, or the quartiles where one "
                  "of those holds under 1 % of the test users), and test items by popularity (a user's figure "
                  "in an item segment counts only the user's test items of that segment). Mean ± std over the "
                  "seeds counted.", "", table, f"File: `{name}`.", ""]
    return lines


def _study_ran(exp: Experiment, study: str, dataset: str, runs: dict, done: dict[str, dict]) -> bool:
    """Whether a study has a finished run of its own: one that is not a main run (whose clean
    point every study shares), or, for Fig. 3, a main run holding the strategies' metrics (a
    CSV export does not carry them)."""
    keys = {s.key for specs in runs.values() for s in specs}
    if study == "inference":
        return any("inference_study" in (done[k].get("result") or {}) for k in keys if k in done)
    main = {s.key for m in exp.models for s in exp.main_runs(dataset, m)}
    return any(k in done for k in keys - main)


def _machine(record: dict) -> str:
    env, code = record.get("environment") or {}, record.get("code") or {}
    commit, dirty = code.get("commit"), code.get("dirty")
    # a run imported from an export that did not record it (results import) holds "dirty": None
    changes = " + local changes" if dirty else " (local changes not recorded)" if "dirty" in code and dirty is None else ""
    version = f"{commit[:10]}{changes}" if commit else "not in git"
    cpus = env.get("cpus")
    return f"{env.get('accelerator') or 'CPU'} with {cpus if cpus is not None else 'an unrecorded number of'} " \
           f"CPU(s), code {version}"


def _csv_as_markdown(text: str) -> str:
    rows = list(csv.reader(text.splitlines()))
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    for row in rows[1:]:
        out.append("| " + " | ".join(_short(v) for v in row) + " |")
    return "\n".join(out) + "\n"


def _short(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value or "—"
    return value if number.is_integer() and "." not in value else f"{number:.4f}"
