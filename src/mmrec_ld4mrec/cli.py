"""``mmrec-ld4mrec``: run a model on a dataset (MMRec protocol) or benchmark LD4MRec."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .engine.checkpoint import atomic_write
from .engine.config import parse_value
from .errors import UserInputError

REPORT_METRICS = ("Recall@10", "Recall@20", "NDCG@10", "NDCG@20", "Precision@20", "MAP@20")


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def metrics_table(result: dict) -> str:
    names = [m for m in REPORT_METRICS if m in result["test"]]
    lines = ["split  " + "  ".join(f"{n:>12}" for n in names)]
    for split in ("valid", "test"):
        lines.append(f"{split:<5}  " + "  ".join(f"{result[split][n]:>12.4f}" for n in names))
    return "\n".join(lines)


def cmd_run(args) -> int:
    from .engine.quick_start import run

    config = parse_sets(args.set or [])
    if args.data_path:
        config["data_path"] = str(Path(args.data_path)) + "/"
    result = run(args.model, args.dataset, config, save_dir=args.save, load_dir=args.load)
    print(f"\n{args.model} on {args.dataset}: best epoch {result['best_epoch']} "
          f"({result['selection']}); {result['train_seconds_per_epoch']:.2f} s/epoch, "
          f"inference {result['inference_seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    print(metrics_table(result))
    if args.out:
        text = json.dumps(result, indent=2, default=float)
        atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {args.out}")
    return 0


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrec-ld4mrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate one model on one dataset (grid over hyper_parameters)")
    run.add_argument("-m", "--model", required=True)
    run.add_argument("-d", "--dataset", required=True)
    run.add_argument("--data-path", help="folder holding <dataset>/ (default: data_path of overall.yaml)")
    run.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="override config keys")
    run.add_argument("--out", help="write the result as JSON")
    run.add_argument("--save", metavar="DIR", help="keep the best checkpoint and the test users' top-50 CSV")
    run.add_argument("--load", metavar="DIR", help="evaluate a saved checkpoint instead of training")
    run.set_defaults(func=cmd_run)
    bench = sub.add_parser("bench", help="LD4MRec speed/memory on the TikTok data, sparse vs dense FC_in")
    bench.add_argument("--src", default="../shared/data/tiktok", help="DiffMM-format TikTok folder")
    bench.add_argument("--epochs", type=int, default=3)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--out", help="write the measurements as JSON")
    bench.add_argument("--layout", metavar="DIR", help="also write the data in MMRec layout to DIR/tiktok")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    try:
        return args.func(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
