"""The results page's beyond-accuracy table and segment table, from the runs' records: mean
± sample std over the seeds that computed them, each row labelled with its seed count (runs
from before these figures existed, or imported without them, are not counted)."""

from __future__ import annotations

import re
import statistics

BEYOND_COLUMNS = ("ItemCoverage@20", "GiniIndex@20", "AveragePopularity@20", "TailPercentage@20")
SEGMENT_METRICS = ("Recall@20", "NDCG@20")


def _mean_std(values: list[float], digits: int) -> str:
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _seeds(records: list[dict]) -> str:
    return ", ".join(str(r["spec"]["seed"]) for r in records)


def _none(records: list[dict]) -> str:
    """A row without figures: no runs yet, or runs recorded before the figures existed."""
    return "none measured" if records else "no runs yet"


def beyond_markdown(runs_by_model: dict[str, list[dict]]) -> str:
    """Model | seeds | the four beyond-accuracy figures at K = 20 (test split)."""
    lines = ["| model | seeds | " + " | ".join(BEYOND_COLUMNS) + " |", "|---|---|" + "---|" * len(BEYOND_COLUMNS)]
    for model, records in runs_by_model.items():
        measured = [r for r in records if all(c in r["result"]["test"] for c in BEYOND_COLUMNS)]
        if not measured:
            lines.append(f"| {model} | {_none(records)} |" + " |" * len(BEYOND_COLUMNS))
            continue
        cells = [_mean_std([r["result"]["test"][c] for r in measured], 1 if c.startswith("Average") else 4)
                 for c in BEYOND_COLUMNS]
        lines.append(f"| {model} | {len(measured)} ({_seeds(measured)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


KINDS = ("user activity", "test item popularity")


def _order(kind: str, name: str) -> tuple:
    """User bins by their first count ("1-3" before "16+"), item segments head before tail."""
    digits = re.match(r"\d+", name)
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), int(digits.group()) if digits else 0, name)


def segment_layout(runs_by_model: dict[str, list[dict]]) -> list[tuple[str, str, int, int]]:
    """(kind, segment, users, test items) of the dataset's segments (the split is one per
    dataset, so every run gives the same): user activity bins in order, then head and tail."""
    for records in runs_by_model.values():
        for r in records:
            segments = r["result"].get("segments")
            if segments:
                return sorted(((kind, name, row["users"], row["test items"])
                               for kind, rows in segments.items() for name, row in rows.items()),
                              key=lambda entry: _order(entry[0], entry[1]))
    return []


def segment_markdown(runs_by_model: dict[str, list[dict]], metric: str) -> str:
    """Model | seeds | ``metric`` in each segment; the header row gives users / test items."""
    layout = segment_layout(runs_by_model)
    if not layout:
        return ""
    header = [f"{'users with ' + name if kind == 'user activity' else name + ' items'} ({users} users, {items} test items)"
              for kind, name, users, items in layout]
    lines = ["| model | seeds | " + " | ".join(header) + " |", "|---|---|" + "---|" * len(layout)]
    for model, records in runs_by_model.items():
        measured = [r for r in records if r["result"].get("segments")]
        if not measured:
            lines.append(f"| {model} | {_none(records)} |" + " |" * len(layout))
            continue
        cells = []
        for kind, name, _, _ in layout:
            values = [r["result"]["segments"].get(kind, {}).get(name, {}).get(metric) for r in measured]
            cells.append(_mean_std([v for v in values if v is not None], 4))
        lines.append(f"| {model} | {len(measured)} ({_seeds(measured)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
