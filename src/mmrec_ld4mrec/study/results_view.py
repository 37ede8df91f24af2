"""``mmrec-ld4mrec results list|show|export|import``: reading the registry without training, and
rebuilding one from the runs a ``results export`` file holds (CSV: the metrics; JSONL: whole records)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..errors import UserInputError
from .experiment import RunSpec
from .registry import record_problem
from .summarize import COLUMNS

FLAT_FIELDS = ("key", "status", "experiment", "model", "dataset", "seed", "overrides", "best_epoch", "epochs_run",
               *[f"valid {c}" for c in COLUMNS], *[f"test {c}" for c in COLUMNS],
               "train_seconds_per_epoch", "inference_seconds", "peak_rss_mb", "peak_gpu_mb", "device", "jobs",
               "commit", "finished_at", "wall_seconds", "error", "cpus", "code_dirty")
# what an import needs of a row; the rest may be blank or absent (older exports have no 'cpus')
REQUIRED_FIELDS = ("key", "status", "experiment", "model", "dataset", "seed", "overrides",
                   *[f"{split} {c}" for split in ("valid", "test") for c in COLUMNS])


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
           "device": (record.get("environment") or {}).get("accelerator") or "CPU", "jobs": record.get("jobs"),
           "commit": (record.get("code") or {}).get("commit"), "finished_at": record.get("finished_at"),
           "wall_seconds": record.get("wall_seconds"), "error": record.get("error", ""),
           "cpus": (record.get("environment") or {}).get("cpus"), "code_dirty": (record.get("code") or {}).get("dirty")}
    for split in ("valid", "test"):
        for c in COLUMNS:
            row[f"{split} {c}"] = result.get(split, {}).get(c)
    return row


def _printable(text: str) -> str:
    """``text`` with control characters (a record's ANSI escapes, say) shown escaped, not run by the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def list_text(records: list[dict]) -> str:
    lines = [f"{'key':<20}  {'status':<6}  {'model':<14} {'dataset':<10} {'seed':>5}  {'test R@20':>9}  overrides"]
    for r in records:
        f = flatten(r)
        r20 = f["test Recall@20"]
        lines.append(_printable(f"{f['key']:<20}  {f['status']:<6}  {f['model']:<14} {f['dataset']:<10} {f['seed']:>5}  "
                                f"{'' if r20 is None else f'{r20:.4f}':>9}  {f['overrides']}"))
    done = sum(r["status"] == "done" for r in records)
    lines.append(f"{len(records)} run(s): {done} done, {len(records) - done} failed")
    return "\n".join(lines)


def _shareable(record: dict) -> dict:
    """``record`` without the data folder the run read (a path of the machine it ran on, which
    the drift check never compares): an export is made to be shared or committed."""
    config = (record.get("result") or {}).get("config")
    if not isinstance(config, dict) or "data_path" not in config:
        return record
    return {**record, "result": {**record["result"], "config": {k: v for k, v in config.items() if k != "data_path"}}}


def export_text(records: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(_shareable(r), sort_keys=True) + "\n" for r in records)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FLAT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(flatten(r))
    return buf.getvalue()


def _number(path: Path, line: int, column: str, text: str | None, whole: bool = False, nan: bool = False):
    """The number a cell holds, None where it is blank; ``nan``: a metric, which may be NaN."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or (math.isinf(value) or (math.isnan(value) and not nan)) or (
            whole and not (math.isfinite(value) and value == int(value))):
        raise UserInputError(f"{path} line {line}: '{column}' must be {'a whole' if whole else 'a'} number, "
                             f"got {text!r:.60}")
    return int(value) if whole else value


def _flag(path: Path, line: int, column: str, text: str | None) -> bool | None:
    if text is None or text == "":
        return None
    if text not in ("True", "False"):
        raise UserInputError(f"{path} line {line}: '{column}' must be True, False or blank, got {text!r:.60}")
    return text == "True"


def _record_of_row(path: Path, line: int, row: dict, cpus: int | None = None) -> dict:
    """The registry record a row of ``export`` came from, as far as the row holds it: its spec,
    metrics, cost, device, commit and times, not the settings it resolved to (``result.config``)
    nor its log, checkpoint or per-strategy figures (Fig. 3's ``inference_study``). Marked
    ``imported_from``. ``cpus``: the core count of a CPU run whose row has none (exports before
    the column), so that its tables pair it with runs of the same machine."""
    status = row["status"]
    if status not in ("done", "failed"):
        raise UserInputError(f"{path} line {line}: 'status' must be done or failed, got {status!r:.60}")
    seed = _number(path, line, "seed", row["seed"], whole=True)
    try:
        overrides = json.loads(row["overrides"] or "{}")
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        overrides = None
    if _depth(overrides) > 8:
        raise UserInputError(f"{path} line {line}: 'overrides' is nested more deeply than any config (8 levels)")
    if not isinstance(overrides, dict):
        raise UserInputError(f"{path} line {line}: 'overrides' must be a JSON mapping, got {row['overrides']!r:.60}")
    for field in ("model", "dataset"):
        if not row[field]:
            raise UserInputError(f"{path} line {line}: '{field}' is blank")
    if seed is None:
        raise UserInputError(f"{path} line {line}: 'seed' is blank")

    spec = RunSpec(row["dataset"], row["model"], seed, overrides)
    key = spec.key
    if row["key"] != key:
        raise UserInputError(f"{path} line {line}: 'key' {row['key']!r:.30} is not the key of its dataset, model, "
                             f"seed and overrides ({key}); the row was edited or belongs to another version")
    done = status == "done"
    result = {}
    if done:  # a metric the run did not compute (its own topk or metrics) is blank: left out, as export wrote it
        for split in ("valid", "test"):
            values = {c: _number(path, line, f"{split} {c}", row[f"{split} {c}"]) for c in COLUMNS}
            for c, v in values.items():
                if v is not None and not _in_range(c, v):
                    raise UserInputError(f"{path} line {line}: '{split} {c}' must be {_range_text(c)}, got {v!r}")
            result[split] = {c: v for c, v in values.items() if v is not None}
        for field, whole in (("best_epoch", True), ("epochs_run", True), ("train_seconds_per_epoch", False),
                             ("inference_seconds", False), ("peak_rss_mb", False), ("peak_gpu_mb", False)):
            value = _number(path, line, field, row.get(field), whole=whole)
            if value is not None:
                result[field] = value
    device = row.get("device") or "CPU"
    recorded_cpus = _number(path, line, "cpus", row.get("cpus"), whole=True)
    record = {"key": key, "status": status, "label": spec.label,
              "spec": {"dataset": row["dataset"], "model": row["model"], "seed": seed, "overrides": overrides},
              "environment": {"accelerator": None if device == "CPU" else device,
                              "cpus": cpus if recorded_cpus is None and device == "CPU" else recorded_cpus},
              "code": {"commit": row.get("commit") or None, "dirty": _flag(path, line, "code_dirty", row.get("code_dirty"))},
              "imported_from": f"{path.name} line {line}"}
    if row["experiment"]:
        record["experiment"] = row["experiment"]
    if done:
        record["result"] = result
    jobs = _number(path, line, "jobs", row.get("jobs"), whole=True)
    if jobs is not None:
        record["jobs"] = jobs
    wall = _number(path, line, "wall_seconds", row.get("wall_seconds"))
    if wall is not None:
        record["wall_seconds"] = wall
    if row.get("finished_at"):
        record["finished_at"] = row["finished_at"]
    if row.get("error"):
        record["error"] = row["error"]
    return record


def _depth(value, limit: int = 9) -> int:
    """How deeply ``value`` nests lists and mappings (counted up to ``limit``)."""
    if limit == 0 or not isinstance(value, dict | list):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


def records_from_csv(path: Path, cpus: int | None = None) -> list[dict]:
    """Every row of a ``results export`` CSV as a registry record (:func:`_record_of_row`);
    errors name the file, the line and the column. All rows are read before any is returned."""
    path = Path(path)
    try:  # utf-8-sig: a CSV saved again by a spreadsheet starts with a byte-order mark
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot read it as a CSV of runs ({getattr(exc, 'strerror', None) or exc})"
                             ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [f for f in REQUIRED_FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise UserInputError(f"{path}: not a `results export` CSV: no column(s) {', '.join(map(repr, missing))}")
    records, first_line, start = [], {}, reader.line_num + 1
    try:
        for row in reader:  # a quoted cell may span lines: a row is named by the line it starts on
            line, start = start, reader.line_num + 1
            if None in row or any(v is None for v in row.values()):
                raise UserInputError(f"{path} line {line}: {len(reader.fieldnames)} columns expected, as in its header")
            record = _record_of_row(path, line, row, cpus)
            if record["key"] in first_line:
                raise UserInputError(f"{path} line {line}: the run of line {first_line[record['key']]} again "
                                     f"(key {record['key']}); an export holds each run once")
            first_line[record["key"]] = line
            records.append(record)
    except csv.Error as exc:
        raise UserInputError(f"{path} line {start}: not valid CSV ({exc})") from None
    return records


def records_from_jsonl(path: Path) -> list[dict]:
    """Every line of a ``results export --format jsonl`` file as the registry record it was,
    whole (settings, per-strategy figures, imports' marks); each is checked as the registry
    checks what it stores, and its key against its spec. Errors name the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot read it as a JSONL file of runs ({getattr(exc, 'strerror', None) or exc})"
                             ) from None
    records, first_line = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested thousands deep
            raise UserInputError(f"{path} line {number}: not a JSON record ({type(exc).__name__})") from None
        if isinstance(record, dict) and _depth((record.get("spec") or {}).get("overrides")) > 8:
            raise UserInputError(f"{path} line {number}: 'overrides' is nested more deeply than any config (8 levels)")
        key = record.get("key") if isinstance(record, dict) else None
        problem = record_problem(record, key if isinstance(key, str) else "") or _metrics_problem(record)
        if problem:
            raise UserInputError(f"{path} line {number}: not a run record: {problem}")
        spec = record["spec"]
        if RunSpec(spec["dataset"], spec["model"], spec["seed"], spec["overrides"]).key != key:
            raise UserInputError(f"{path} line {number}: 'key' {key!r:.30} is not the key of its spec; the record "
                                 "was edited or belongs to another version")
        if key in first_line:
            raise UserInputError(f"{path} line {number}: the run of line {first_line[key]} again (key {key})")
        first_line[key] = number
        records.append(record)
    return records


def _metrics_problem(record: dict) -> str | None:
    """A finished run's metrics are numbers in [0, 1], AveragePopularity a finite count >= 0
    (NaN and values outside are no run's)."""
    for split in ("valid", "test"):
        for name, value in (record.get("result") or {}).get(split, {}).items():
            if not (isinstance(value, (int, float)) and _in_range(name, value)):
                return f"'result.{split}.{name}' must be {_range_text(name)}, got {value!r:.40}"
    return None


def _in_range(name: str, value: float) -> bool:
    if name.startswith("AveragePopularity@"):  # mean training interactions of the listed items
        return math.isfinite(value) and value >= 0.0
    return 0.0 <= value <= 1.0


def _range_text(name: str) -> str:
    return "a finite number >= 0" if name.startswith("AveragePopularity@") else "a metric in [0, 1]"


def records_from_file(path: Path, cpus: int | None = None) -> list[dict]:
    """The runs of a ``results export`` file: JSONL (``.jsonl``, whole records) or CSV."""
    return records_from_jsonl(path) if Path(path).suffix == ".jsonl" else records_from_csv(path, cpus)
