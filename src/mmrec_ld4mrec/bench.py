"""Speed and memory of LD4MRec on the TikTok data: sparse vs dense FC_in.

Each measurement runs in a fresh subprocess (so peak RSS is that variant's own), trains
``--epochs`` epochs and times one full ranking of every user; ``--repeats`` rounds alternate
the variants, and the report gives medians and dense/sparse ratios measured in this run.
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

from .engine.checkpoint import atomic_write
from .errors import DataError
from .prepare.published import prepare_diffmm

BENCH_CONFIG = {"soft_prob": 0.01, "smooth": 0.01, "seed": [999]}


def write_tiktok_layout(src: Path, out: Path) -> Path:
    """``out/tiktok`` in MMRec's layout (``prepare diffmm``), unless it is already there."""
    target = out / "tiktok"
    if not (target / "tiktok.inter").is_file():
        prepare_diffmm(src, target)
    return target


def measure(variant: str, data_path: str, epochs: int) -> dict:
    """Train ``epochs`` epochs and time a full ranking, in this process."""
    import torch

    from .engine.config import Config
    from .engine.dataloader import TrainDataLoader
    from .engine.dataset import RecDataset
    from .engine.quick_start import init_seed, peak_rss_mb, time_full_inference
    from .engine.trainer import Trainer
    from .models import get_model

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    config = Config("LD4MRec", "tiktok", {"data_path": data_path, "sparse_input": variant == "sparse", **BENCH_CONFIG})
    config["seed"] = 999
    train_ds, _, _ = RecDataset(config).split()
    init_seed(999)
    loader = TrainDataLoader(config, train_ds, int(config["train_batch_size"]))
    model = get_model("LD4MRec")(config, loader)
    trainer = Trainer(config, model)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(loader)
        seconds.append(time.perf_counter() - start)
    return {"variant": variant, "train_seconds_per_epoch": statistics.median(seconds),
            "inference_seconds": time_full_inference(model, loader, config), "peak_rss_mb": peak_rss_mb()}


def main(args) -> int:
    src = Path(args.src)
    if not src.is_dir():
        raise DataError(f"{src}: TikTok folder not found (expected trnMat.pkl, valMat.pkl, tstMat.pkl, *_feat.npy)")
    keep = Path(args.layout) if args.layout else None
    root = keep or Path(tempfile.mkdtemp(prefix="ld4mrec-bench-"))
    try:
        write_tiktok_layout(src, root)
        runs = []
        for rep in range(args.repeats):
            for variant in ("sparse", "dense"):
                cmd = [sys.executable, "-m", "mmrec_ld4mrec.bench", variant, f"{root}/", str(args.epochs)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    raise RuntimeError(f"benchmark subprocess failed: {proc.stderr.strip()[-2000:]}")
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(f"round {rep + 1}: {variant:6s} {runs[-1]}", flush=True)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report = summarize(runs, args)
    print(report["markdown"])
    if args.out:
        atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))
    return 0


def summarize(runs: list[dict], args) -> dict:
    keys = ("train_seconds_per_epoch", "inference_seconds", "peak_rss_mb")
    med = {v: {k: statistics.median(r[k] for r in runs if r["variant"] == v) for k in keys} for v in ("sparse", "dense")}
    ratio = {k: med["dense"][k] / med["sparse"][k] for k in keys}
    lines = [f"LD4MRec on TikTok ({args.epochs} epochs x {args.repeats} rounds, medians; paper sizes d_e=1000, d_h=100)",
             "", "| FC_in | train s/epoch | full inference s | peak RSS MB |", "|---|---|---|---|"]
    for v in ("sparse", "dense"):
        lines.append(f"| {v} | {med[v][keys[0]]:.2f} | {med[v][keys[1]]:.3f} | {med[v][keys[2]]:.0f} |")
    lines.append(f"| dense / sparse | {ratio[keys[0]]:.2f}x | {ratio[keys[1]]:.2f}x | {ratio[keys[2]]:.2f}x |")
    return {"medians": med, "dense_over_sparse": ratio, "runs": runs, "markdown": "\n".join(lines)}


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
