"""``mmrec-ld4mrec bench --scale``: how LD4MRec's cost grows with the data.

The ``synthetic`` generator is run at growing sizes (users and items each multiplied by
sqrt(f), so |U|·|I| grows by f = 1, 2, 4, 8, ...); each size is measured by the benchmark's
own worker (a fresh process: its peak RSS is that size's). The report gives epoch time,
full-inference time and peak memory against |U|·|I|·d_e with the fitted log-log slope, and
the memory model's prediction next to each measured peak.

Memory model (fp32, bytes; docs/peers.md#memory-model works it through at H&M's size):
  parameters  P = 2·|I|·d_e + |I| + d_e + |U|·d_t + (C-Net's small layers, counted exactly)
  training    16·P  (weight, gradient and Adam's two moments)
  buffers     4·|U|·(q + Σ_m d_m)  (collaborative and modality signals)
  activations 4·B·|I|·A  (A dense batch x item tensors alive at the peak of a step)
  base        R0 (the process with torch and the data loaded, before the model)
  (B the larger of the training and the evaluation batch)
A and R0 are fitted on the smallest and the largest size; the sizes between test the prediction.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..data.layout import write_dataset
from ..data.synthetic import CLICKS_MEAN, generate, generate_large
from ..engine.config import parse_overrides
from ..errors import UserInputError

FACTORS = (1, 2, 4, 8)


def scale_sizes(base_users: int, base_items: int, factors: tuple[int, ...] = FACTORS) -> list[tuple[int, int, int]]:
    """(factor, users, items) before filtering: each side grows by sqrt(factor)."""
    return [(f, round(base_users * math.sqrt(f)), round(base_items * math.sqrt(f))) for f in factors]


def parse_factors(text: str) -> tuple[int, ...]:
    """``--scale-factors 1,2,4,8``: at least two distinct whole numbers >= 1, in increasing order."""
    try:
        factors = tuple(int(x) for x in str(text).split(","))
    except ValueError:
        raise UserInputError(f"--scale-factors: expected whole numbers like 1,2,4,8, got {text!r}") from None
    if len(factors) < 2 or min(factors) < 1 or list(factors) != sorted(set(factors)):
        raise UserInputError(f"--scale-factors: expected at least two increasing whole numbers >= 1, got {text!r}")
    return factors


def write_scaled_dataset(folder: Path, n_users: int, n_items: int) -> dict:
    """The synthetic generator at this size, written in MMRec's layout (with its dataset YAML)."""

    df, features = generate(n_users=n_users, n_items=n_items)
    return write_dataset(folder, df, features, source=f"synthetic generator at {n_users} x {n_items}")


def fit_slope(x: list[float], y: list[float]) -> float:
    """Slope of log y against log x (least squares)."""
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def memory_terms(run: dict) -> dict[str, float]:
    """The model's memory terms (MB) for one measured size, from the counts the worker reports.

    The activation unit is one dense float32 tensor of the larger of the training batch and the
    evaluation batch by |I|: at the default sizes (400 and 4,096 users) the evaluation's scores
    are the largest tensors a run holds."""
    mb = 2 ** 20
    return {"state": 16 * run["parameters"] / mb, "buffers": 4 * run["buffer_floats"] / mb,
            "activation_unit": 4 * max(run["batch"], run["eval_batch"]) * run["n_items"] / mb}


def fit_memory(runs: list[dict]) -> dict:
    """R0 and A from the smallest and the largest size (the longest lever: peak RSS moves by
    tens of MB from run to run at the small sizes): peak = R0 + state + buffers + A ·
    activation unit. The sizes between test the prediction."""
    ordered = sorted(runs, key=lambda r: r["n_users"] * r["n_items"])
    a, b = ordered[0], ordered[-1]
    ta, tb = memory_terms(a), memory_terms(b)
    ra = a["peak_rss_mb"] - ta["state"] - ta["buffers"]
    rb = b["peak_rss_mb"] - tb["state"] - tb["buffers"]
    span = tb["activation_unit"] - ta["activation_unit"]
    activations = max((rb - ra) / span, 0.0) if span else 0.0
    return {"base_mb": ra - activations * ta["activation_unit"], "activation_tensors": activations,
            "fitted_on": [a["factor"], b["factor"]]}


def predict_peak_mb(model: dict, run: dict) -> float:
    terms = memory_terms(run)
    return model["base_mb"] + terms["state"] + terms["buffers"] + model["activation_tensors"] * terms["activation_unit"]


SCALE_DEFAULTS = {"users": 4000, "items": 2000, "factors": "1,2,4,8"}  # --scale's 1x shape and multiples


def run_scale_study(args, spec: str) -> dict:
    """Generate, measure (in a fresh process each) and report each size."""

    base_users = SCALE_DEFAULTS["users"] if args.scale_users is None else args.scale_users
    base_items = SCALE_DEFAULTS["items"] if args.scale_items is None else args.scale_items
    if base_users < 100 or base_items < 50:
        raise UserInputError("--scale-users / --scale-items: expected at least 100 users and 50 items")
    factors = parse_factors(args.scale_factors or SCALE_DEFAULTS["factors"])
    for _, n_users, n_items in scale_sizes(base_users, base_items, factors):
        check_fits(n_users, n_items, "--scale")
    settings = parse_overrides(args.set or [])
    tmp = Path(tempfile.mkdtemp(prefix="ld4mrec-scale-"))
    runs = []
    try:
        for factor, n_users, n_items in scale_sizes(base_users, base_items, factors):
            name = f"scale{factor}"
            stats = write_scaled_dataset(tmp / name, n_users, n_items)
            request = {"spec": spec, "dataset": name, "data_path": str(tmp) + "/",
                       "epochs": args.epochs, "settings": settings}
            result = subprocess_measure(request)
            result.update({"factor": factor, "n_users": stats["users"], "n_items": stats["items"],
                           "interactions": stats["interactions"]})
            runs.append(result)
            print(f"x{factor}: {stats['users']} users x {stats['items']} items: train "
                  f"{result['train_seconds_per_epoch']:.2f} s/epoch, inference {result['inference_seconds']:.2f} s, "
                  f"peak {result['peak_rss_mb']:.0f} MB", flush=True)
            shutil.rmtree(tmp / name, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return scale_report(runs)


def check_fits(n_users: int, n_items: int, what: str) -> None:
    """Refuse, before anything is generated, a size whose data and one batch of scores alone
    (a lower bound of any model's peak) exceed this machine's memory."""
    interactions = n_users * CLICKS_MEAN * 48  # bytes per generated interaction (ids, times, frames)
    scores = 2 * 4096 * n_items * 4  # two float32 evaluation batches of 4,096 users by |I|
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if interactions + scores > total:
        raise UserInputError(f"{what}: {n_users:,} users x {n_items:,} items need at least "
                             f"{(interactions + scores) / 2**30:,.1f} GiB (the data and one batch of scores), more "
                             f"than this machine's {total / 2**30:,.1f} GiB")


def parse_shape(text: str) -> tuple[int, int]:
    """``--scale-shape 1371980x105542``: users x items, each at least 10."""
    users, sep, items = str(text).lower().partition("x")
    plain = re.fullmatch(r"[0-9]{1,12}", users) and re.fullmatch(r"[0-9]{1,12}", items)  # not '²', not 10^400
    if not sep or not plain or int(users) < 10 or int(items) < 10:
        raise UserInputError(f"--scale-shape: expected USERSxITEMS such as 1371980x105542, got {text!r}")
    return int(users), int(items)


def run_shape(args, spec: str) -> dict:
    """One measurement at a given shape (e.g. full H&M's), on data from the fast generator
    (``generate_large``): epoch and inference time, their bounds, peak RSS and GPU memory."""

    n_users, n_items = parse_shape(args.scale_shape)
    check_fits(n_users, n_items, "--scale-shape")
    tmp = Path(tempfile.mkdtemp(prefix="ld4mrec-shape-"))
    try:
        df, features = generate_large(n_users, n_items)
        stats = write_dataset(tmp / "shape", df, features, source=f"synthetic generate_large at {n_users} x {n_items}")
        del df, features
        request = {"spec": spec, "dataset": "shape", "data_path": str(tmp) + "/",
                   "epochs": args.epochs, "settings": parse_overrides(args.set or [])}
        result = {**subprocess_measure(request), "interactions": stats["interactions"]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    gpu = f", peak GPU {result['peak_gpu_mb']:.0f} MB" if result.get("peak_gpu_mb") else ""

    def bound(key: str) -> str:  # a model without a matmul bound (EASE, Pop) has none to show
        return f" (bound {result[key]:.2f} s)" if isinstance(result.get(key), (int, float)) else ""

    text = (f"{result['model']} at {result['n_users']} users x {result['n_items']} items ({stats['interactions']} "
            f"interactions) on {result['device']}: train {result['train_seconds_per_epoch']:.2f} s/epoch"
            f"{bound('train_bound_seconds')}, full inference {result['inference_seconds']:.2f} s"
            f"{bound('inference_bound_seconds')}, peak RSS {result['peak_rss_mb']:.0f} MB{gpu}")
    return {"runs": [result], "markdown": text}


def scale_report(runs: list[dict]) -> dict:
    work = [r["n_users"] * r["n_items"] * r["embedding_size"] for r in runs]
    slopes = {"train": fit_slope(work, [r["train_seconds_per_epoch"] for r in runs]),
              "inference": fit_slope(work, [r["inference_seconds"] for r in runs])}
    memory = fit_memory(runs)
    lines = ["| x | users | items | U·I·d_e | train s/epoch | train / bound | inference s | inference / bound | "
             "peak RSS MB | predicted MB | predicted / measured |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, w in zip(runs, work):
        predicted = predict_peak_mb(memory, r)
        r["predicted_peak_mb"] = predicted
        tb = r["train_seconds_per_epoch"] / r["train_bound_seconds"] if r.get("train_bound_seconds") else math.nan
        ib = r["inference_seconds"] / r["inference_bound_seconds"] if r.get("inference_bound_seconds") else math.nan
        lines.append(f"| {r['factor']} | {r['n_users']} | {r['n_items']} | {w:.3g} | {r['train_seconds_per_epoch']:.2f} | "
                     f"{tb:.2f}x | {r['inference_seconds']:.2f} | {ib:.2f}x | {r['peak_rss_mb']:.0f} | {predicted:.0f} | "
                     f"{predicted / r['peak_rss_mb']:.2f} |")
    lines.append(f"\nlog-log slope in |U|·|I|·d_e: training {slopes['train']:.3f}, inference {slopes['inference']:.3f} "
                 "(goal 1 ± 0.15)")
    lines.append(f"memory model fitted on sizes x{memory['fitted_on'][0]} and x{memory['fitted_on'][1]}: "
                 f"R0 = {memory['base_mb']:.0f} MB, A = {memory['activation_tensors']:.2f} dense batch x item tensors "
                 "at the peak")
    return {"runs": runs, "slopes": slopes, "memory_model": memory, "markdown": "\n".join(lines)}


def subprocess_measure(request: dict) -> dict:
    """Bench's worker (``measure``) in a fresh process, so its peak RSS is this measurement's own.
    Its progress lines (``[bench] ...`` on its stderr) are passed through as they come, so a
    long measurement (full-H&M shape) shows where it is."""
    proc = subprocess.Popen([sys.executable, "-m", "mmrec_ld4mrec.study.bench", json.dumps(request)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    errors = []
    try:
        for line in proc.stderr:
            if line.startswith("[bench]"):
                print(line.rstrip(), file=sys.stderr, flush=True)
            elif line.strip():
                errors.append(line.rstrip())
        out = proc.stdout.read()
    except BaseException:  # Ctrl-C or SIGTERM: the measurement stops with this process, before its data is removed
        proc.kill()
        proc.wait()
        raise
    if proc.wait() != 0:
        raise UserInputError(f"benchmark of {request['spec']} on {request['dataset']} failed: "
                             f"{errors[-1] if errors else 'no output'}")
    return json.loads(out.strip().splitlines()[-1])
