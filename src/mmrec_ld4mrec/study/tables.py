"""The paper's tables from registry runs: Tables 2-4 (accuracy per dataset) and Table 5 (cost).

Accuracy tables: rows are models, columns Recall@10/20 and NDCG@10/20 on the test split as
means over seeds (``std`` adds ± the sample std), best in bold and runner-up underlined,
then LD4MRec's improvement over the best baseline of each column in % and a t-test's p-value:
paired over the seeds both have (scipy's ``ttest_rel``) when each pair's two runs ran on one
device, else Welch's unequal-variance test over all seeds of each (``ttest_ind``), since runs
on different machines are not paired by their seed. The table says which test it used.
Written as Markdown, CSV and LaTeX.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .summarize import COLUMNS

SHORT = {"Recall@10": "R@10", "Recall@20": "R@20", "NDCG@10": "N@10", "NDCG@20": "N@20"}


@dataclass
class Row:
    model: str
    values: dict[str, dict[int, float]]  # metric -> seed -> value
    devices: dict[int, str] = field(default_factory=dict)  # seed -> device it ran on (unknown: absent)
    status: str = ""  # why the row has no runs yet ("study pending: 3 of 10 trials")

    def mean(self, col: str) -> float:
        v = list(self.values[col].values())
        return float(np.mean(v)) if v else math.nan

    def std(self, col: str) -> float:
        v = list(self.values[col].values())
        return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    @property
    def n(self) -> int:
        return max((len(v) for v in self.values.values()), default=0)


@dataclass
class AccuracyTable:
    dataset: str
    rows: list[Row]
    ours: str
    baselines: list[str]

    def best_baseline(self, col: str) -> Row | None:
        rows = [r for r in self.rows if r.model in self.baselines and r.n]
        return max(rows, key=lambda r: r.mean(col)) if rows else None

    def row(self, model: str) -> Row:
        return next(r for r in self.rows if r.model == model)

    def improvement(self, col: str) -> tuple[float, str]:
        """(% of LD4MRec over the column's best baseline, that baseline's name)."""
        best, ours = self.best_baseline(col), self.row(self.ours)
        if best is None or not ours.n or best.mean(col) == 0:
            return math.nan, ""
        return 100.0 * (ours.mean(col) - best.mean(col)) / best.mean(col), best.model

    def p_value(self, col: str) -> tuple[float, int]:
        """(p, runs compared) of :meth:`t_test`."""
        p, n, _ = self.t_test(col)
        return p, n

    def t_test(self, col: str) -> tuple[float, int, str]:
        """LD4MRec against the column's best baseline: (p, n, test).

        ``paired`` (n pairs) when every shared seed's two runs ran on the same device;
        ``Welch`` (n = runs of ours + runs of theirs) otherwise. NaN below two runs a side
        or where the test is undefined (identical differences, zero variance on both sides)."""
        best, ours = self.best_baseline(col), self.row(self.ours)
        if best is None:
            return math.nan, 0, "paired"
        seeds = sorted(set(ours.values[col]) & set(best.values[col]))
        same_device = all(ours.devices.get(s) == best.devices.get(s) for s in seeds)
        if same_device:
            a = np.array([ours.values[col][s] for s in seeds])
            b = np.array([best.values[col][s] for s in seeds])
            if len(seeds) < 2 or np.allclose(a - b, (a - b)[0]):
                return math.nan, len(seeds), "paired"
            return float(stats.ttest_rel(a, b).pvalue), len(seeds), "paired"
        a, b = np.array(list(ours.values[col].values())), np.array(list(best.values[col].values()))
        if min(len(a), len(b)) < 2 or (np.allclose(a, a[0]) and np.allclose(b, b[0])):
            return math.nan, len(a) + len(b), "Welch"
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue), len(a) + len(b), "Welch"

    def ranks(self, col: str) -> dict[str, int]:
        """model -> 1 (best) / 2 (runner-up) by mean."""
        ordered = sorted((r for r in self.rows if r.n and math.isfinite(r.mean(col))), key=lambda r: -r.mean(col))
        return {r.model: i + 1 for i, r in enumerate(ordered[:2])}


def _fmt(row: Row, col: str, with_std: bool) -> str:
    if not row.n:
        return "—"
    return f"{row.mean(col):.4f} ± {row.std(col):.4f}" if with_std and row.n > 1 else f"{row.mean(col):.4f}"


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:+.1f}%"


def _p(value: float) -> str:
    return "—" if math.isnan(value) else (f"{value:.1e}" if value < 1e-3 else f"{value:.3f}")


def to_markdown(table: AccuracyTable, with_std: bool = False) -> str:
    lines = ["| Model | seeds | " + " | ".join(SHORT[c] for c in COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    ranks = {c: table.ranks(c) for c in COLUMNS}
    for row in table.rows:
        cells = []
        for c in COLUMNS:
            text = _fmt(row, c, with_std)
            rank = ranks[c].get(row.model)
            cells.append(f"**{text}**" if rank == 1 else f"<u>{text}</u>" if rank == 2 else text)
        seeds = row.status if row.status and not row.n else row.n
        lines.append(f"| {row.model} | {seeds} | " + " | ".join(cells) + " |")
    imp = [table.improvement(c) for c in COLUMNS]
    lines.append(f"| Improv. of {table.ours} | | " + " | ".join(f"{_pct(v)} vs {b}" if b else "—" for v, b in imp) + " |")
    tests = [table.t_test(c) for c in COLUMNS]
    lines.append("| p (t-test) | | " + " | ".join(f"{_p(p)} ({kind}, n={n})" if n else "—" for p, n, kind in tests)
                 + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: AccuracyTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "seeds", *[f"{c} {k}" for c in COLUMNS for k in ("mean", "std")], "status"])
    for row in table.rows:
        w.writerow([row.model, row.n, *[f"{x:.6f}" if row.n else "" for c in COLUMNS for x in (row.mean(c), row.std(c))],
                    row.status if not row.n else ""])
    imp = [table.improvement(c) for c in COLUMNS]
    w.writerow([f"improvement_pct_of_{table.ours}", "", *[x for v, _ in imp for x in (f"{v:.3f}", "")]])
    w.writerow(["best_baseline", "", *[x for _, b in imp for x in (b, "")]])
    tests = [table.t_test(c) for c in COLUMNS]
    w.writerow(["p_value_t", "", *[x for p, n, _ in tests for x in (f"{p:.6g}", n)]])
    w.writerow(["t_test", "", *[x for _, _, kind in tests for x in (kind, "")]])
    return buf.getvalue()


def _tex(text: str) -> str:
    return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("#", r"\#")


def to_latex(table: AccuracyTable, with_std: bool = False) -> str:
    ranks = {c: table.ranks(c) for c in COLUMNS}
    lines = [r"\begin{tabular}{l" + "c" * len(COLUMNS) + "}", r"\toprule",
             "Model & " + " & ".join(SHORT[c] for c in COLUMNS) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = []
        for c in COLUMNS:
            text = _fmt(row, c, with_std).replace("±", r"$\pm$").replace("—", "--")
            rank = ranks[c].get(row.model)
            cells.append(rf"\textbf{{{text}}}" if rank == 1 else rf"\underline{{{text}}}" if rank == 2 else text)
        if row.status and not row.n:
            cells = [rf"\multicolumn{{{len(COLUMNS)}}}{{c}}{{{_tex(row.status)}}}"]
        lines.append(_tex(row.model) + " & " + " & ".join(cells) + r" \\")
    lines.append(r"\midrule")
    lines.append("Improv. & " + " & ".join(_tex(_pct(table.improvement(c)[0])) for c in COLUMNS) + r" \\")
    lines.append("$p$-value & " + " & ".join(_p(table.p_value(c)[0]).replace("—", "--") for c in COLUMNS) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ---- Table 5 ----------------------------------------------------------------------------------
COST_FIELDS = ("train_seconds_per_epoch", "inference_seconds", "peak_rss_mb", "peak_gpu_mb")
COST_HEADERS = ("train s/epoch", "full inference s", "peak RSS MB", "peak GPU MB")


def device_of(record: dict) -> str:
    """The accelerator a run used, else its CPU core count."""
    env = record.get("environment") or {}
    cpus = env.get("cpus")
    return env.get("accelerator") or (f"CPU ({cpus} cores)" if cpus is not None else "CPU (cores not recorded)")


def cost_rows(runs_by_model: dict[tuple[str, str], list[dict]]) -> list[dict]:
    """(dataset, model) -> finished records; one row of means per pair and device (times
    from different machines are never averaged together)."""
    rows = []
    for (dataset, model), all_records in runs_by_model.items():
        for device in sorted({device_of(r) for r in all_records}) or ["—"]:
            records = [r for r in all_records if device_of(r) == device]
            rows.append(_cost_row(dataset, model, device, records))
    return rows


def _cost_row(dataset: str, model: str, device: str, records: list[dict]) -> dict:
    row = {"dataset": dataset, "model": model, "runs": len(records), "device": device,
           "jobs": ", ".join(str(j) for j in sorted({r.get("jobs", 1) for r in records})) or "—"}
    for f in COST_FIELDS:
        vals = [r["result"].get(f) for r in records if r["result"].get(f) is not None]
        row[f] = float(np.mean(vals)) if vals else math.nan
    return row


def cost_markdown(rows: list[dict]) -> str:
    lines = ["| dataset | model | runs | " + " | ".join(COST_HEADERS) + " | device | parallel jobs |",
             "|---|---|---|" + "---|" * (len(COST_HEADERS) + 2)]
    for r in rows:
        cells = " | ".join("—" if math.isnan(r[f]) else f"{r[f]:.0f}" if f.startswith("peak") else f"{r[f]:.3f}"
                           for f in COST_FIELDS)
        lines.append(f"| {r['dataset']} | {r['model']} | {r['runs']} | {cells} | {r['device']} | {r['jobs']} |")
    return "\n".join(lines) + "\n"


def cost_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["dataset", "model", "runs", *COST_FIELDS, "device", "jobs"])
    for r in rows:
        w.writerow([r["dataset"], r["model"], r["runs"], *["" if math.isnan(r[f]) else f"{r[f]:.6g}" for f in COST_FIELDS],
                    r["device"], r["jobs"]])
    return buf.getvalue()


def cost_latex(rows: list[dict]) -> str:
    lines = [r"\begin{tabular}{llcccc}", r"\toprule",
             "Dataset & Model & " + " & ".join(COST_HEADERS) + r" \\", r"\midrule"]
    for r in rows:
        cells = " & ".join("--" if math.isnan(r[f]) else f"{r[f]:.0f}" if f.startswith("peak") else f"{r[f]:.3f}"
                           for f in COST_FIELDS)
        lines.append(f"{_tex(r['dataset'])} & {_tex(r['model'])} & {cells}" + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


# ---- the tuning budget ----------------------------------------------------------------------
BUDGET_HEADERS = ("model", "study", "trials", "complete", "pruned", "failed", "wall s", "best trial", "its validation")


def budget_rows(profiles: dict[str, dict]) -> list[dict]:
    """One row per tuned model from the profile ``tune`` exported: the study's budget (trials
    asked for; complete, pruned and failed trials; wall time of the trials), the trial chosen
    and its validation metric (the profile's ``valid_*`` key)."""
    rows = []
    for model, profile in profiles.items():
        budget = profile.get("budget") if isinstance(profile.get("budget"), dict) else {}
        metric = next((k for k in profile if str(k).startswith("valid_")), None)
        rows.append({"model": model, "study": profile.get("study") or "— (no study)", "trials": budget.get("trials"),
                     "complete": budget.get("complete"), "pruned": budget.get("pruned"),
                     "failed": budget.get("failed"), "wall_seconds": budget.get("wall_seconds"),
                     "trial": profile.get("trial"), "metric": metric[len("valid_"):] if metric else "",
                     "valid": profile.get(metric) if metric else None, "profile": profile.get("path", "")})
    return rows


def _cell(value, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,.{digits}f}"


def budget_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(BUDGET_HEADERS) + " |", "|" + "---|" * len(BUDGET_HEADERS)]
    for r in rows:
        valid = f"{r['metric']} {_cell(r['valid'], 4)}" if r["valid"] is not None else "—"
        lines.append(f"| {r['model']} | {r['study']} | {_cell(r['trials'])} | {_cell(r['complete'])} | "
                     f"{_cell(r['pruned'])} | {_cell(r['failed'])} | {_cell(r['wall_seconds'])} | "
                     f"{_cell(r['trial'])} | {valid} |")
    return "\n".join(lines) + "\n"


def budget_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    fields = ("model", "study", "trials", "complete", "pruned", "failed", "wall_seconds", "trial", "metric", "valid",
              "profile")
    w.writerow(fields)
    for r in rows:
        w.writerow(["" if r[f] is None else r[f] for f in fields])
    return buf.getvalue()
