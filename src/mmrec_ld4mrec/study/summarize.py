"""Mean ± std over seeds of ``run --out`` result files, one row per model and dataset."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import UserInputError

COLUMNS = ("Recall@10", "Recall@20", "NDCG@10", "NDCG@20")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_result(path: Path, data) -> dict:
    """``data`` is the JSON of ``run --out``: every value the summary reads has its type; errors name the key."""
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object (the JSON of `run --out`), got {type(data).__name__}")
    for key in ("model", "dataset", "test", "valid"):
        if key not in data:
            raise UserInputError(f"{path}: missing key '{key}' (expected the JSON of `run --out`)")
    for key in ("model", "dataset"):
        if not isinstance(data[key], str):
            raise UserInputError(f"{path}: key '{key}' must be a name, got {data[key]!r:.60}")
    for split in ("valid", "test"):
        if not isinstance(data[split], dict):
            raise UserInputError(f"{path}: key '{split}' must map metric names to numbers, got {data[split]!r:.60}")
        for name, value in data[split].items():
            if not _number(value):
                raise UserInputError(f"{path}: key '{split}.{name}' must be a number, got {value!r:.60}")
            if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
                raise UserInputError(f"{path}: metric '{split}.{name}' must be a finite number >= 0, got {value!r:.60}")
    if data.get("train_seconds_per_epoch") is not None and not _number(data["train_seconds_per_epoch"]):
        raise UserInputError(f"{path}: key 'train_seconds_per_epoch' must be a number, "
                             f"got {data['train_seconds_per_epoch']!r:.60}")
    if data.get("config") is not None and not isinstance(data["config"], dict):
        raise UserInputError(f"{path}: key 'config' must be a mapping, got {data['config']!r:.60}")
    return data


def load_results(paths: list[Path]) -> list[dict]:
    """The ``run --out`` files, each checked (:func:`check_result`); errors name the file and key."""
    results = []
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserInputError(f"{path}: cannot read ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise UserInputError(f"{path}: not a JSON text file (byte {exc.start} is not UTF-8)") from None
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
        except RecursionError:
            raise UserInputError(f"{path}: not JSON this summary can read (nested too deeply)") from None
        results.append(check_result(Path(path), data))
    if not results:
        raise UserInputError("summarize: no result files given")
    return results


def seed_of(result: dict) -> object:
    seed = result.get("config", {}).get("seed")
    return seed[0] if isinstance(seed, list) and len(seed) == 1 else seed


def summary_rows(results: list[dict]) -> list[dict]:
    """One row per (model, dataset) in first-seen order: n, seeds, mean and std per metric."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in results:
        groups[(r["model"], r["dataset"])].append(r)
    rows = []
    for (model, dataset), rs in groups.items():
        row = {"model": model, "dataset": dataset, "n": len(rs), "seeds": [seed_of(r) for r in rs],
               "seconds_per_epoch": float(np.mean([r.get("train_seconds_per_epoch", np.nan) for r in rs])),
               "best_epoch": [r.get("best_epoch") for r in rs]}
        for split in ("valid", "test"):
            for col in COLUMNS:
                vals = np.array([r[split].get(col, np.nan) for r in rs], dtype=float)
                row[f"{split} {col}"] = (float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0)
        rows.append(row)
    return rows


def _cell(mean: float, std: float, n: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def markdown(rows: list[dict], split: str = "test") -> str:
    head = "| model | dataset | seeds | " + " | ".join(f"{split} {c}" for c in COLUMNS) + " | s/epoch |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for row in rows:
        cells = " | ".join(_cell(*row[f"{split} {c}"], row["n"]) for c in COLUMNS)
        lines.append(f"| {row['model']} | {row['dataset']} | {row['n']} | {cells} | {row['seconds_per_epoch']:.2f} |")
    return "\n".join(lines)


REPORT_METRICS = ("Recall@10", "Recall@20", "NDCG@10", "NDCG@20", "Precision@20", "MAP@20")


def metrics_table(result: dict) -> str:
    names = [m for m in REPORT_METRICS if m in result["test"]]
    lines = ["split  " + "  ".join(f"{n:>12}" for n in names)]
    for split in ("valid", "test"):
        lines.append(f"{split:<5}  " + "  ".join(f"{result[split][n]:>12.4f}" for n in names))
    return "\n".join(lines)


def compare_table(results: list[dict]) -> str:
    lines = ["| model | R@10 | R@20 | N@10 | N@20 | best epoch | s/epoch |", "|---|---|---|---|---|---|---|"]
    for r in results:
        cells = " | ".join(f"{r['test'].get(c, float('nan')):.4f}" for c in COLUMNS)
        lines.append(f"| {r['model']} | {cells} | {r['best_epoch']} | {r['train_seconds_per_epoch']:.2f} |")
    return "\n".join(lines)
