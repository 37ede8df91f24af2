"""Staged exploration of a model's open choices, selected on validation only.

A plan is a YAML file::

    model: LD4MRec
    dataset: tiktok
    metric: Recall@20              # validation metric that picks each stage's winner
    base: {stopping_step: 10}      # applied to every run
    stages:
      - name: likelihood
        variants:
          mse: {}                  # {} = the configuration carried so far
          multinomial: {loss: multinomial}

Stages run in order. Each variant's configuration is ``base`` + the overrides carried from
earlier stages' winners + its own overrides; the variant with the best validation metric
(first one on ties) is carried into the next stage. Test metrics are recorded, never
consulted.

Every finished run is appended to a JSON-lines file as one line, keyed by its full override
set, so an interrupted exploration restarts where it stopped and a variant that repeats an
earlier configuration is not recomputed. A run that raises is recorded as failed and loses
its stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..engine.config import read_yaml
from ..errors import ConfigError

RunFn = Callable[[str, str, dict], dict]


@dataclass(frozen=True)
class Stage:
    name: str
    variants: dict[str, dict]


@dataclass(frozen=True)
class Plan:
    model: str
    dataset: str
    metric: str
    base: dict
    stages: tuple[Stage, ...]


def load_plan(path: Path) -> Plan:
    """Read and check a plan; errors name the file and key."""
    try:
        data = read_yaml(Path(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the exploration plan ({exc.strerror})") from None
    for key in ("model", "dataset"):
        if not isinstance(data.get(key), str):
            raise ConfigError(f"{path}: key '{key}' must be a name, got {data.get(key)!r}")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: key 'base' must be a mapping of config keys, got {base!r}")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError(f"{path}: key 'stages' must be a non-empty list")
    stages, seen = [], set()
    for i, st in enumerate(raw_stages):
        if not isinstance(st, dict) or not isinstance(st.get("name"), str):
            raise ConfigError(f"{path}: stages[{i}] needs a 'name'")
        if st["name"] in seen:
            raise ConfigError(f"{path}: stages[{i}]: the name '{st['name']}' is used twice")
        seen.add(st["name"])
        variants = st.get("variants")
        if not isinstance(variants, dict) or not variants:
            raise ConfigError(f"{path}: stages[{i}] ('{st['name']}'): 'variants' must be a non-empty mapping")
        for name, overrides in variants.items():
            if overrides is not None and not isinstance(overrides, dict):
                raise ConfigError(f"{path}: stages[{i}].variants.{name}: expected a mapping of config keys")
        stages.append(Stage(st["name"], {str(k): dict(v or {}) for k, v in variants.items()}))
    return Plan(data["model"], data["dataset"], str(data.get("metric", "Recall@20")), dict(base), tuple(stages))


def run_key(model: str, dataset: str, overrides: dict) -> str:
    text = json.dumps([model, dataset, overrides], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _record_problem(rec) -> str | None:
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), str):
        return "not a run record (a JSON object with a 'key')"
    if rec.get("status") == "ok":
        for split in ("valid", "test"):
            metrics = rec.get(split)
            if not isinstance(metrics, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        for v in metrics.values()):
                return f"'{split}' must map metric names to numbers"
        for key in ("train_seconds_per_epoch", "wall_seconds"):
            if not isinstance(rec.get(key, 0.0), (int, float)) or isinstance(rec.get(key), bool):
                return f"'{key}' must be a number"
    elif rec.get("status") != "failed":
        return "'status' must be 'ok' or 'failed'"
    return None


def read_records(path: Path) -> dict[str, dict]:
    """Finished runs by key. A torn line (a kill mid-write) is ignored; a file that is not
    this JSON-lines log, or a line that is JSON but not a run record, is refused naming it."""
    records = {}
    path = Path(path)
    if os.path.lexists(path) and not path.is_file():
        raise ConfigError(f"{path}: the results log is not a regular file")
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not a JSON-lines results log (byte {exc.start} is not UTF-8)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the results log ({exc.strerror or exc})") from None
        for number, line in enumerate(text.splitlines(), 1):
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue
            problem = _record_problem(rec)
            if problem:
                raise ConfigError(f"{path}: line {number}: {problem}; move the file away to start afresh")
            records[rec["key"]] = rec
    return records


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = path.exists() and path.stat().st_size > 0 and path.read_bytes()[-1:] != b"\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("\n" if torn else "") + json.dumps(record, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _engine_run(model: str, dataset: str, config: dict) -> dict:
    from ..engine.quick_start import run

    return run(model, dataset, config)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _execute(run_fn: RunFn, model: str, dataset: str, config: dict) -> dict:
    start = time.time()
    try:
        r = run_fn(model, dataset, config)
    except Exception as exc:  # recorded, not raised: one bad variant must not end the exploration
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "wall_seconds": time.time() - start}
    return {"status": "ok", "valid": r["valid"], "test": r["test"], "best_epoch": r["best_epoch"],
            "epochs_run": r["epochs_run"], "train_seconds_per_epoch": r["train_seconds_per_epoch"],
            "wall_seconds": time.time() - start}


def explore(plan: Plan, results: Path, data_path: str | None = None, jobs: int = 1,
            run_fn: RunFn = _engine_run, log: Callable[[str], None] = print) -> dict:
    """Run the plan; returns {"carried": overrides, "stages": [{name, winner, runs}]}."""
    records = read_records(results)
    carried: dict = {}
    summary = []
    machine = {"data_path": data_path} if data_path else {}
    for stage in plan.stages:
        todo, runs = [], {}
        for name, overrides in stage.variants.items():
            merged = {**plan.base, **carried, **overrides}
            key = run_key(plan.model, plan.dataset, merged)
            runs[name] = {"variant": name, "overrides": merged, "key": key}
            if key in records:  # the same configuration ran before (here or in an earlier stage)
                runs[name].update({**records[key], "variant": name, "stage": stage.name})
            else:
                todo.append(name)
        log(f"stage {stage.name}: {len(stage.variants)} variant(s), {len(todo)} to run")
        calls = [(run_fn, plan.model, plan.dataset, {**runs[n]["overrides"], **machine}) for n in todo]
        if jobs > 1 and calls:
            with ProcessPoolExecutor(jobs, initializer=_worker_init,
                                     initargs=(max(1, (os.cpu_count() or 1) // jobs),)) as pool:
                outcomes = pool.map(_execute, *zip(*calls))
                for name, outcome in zip(todo, outcomes):
                    _finish(results, plan, stage, runs[name], outcome, records, log)
        else:
            for name, call in zip(todo, calls):
                _finish(results, plan, stage, runs[name], _execute(*call), records, log)
        ok = [r for r in runs.values() if r.get("status") == "ok"]
        if not ok:
            raise ConfigError(f"stage '{stage.name}': every variant failed; see {results}")
        winner = max(ok, key=lambda r: r["valid"].get(plan.metric, float("-inf")))
        carried = dict(winner["overrides"])
        for k in plan.base:
            if carried.get(k) == plan.base[k]:
                carried.pop(k)
        log(f"stage {stage.name}: kept '{winner['variant']}' (valid {plan.metric} "
            f"{winner['valid'][plan.metric]:.4f})")
        summary.append({"name": stage.name, "winner": winner["variant"], "runs": list(runs.values())})
    return {"carried": carried, "stages": summary}


def _finish(results: Path, plan: Plan, stage: Stage, run: dict, outcome: dict, records: dict, log) -> None:
    record = {"key": run["key"], "model": plan.model, "dataset": plan.dataset, "stage": stage.name,
              "variant": run["variant"], "overrides": run["overrides"], **outcome}
    _append(results, record)
    records[run["key"]] = record
    run.update(record)
    if outcome["status"] == "ok":
        log(f"  {run['variant']}: valid {plan.metric} {outcome['valid'].get(plan.metric, float('nan')):.4f} "
            f"at epoch {outcome['best_epoch']}, {outcome['train_seconds_per_epoch']:.2f} s/epoch")
    else:
        log(f"  {run['variant']}: FAILED {outcome['error']}")


def report(plan: Plan, outcome: dict) -> str:
    """Markdown: per stage, each variant's validation metrics (test shown, never used)."""
    cols = ("Recall@20", "NDCG@20")
    lines = [f"Exploration of {plan.model} on {plan.dataset}; winner per stage by validation {plan.metric}.", ""]
    for st in outcome["stages"]:
        lines += [f"### {st['name']} (kept: {st['winner']})", "",
                  "| variant | valid R@20 | valid N@20 | test R@20 | test N@20 | best epoch | s/epoch |",
                  "|---|---|---|---|---|---|---|"]
        for r in st["runs"]:
            if r.get("status") != "ok":
                lines.append(f"| {r['variant']} | failed: {r.get('error', '?')} | | | | | |")
                continue
            v = " | ".join(f"{r['valid'].get(c, float('nan')):.4f}" for c in cols)
            t = " | ".join(f"{r['test'].get(c, float('nan')):.4f}" for c in cols)
            mark = " **kept**" if r["variant"] == st["winner"] else ""
            lines.append(f"| {r['variant']}{mark} | {v} | {t} | {r['best_epoch']} | "
                         f"{r['train_seconds_per_epoch']:.2f} |")
        lines.append("")
    lines.append("Carried configuration: `" + json.dumps(outcome["carried"], sort_keys=True) + "`")
    return "\n".join(lines) + "\n"
