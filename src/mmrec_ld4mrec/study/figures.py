"""The paper's figures from registry runs: the CSV behind each, and a PNG where matplotlib is
installed (the optional ``plots`` extra).

- Fig. 3: forward-free vs k-step inference of one trained model per seed (test Recall@20 /
  NDCG@20 per strategy);
- Fig. 4: robustness, each model's test metrics as false-positive noise grows;
- Fig. 5: ablations w/o PG, w/o CG, w/o SR against the full model;
- heatmap: test and validation Recall@20 over the p x gamma grid.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

METRICS = ("Recall@20", "NDCG@20")


def mean_std(records: list[dict], metric: str, split: str = "test") -> tuple[float, float, int]:
    vals = [r["result"][split][metric] for r in records if metric in r["result"][split]]
    if not vals:
        return math.nan, math.nan, 0
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals)


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if isinstance(v, float) and math.isnan(v) else f"{v:.6g}" if isinstance(v, float) else v
                    for v in row])
    return buf.getvalue()


def bars_csv(groups: dict[str, list[dict]], first: str) -> str:
    """Fig. 3 and Fig. 5: one row per strategy / variant."""
    rows = []
    for label, records in groups.items():
        row: list = [label]
        for m in METRICS:
            mean, std, n = mean_std(records, m)
            row += [mean, std]
        rows.append([*row, len(records)])
    return _csv([first, *[f"test {m} {k}" for m in METRICS for k in ("mean", "std")], "seeds"], rows)


def inference_groups(groups: dict[str, list[dict]], steps: dict[str, int]) -> dict[str, list[dict]]:
    """Fig. 3: each model's runs (each ranked its one trained best state with every strategy,
    ``inference_study``) -> one group per (model, strategy), labelled "MODEL: forward-free" or
    "MODEL: k-step" ("(T)" at the model's own number of steps ``steps[MODEL]``)."""
    out: dict[str, list[dict]] = {}
    for model, records in groups.items():
        for record in records:
            for entry in record["result"].get("inference_study", []):
                k = entry["inference_steps"]
                label = f"{model}: " + ("forward-free" if k == 0 else f"{k}-step" + (" (T)" if k == steps.get(model) else ""))
                out.setdefault(label, []).append({"result": {"valid": entry["valid"], "test": entry["test"]}})
    return out


def robustness_csv(groups: dict[tuple[str, float], list[dict]]) -> str:
    """Fig. 4: one row per (model, noise ratio), with the drop relative to the clean run."""
    rows = []
    for (model, ratio), records in groups.items():
        clean = mean_std(groups.get((model, 0.0), []), METRICS[0])[0]
        r20, _, n = mean_std(records, METRICS[0])
        n20 = mean_std(records, METRICS[1])[0]
        rows.append([model, ratio, r20, n20, r20 / clean - 1.0 if clean else math.nan, n])
    return _csv(["model", "noise_ratio", "test Recall@20", "test NDCG@20", "Recall@20 relative change vs clean", "seeds"], rows)


def heatmap_csv(groups: dict[tuple[float, float], list[dict]]) -> str:
    rows = []
    for (p, g), records in groups.items():
        rows.append([p, g, mean_std(records, METRICS[0], "valid")[0], mean_std(records, METRICS[0])[0],
                     mean_std(records, METRICS[1])[0], len(records)])
    return _csv(["soft_prob", "smooth", "valid Recall@20", "test Recall@20", "test NDCG@20", "seeds"], rows)


# ---- PNG (optional) ---------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _metric_panels():
    """(pyplot, figure, one axis per metric), or None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.2))
    return plt, fig, axes


def _save(plt, fig, path: Path, title: str | None = None) -> bool:
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plotting_available() -> bool:
    return _pyplot() is not None


def plot_bars(groups: dict[str, list[dict]], title: str, path: Path) -> bool:
    panels = _metric_panels()
    if panels is None:
        return False
    plt, fig, axes = panels
    labels = list(groups)
    for ax, m in zip(axes, METRICS):
        stats = [mean_std(groups[label], m) for label in labels]
        ax.bar(range(len(labels)), [s[0] for s in stats], yerr=[s[1] for s in stats], color="#4c72b0", capsize=3)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"test {m}", fontsize=9)
        finite = [s[0] for s in stats if not math.isnan(s[0])]
        if finite:
            ax.set_ylim(min(finite) * 0.9, max(finite) * 1.05)
    return _save(plt, fig, path, title)


def plot_robustness(groups: dict[tuple[str, float], list[dict]], title: str, path: Path) -> bool:
    panels = _metric_panels()
    if panels is None:
        return False
    plt, fig, axes = panels
    models = list(dict.fromkeys(model for model, _ in groups))
    for ax, m in zip(axes, METRICS):
        for model in models:
            points = sorted((ratio, mean_std(recs, m)[0]) for (mod, ratio), recs in groups.items() if mod == model)
            ax.plot([100 * r for r, _ in points], [v for _, v in points], marker="o", label=model)
        ax.set_xlabel("false positives added (% of training)", fontsize=8)
        ax.set_title(f"test {m}", fontsize=9)
    axes[0].legend(fontsize=7)
    return _save(plt, fig, path, title)


def plot_heatmap(groups: dict[tuple[float, float], list[dict]], title: str, path: Path) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    ps = sorted({p for p, _ in groups})
    gs = sorted({g for _, g in groups})
    grid = np.array([[mean_std(groups.get((p, g), []), METRICS[0])[0] for g in gs] for p in ps])
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    image = ax.imshow(grid, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(gs)), [f"{g:g}" for g in gs])
    ax.set_yticks(range(len(ps)), [f"{p:g}" for p in ps])
    ax.set_xlabel("γ (smooth)")
    ax.set_ylabel("p (soft_prob)")
    for i in range(len(ps)):
        for j in range(len(gs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax, label="test Recall@20")
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)
