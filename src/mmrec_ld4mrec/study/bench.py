"""``mmrec-ld4mrec bench``: training seconds per epoch, full-inference seconds and peak memory
of several models on one dataset, measured side by side.

Each measurement runs in a fresh subprocess (so peak RSS is that model's own): it builds the
model, trains ``--epochs`` epochs and times one full ranking of every user (top-k, training
items masked). ``--repeats`` rounds cycle through the models; the report gives medians and
every figure as a ratio to the first model, measured in the same run. A model may carry
overrides: ``LD4MRec:sparse_input=false``, ``DiffRec:steps=5``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..data.published import prepare_diffmm
from ..engine.config import parse_overrides, parse_value
from ..errors import UserInputError
from ..files import atomic_write, check_output_file

METRICS = ("train_seconds_per_epoch", "inference_seconds", "peak_rss_mb")
# One grid point for models whose YAML holds a grid: the paper's p = gamma = 0.01 for LD4MRec.
FIXED = {"LD4MRecPaper": {"soft_prob": 0.01, "smooth": 0.01}, "EASE": {"reg_weight": 250.0}}


def parse_spec(spec: str) -> tuple[str, dict]:
    name, *pairs = spec.strip().split(":")
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserInputError(f"-m: expected MODEL or MODEL:key=value[:key=value], got {spec!r}")
        overrides[key] = parse_value(value)
    return name, overrides


def measure(request: dict) -> dict:
    """Train ``epochs`` epochs and time a full ranking, in this process."""
    from ..engine.config import Config
    from ..engine.dataloader import TrainDataLoader
    from ..engine.dataset import RecDataset
    from ..engine.quick_start import init_seed, peak_rss_mb, time_full_inference
    from ..engine.trainer import Trainer
    from ..models import get_model

    name, overrides = parse_spec(request["spec"])
    config = Config(name, request["dataset"], {"data_path": request["data_path"], **FIXED.get(name, {}),
                                               **request["settings"], **overrides})
    for key in config["hyper_parameters"]:  # a grid left in the YAML: take its first point
        if isinstance(config[key], list):
            config[key] = config[key][0]
    init_seed(int(config["seed"]))
    train_ds, _, _ = RecDataset(config).split()
    loader = TrainDataLoader(config, train_ds, int(config["train_batch_size"]))
    loader.pretrain_setup()
    start = time.perf_counter()
    model = get_model(name)(config, loader)
    build = time.perf_counter() - start
    trainer = Trainer(config, model)
    seconds = []
    for _ in range(request["epochs"] if getattr(model, "needs_training", True) else 0):
        start = time.perf_counter()
        trainer._train_epoch(loader)
        seconds.append(time.perf_counter() - start)
    return {"model": request["spec"], "build_seconds": build,
            "train_seconds_per_epoch": statistics.median(seconds) if seconds else 0.0,
            "inference_seconds": time_full_inference(model, loader, config), "peak_rss_mb": peak_rss_mb()}


def summarize(runs: list[dict], specs: list[str], header: str) -> dict:
    med = {s: {k: statistics.median(r[k] for r in runs if r["model"] == s) for k in METRICS} for s in specs}
    base = med[specs[0]]
    ratio = {s: {k: (med[s][k] / base[k] if base[k] else float("nan")) for k in METRICS} for s in specs}
    lines = [header, "", "| model | train s/epoch | full inference s | peak RSS MB |"
             f" train vs {specs[0]} | inference vs {specs[0]} | memory vs {specs[0]} |", "|---|---|---|---|---|---|---|"]
    for s in specs:
        m, r = med[s], ratio[s]
        lines.append(f"| {s} | {m['train_seconds_per_epoch']:.2f} | {m['inference_seconds']:.2f} | "
                     f"{m['peak_rss_mb']:.0f} | {r['train_seconds_per_epoch']:.3f}x | {r['inference_seconds']:.3f}x | "
                     f"{r['peak_rss_mb']:.3f}x |")
    for s in specs[1:]:
        if s.startswith("DiffRec"):
            inv = {k: (base[k] / med[s][k] if med[s][k] else float("nan")) for k in METRICS}
            lines.append(f"\n{specs[0]} / {s}: full inference {inv['inference_seconds']:.3f} (target <= 0.05), "
                         f"training s/epoch {inv['train_seconds_per_epoch']:.3f} (target <= 1.0)")
    return {"medians": med, "ratio_to_first": ratio, "runs": runs, "markdown": "\n".join(lines)}


def main(args) -> int:
    """``bench``: every argument and the ``--out`` path checked before anything is measured."""
    for option, value in (("--epochs", args.epochs), ("--repeats", args.repeats)):
        if value < 1:
            raise UserInputError(f"{option}: expected an integer >= 1, got {value}")
    if args.out:
        check_output_file(args.out, "--out")
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    if not specs:
        raise UserInputError("-m/--models expects a comma-separated list, e.g. LD4MRec,DiffRec")
    for spec in specs:
        parse_spec(spec)
    settings = parse_overrides(args.set or [])
    tmp = None
    data_path = args.data_path
    if data_path is None:
        if args.dataset != "tiktok":
            raise UserInputError(f"--data-path DIR is needed for {args.dataset!r} (DIR/{args.dataset}/ in MMRec layout)")
        tmp = Path(tempfile.mkdtemp(prefix="ld4mrec-bench-"))
        prepare_diffmm(Path(args.src), tmp / "tiktok")
        data_path = str(tmp)
    runs = []
    try:
        from ..engine.config import settings_per_model

        data_path = str(Path(data_path).resolve()) + "/"
        per_model = settings_per_model([parse_spec(s)[0] for s in specs], args.dataset, settings, data_path)
        for rep in range(args.repeats):
            for spec in specs:
                request = {"spec": spec, "dataset": args.dataset, "data_path": data_path,
                           "epochs": args.epochs, "settings": per_model[parse_spec(spec)[0]]}
                proc = subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.study.bench", json.dumps(request)],
                                      capture_output=True, text=True, check=False,
                                      env={**os.environ, "PYTHONWARNINGS": "ignore"})
                if proc.returncode != 0:
                    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                    raise UserInputError(f"benchmark of {spec} failed: {last}")
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                r = runs[-1]
                print(f"round {rep + 1}/{args.repeats} {spec}: train {r['train_seconds_per_epoch']:.2f} s/epoch, "
                      f"inference {r['inference_seconds']:.2f} s, peak {r['peak_rss_mb']:.0f} MB", flush=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    header = (f"{args.dataset}: {args.epochs} training epoch(s) per measurement, {args.repeats} round(s), medians"
              + (f"; --set {' '.join(args.set)}" if args.set else ""))
    report = summarize(runs, specs, header)
    print("\n" + report["markdown"])
    if args.out:
        atomic_write(Path(args.out), lambda p: Path(p).write_text(json.dumps(report, indent=2)))
    return 0


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
