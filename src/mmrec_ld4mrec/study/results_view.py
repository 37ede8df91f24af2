"""``mmrec-ld4mrec results list|show|export``: reading the registry without training."""

from __future__ import annotations

import csv
import io
import json

from .summarize import COLUMNS

FLAT_FIELDS = ("key", "status", "experiment", "model", "dataset", "seed", "overrides", "best_epoch", "epochs_run",
               *[f"valid {c}" for c in COLUMNS], *[f"test {c}" for c in COLUMNS],
               "train_seconds_per_epoch", "inference_seconds", "peak_rss_mb", "peak_gpu_mb", "device", "jobs",
               "commit", "finished_at", "wall_seconds", "error")


def flatten(record: dict) -> dict:
    """One registry record as a flat row (metrics blank for a failed run)."""
    spec, result = record["spec"], record.get("result") or {}
    row = {"key": record["key"], "status": record["status"], "experiment": record.get("experiment", ""),
           "model": spec["model"], "dataset": spec["dataset"], "seed": spec["seed"],
           "overrides": json.dumps(spec["overrides"], sort_keys=True),
           "best_epoch": result.get("best_epoch"), "epochs_run": result.get("epochs_run"),
           "train_seconds_per_epoch": result.get("train_seconds_per_epoch"),
           "inference_seconds": result.get("inference_seconds"), "peak_rss_mb": result.get("peak_rss_mb"),
           "peak_gpu_mb": result.get("peak_gpu_mb"),
           "device": record.get("environment", {}).get("accelerator") or "CPU", "jobs": record.get("jobs"),
           "commit": (record.get("code") or {}).get("commit"), "finished_at": record.get("finished_at"),
           "wall_seconds": record.get("wall_seconds"), "error": record.get("error", "")}
    for split in ("valid", "test"):
        for c in COLUMNS:
            row[f"{split} {c}"] = result.get(split, {}).get(c)
    return row


def list_text(records: list[dict]) -> str:
    lines = [f"{'key':<20}  {'status':<6}  {'model':<14} {'dataset':<10} {'seed':>5}  {'test R@20':>9}  overrides"]
    for r in records:
        f = flatten(r)
        r20 = f["test Recall@20"]
        lines.append(f"{f['key']:<20}  {f['status']:<6}  {f['model']:<14} {f['dataset']:<10} {f['seed']:>5}  "
                     f"{'' if r20 is None else f'{r20:.4f}':>9}  {f['overrides']}")
    done = sum(r["status"] == "done" for r in records)
    lines.append(f"{len(records)} run(s): {done} done, {len(records) - done} failed")
    return "\n".join(lines)


def export_text(records: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FLAT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(flatten(r))
    return buf.getvalue()
