"""``mmrec-ld4mrec bench``: training seconds per epoch, full-inference seconds and peak memory
of several models on one dataset, measured side by side.

Each measurement runs in a fresh subprocess (so peak RSS is that model's own): it builds the
model, trains ``--epochs`` epochs and times one full ranking of every user (top-k, training
items masked). ``--repeats`` rounds cycle through the models; the report gives medians and
every figure as a ratio to the first model, measured in the same run. A model may carry
overrides: ``LD4MRec:input_dropout=0.5``, ``DiffRec:steps=5``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..data.published import prepare_diffmm
from ..engine.config import Config, parse_overrides, parse_value, settings_per_model
from ..engine.dataloader import TrainDataLoader
from ..engine.dataset import RecDataset
from ..engine.quick_start import init_seed, peak_rss_mb, time_full_inference
from ..engine.trainer import Trainer
from ..errors import UserInputError
from ..files import atomic_write, check_output_file
from ..models import get_model
from ..models.diffrec import DiffRec
from ..models.ld4mrec import LD4MRec
from .scale import run_scale_study, run_shape, subprocess_measure

METRICS = ("train_seconds_per_epoch", "inference_seconds", "peak_rss_mb")
# One grid point for models whose YAML holds a grid: the paper's p = gamma = 0.01 for LD4MRec.
FIXED = {"LD4MRecPaper": {"soft_prob": 0.01, "smooth": 0.01}, "EASE": {"reg_weight": 250.0}}


def split_specs(text: str) -> list[str]:
    """``-m`` of bench: specs separated by commas outside brackets, so that
    ``LD4MRec,DiffRec:dims=[600,200]`` is two models."""
    specs, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            specs.append(current)
            current = ""
        else:
            current += char
    return [s.strip() for s in [*specs, current] if s.strip()]


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

    name, overrides = parse_spec(request["spec"])
    began = time.perf_counter()

    def progress(what: str) -> None:  # to stderr, which the parent passes through
        print(f"[bench] {request['spec']}: {what} ({time.perf_counter() - began:.1f} s)", file=sys.stderr, flush=True)

    config = Config(name, request["dataset"], {"data_path": request["data_path"], **FIXED.get(name, {}),
                                               **request["settings"], **overrides})
    for key in config["hyper_parameters"]:  # a grid left in the YAML: take its first point
        if isinstance(config[key], list):
            config[key] = config[key][0]
    init_seed(int(config["seed"]))
    train_ds, _, _ = RecDataset(config).split()
    loader = TrainDataLoader(config, train_ds, int(config["train_batch_size"]))
    loader.pretrain_setup()
    progress(f"data read, {len(train_ds)} training interactions")
    start = time.perf_counter()
    model = get_model(name)(config, loader)
    build = time.perf_counter() - start
    progress(f"model built on {config['device']}")
    trainer = Trainer(config, model)
    seconds = []
    on_gpu = torch.device(config["device"]).type == "cuda"
    for _ in range(request["epochs"] if getattr(model, "needs_training", True) else 0):
        start = time.perf_counter()
        trainer.train_epoch(loader)
        if on_gpu:
            torch.cuda.synchronize(config["device"])
        seconds.append(time.perf_counter() - start)
        progress(f"epoch {len(seconds)}: {seconds[-1]:.3f} s")
    if on_gpu:  # a GPU's first ranking pays one-off costs (kernel plans, clocks): warm up, take a median
        time_full_inference(model, loader, config)
        inference = statistics.median(time_full_inference(model, loader, config) for _ in range(3))
    else:
        inference = time_full_inference(model, loader, config)
    result = {"model": request["spec"], "build_seconds": build,
              "train_seconds_per_epoch": statistics.median(seconds) if seconds else 0.0,
              "inference_seconds": inference, "peak_rss_mb": peak_rss_mb(),
              "inference_timing": "median of 3 after a warm-up" if on_gpu else "one call"}
    result.update(bounds(model, int(config["train_batch_size"]), int(config["eval_batch_size"]), model.n_users,
                         train=bool(seconds), device=config["device"],
                         dtype=torch.bfloat16 if config["precision"] == "bf16" else torch.float32))
    # whether the epochs ran as captured CUDA graphs (a failed capture falls back to eager steps)
    result["cuda_graphs"] = bool(trainer.graphs is not None and trainer.graphs.graphs and not trainer.graphs.failed)
    if type(model).__name__ == "DiffRec":
        result["diffusion_steps"] = model.steps
    result["device"] = torch.cuda.get_device_name(config["device"]) if on_gpu else f"CPU ({os.cpu_count()} cores)"
    result["peak_gpu_mb"] = torch.cuda.max_memory_allocated(config["device"]) / 2 ** 20 if on_gpu else None
    # what the caching allocator held, CUDA graphs' private pools included (allocated counts live tensors)
    result["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved(config["device"]) / 2 ** 20 if on_gpu else None
    result.update({"n_users": model.n_users, "n_items": model.n_items, "batch": int(config["train_batch_size"]),
                   "eval_batch": int(config["eval_batch_size"]),
                   "embedding_size": config["embedding_size"], "parameters": sum(p.numel() for p in model.parameters()),
                   "buffer_floats": sum(b.numel() for b in model.buffers())})
    return result


def matmul_seconds(m: int, k: int, n: int, device, repeats: int = 3, dtype=torch.float32) -> float:
    """Median seconds of one dense product [m, k] @ [k, n] in ``dtype`` on ``device``, after a warm-up.

    On a GPU one product at the model's shapes lasts about as long as its launch, so each timing
    covers ``10`` products back to back between CUDA events (and the warm-up runs enough of them
    to lift the clocks from idle); on a CPU each timing is one product."""
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    if torch.device(device).type == "cuda":
        inner = 10
        for _ in range(3 * inner):
            torch.mm(a, b)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                torch.mm(a, b)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0 / inner)
        return statistics.median(times)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        torch.mm(a, b)
        if i:  # the first is the warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_shapes(model, batch: int) -> dict[str, list[tuple[int, int, int]]] | None:
    """The dense products (m, k, n) that bound a training step on ``batch`` users and an
    inference pass over ``batch`` users, for the models whose cost they dominate (None for others).

    LD4MRec: FC_in forward on the dense corrupted rows and its weight gradient, FC_out forward,
    weight and input gradient; forward-free inference is FC_out alone (FC_in is a sparse
    product), k-step inference k passes with a dense FC_in. Left out: the item graph's sparse
    products (``item_graph_k``: about k |I| min(B, d) multiply-adds per modality each, under a
    tenth of a dense product's |I| B d at k = 10). DiffRec: each layer's forward, weight gradient
    and (past the first) input gradient; inference runs every layer forward once per reverse step."""
    if isinstance(model, LD4MRec):
        n_items, d = model.n_items, model.settings.embedding_size
        train = [(batch, n_items, d), (n_items, batch, d), (batch, d, n_items), (n_items, batch, d), (batch, n_items, d)]
        k = model.settings.inference_steps
        infer = [(batch, d, n_items)] if k == 0 else [(batch, n_items, d), (batch, d, n_items)] * k
        return {"train": train, "inference": infer}
    if isinstance(model, DiffRec):
        layers = [(layer.in_features, layer.out_features) for layer in [*model.denoiser.encoder, *model.denoiser.decoder]]
        train = []
        for i, (a, b) in enumerate(layers):
            train += [(batch, a, b), (a, batch, b)] + ([(batch, b, a)] if i else [])
        return {"train": train, "inference": [(batch, a, b) for a, b in layers] * model.steps}
    return None


def bounds(model, batch: int, eval_batch: int, n_users: int, train: bool, device, dtype=torch.float32) -> dict:
    """The machine's own bound for this model, measured here, in this process: its dense
    products (:func:`matmul_shapes`) timed at its shapes and precision (bfloat16 with
    ``precision: bf16``), times the batches of an epoch
    (every user once, ``batch`` at a time) and of a full ranking (``eval_batch`` at a time)."""
    if matmul_shapes(model, 1) is None:
        return {"train_bound_seconds": None, "inference_bound_seconds": None, "matmul_gflops": None}
    out, flops, secs = {}, 0.0, 0.0
    for phase, size, field in (("train", batch, "train_bound_seconds"), ("inference", eval_batch, "inference_bound_seconds")):
        products = matmul_shapes(model, size)[phase]
        timed = {s: matmul_seconds(*s, device=device, dtype=dtype) for s in set(products)}
        per_batch = sum(timed[s] for s in products)
        out[field] = per_batch * n_users / size if (phase == "inference" or train) else None
        flops += sum(2.0 * m * k * n for m, k, n in products)
        secs += per_batch
    out["matmul_gflops"] = flops / secs / 1e9  # the rate at the model's shapes
    return out


BOUNDS = ("train_bound_seconds", "inference_bound_seconds", "matmul_gflops")


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _cell(value: float | None, fmt: str, unit: str = "") -> str:
    return "—" if value is None else format(value, fmt) + unit


def summarize(runs: list[dict], specs: list[str], header: str) -> dict:
    """Medians per model; every figure as a ratio to the first model and to the machine's own
    bound measured in the same process; LD4MRec / DiffRec where DiffRec is among the models."""
    med = {s: {k: _median([r.get(k) for r in runs if r["model"] == s]) for k in (*METRICS, *BOUNDS)} for s in specs}
    steps = {s: next((r.get("diffusion_steps") for r in runs if r["model"] == s), None) for s in specs}
    base = med[specs[0]]
    ratio = {s: {k: (med[s][k] / base[k] if base[k] else float("nan")) for k in METRICS} for s in specs}
    to_bound = {s: {"train": _ratio(med[s]["train_seconds_per_epoch"], med[s]["train_bound_seconds"]),
                    "inference": _ratio(med[s]["inference_seconds"], med[s]["inference_bound_seconds"])} for s in specs}
    lines = [header, "",
             "| model | train s/epoch | train bound s | train / bound | full inference s | inference bound s | "
             f"inference / bound | matmul GFLOP/s | peak RSS MB | train vs {specs[0]} | inference vs {specs[0]} |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in specs:
        m, r, b = med[s], ratio[s], to_bound[s]
        lines.append(f"| {s} | {m['train_seconds_per_epoch']:.2f} | {_cell(m['train_bound_seconds'], '.2f')} | "
                     f"{_cell(b['train'], '.2f', 'x')} | {m['inference_seconds']:.2f} | "
                     f"{_cell(m['inference_bound_seconds'], '.2f')} | {_cell(b['inference'], '.2f', 'x')} | "
                     f"{_cell(m['matmul_gflops'], '.0f')} | {m['peak_rss_mb']:.0f} | {r['train_seconds_per_epoch']:.3f}x | "
                     f"{r['inference_seconds']:.3f}x |")
    versus = {}
    for s in specs[1:]:
        if s.startswith("DiffRec"):
            inv = {k: (base[k] / med[s][k] if med[s][k] else float("nan")) for k in METRICS}
            versus[s] = {"train": inv["train_seconds_per_epoch"], "inference": inv["inference_seconds"],
                         "diffusion_steps": steps[s]}
            target = f"1/{steps[s]} = {1 / steps[s]:.3f}" if steps[s] else "1/T_D"
            lines.append(f"\n{specs[0]} / {s}: training s/epoch {inv['train_seconds_per_epoch']:.3f} (target <= 1.0), "
                         f"full inference {inv['inference_seconds']:.3f} (target <= {target}: one LD4MRec pass costs "
                         "no more than one DiffRec reverse step)")
    return {"medians": med, "ratio_to_first": ratio, "ratio_to_bound": to_bound, "versus_diffrec": versus,
            "runs": runs, "markdown": "\n".join(lines)}


def main(args) -> int:
    """``bench``: every argument and the ``--out`` path checked before anything is measured."""
    for option, value in (("--epochs", args.epochs), ("--repeats", args.repeats)):
        if value < 1:
            raise UserInputError(f"{option}: expected an integer >= 1, got {value}")
    if args.out:
        check_output_file(args.out, "--out")
    specs = split_specs(args.models)
    if not specs:
        raise UserInputError("-m/--models expects a comma-separated list, e.g. LD4MRec,DiffRec")
    for spec in specs:
        parse_spec(spec)
    settings = parse_overrides(args.set or [])
    sizing = [flag for flag, value in (("--scale-users", args.scale_users), ("--scale-items", args.scale_items),
                                       ("--scale-factors", args.scale_factors)) if value is not None]
    if sizing and (not args.scale or args.scale_shape):
        raise UserInputError(f"{', '.join(sizing)}: only size the --scale study; "
                             + ("--scale-shape gives its own shape" if args.scale_shape else "add --scale"))
    if args.scale or args.scale_shape:
        report = run_shape(args, specs[0]) if args.scale_shape else run_scale_study(args, specs[0])
        print("\n" + report["markdown"])
        if args.out:
            atomic_write(Path(args.out), lambda p: Path(p).write_text(json.dumps(report, indent=2)))
        return 0
    tmp = None
    data_path = args.data_path
    if data_path is None:
        if args.dataset != "tiktok":
            raise UserInputError(f"--data-path DIR is needed for {args.dataset!r} (DIR/{args.dataset}/ in MMRec layout)")
        tmp = Path(tempfile.mkdtemp(prefix="ld4mrec-bench-"))
    runs = []
    try:
        if tmp is not None:  # inside the try: a bad --src leaves no temporary folder behind
            prepare_diffmm(Path(args.src), tmp / "tiktok")
            data_path = str(tmp)
        data_path = str(Path(data_path).resolve()) + "/"
        per_model = settings_per_model([parse_spec(s)[0] for s in specs], args.dataset, settings, data_path)
        for rep in range(args.repeats):
            for spec in specs:
                request = {"spec": spec, "dataset": args.dataset, "data_path": data_path,
                           "epochs": args.epochs, "settings": per_model[parse_spec(spec)[0]]}
                runs.append(subprocess_measure(request))
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
    try:
        print(json.dumps(measure(json.loads(sys.argv[1]))))
    except UserInputError as exc:  # a bad setting at this size: its message, not a traceback, goes back
        print(exc, file=sys.stderr)
        sys.exit(2)
