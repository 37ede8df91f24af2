"""The table of docs/model-quality.md's content-switch screen: each variant's validation
Recall@20 / NDCG@20 per tuning seed (the best epoch's, as early stopping chose it), mean ± std,
and its paired difference from a reference variant (``base`` unless ``--against`` names
another) on the seeds both finished. Test metrics are not read.
    python experiments/content_switches_table.py [FOLDER] [--against VARIANT]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def main(folder: Path, against: str = "base") -> None:
    runs: dict[str, dict[int, dict]] = {}
    for path in sorted(folder.glob("tiktok-*-s*.json")):
        match = re.fullmatch(r"tiktok-(.+)-s(\d+)", path.stem)
        if match is None:
            raise SystemExit(f"{path}: expected a name tiktok-VARIANT-sSEED.json")
        variant, seed = match.groups()
        result = json.loads(path.read_text())
        runs.setdefault(variant, {})[int(seed)] = {"r": result["valid"]["Recall@20"], "n": result["valid"]["NDCG@20"],
                                                   "epoch": result["best_epoch"],
                                                   "s": result["train_seconds_per_epoch"]}
    fmt = lambda xs: f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"  # noqa: E731
    if against not in runs:
        raise SystemExit(f"--against {against}: no runs named tiktok-{against}-sSEED.json in {folder}")
    print(f"| variant | seeds | valid R@20 per seed | valid R@20 | valid N@20 | Δ R@20 vs {against} (paired) "
          "| best epochs | s/epoch |")
    print("|---|---|---|---|---|---|---|---|")
    base = runs[against]
    for variant, by_seed in sorted(runs.items(), key=lambda kv: kv[0] != against):
        seeds = sorted(by_seed)
        r = [by_seed[s]["r"] for s in seeds]
        n = [by_seed[s]["n"] for s in seeds]
        shared = [s for s in seeds if s in base]
        delta = [by_seed[s]["r"] - base[s]["r"] for s in shared]
        d = "" if variant == against or not delta else (fmt(delta) if len(delta) > 1 else f"{delta[0]:+.4f}")
        print(f"| {variant} | {', '.join(map(str, seeds))} | {' / '.join(f'{x:.4f}' for x in r)} | {fmt(r)} | {fmt(n)} "
              f"| {d} | {', '.join(str(by_seed[s]['epoch']) for s in seeds)} "
              f"| {statistics.mean(by_seed[s]['s'] for s in seeds):.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("experiments/results/content-switches"))
    parser.add_argument("--against", default="base", help="the variant each difference is paired against")
    args = parser.parse_args()
    main(args.folder, args.against)
