"""A run's result, one type for both engines: every grid point's outcome, the point chosen on
**validation** (MMRec's own ``quick_start`` reports the point with the best test score), and the
JSON that ``run --out``, the registry and the reports read.

Each engine trains its points its own way (the standalone ``Trainer`` here, MMRec's ``Trainer``
inside a checkout); :func:`run_grid` walks the grid for both and :class:`RunResult` selects and
writes the result."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class PointResult:
    """One grid point trained to its best-validation epoch."""

    point: dict
    best_epoch: int
    epochs_run: int
    valid: dict
    test: dict
    train_seconds_per_epoch: float
    inference_seconds: float
    config: dict  # the resolved configuration this point ran with
    resumed_from_epoch: int | None = None  # where a run stopped part-way went on from its snapshot
    extra: dict = field(default_factory=dict)  # engine-specific fields of the result (history, Fig. 3's study)


@dataclass
class RunResult:
    model: str
    dataset: str
    valid_metric: str
    points: list[PointResult]
    peak_rss_mb: float
    engine: str | None = None  # None: the standalone engine (the key is left out, as before)
    extra: dict = field(default_factory=dict)  # engine-specific top-level fields

    @property
    def best(self) -> PointResult:
        """The grid point with the best ``valid_metric`` on validation (the first of equals)."""
        return max(self.points, key=lambda p: p.valid.get(self.valid_metric, -1.0))

    def to_dict(self) -> dict:
        best = self.best
        return {
            "model": self.model,
            "dataset": self.dataset,
            **({"engine": self.engine} if self.engine else {}),
            "config": best.config,
            "hyper_parameters": best.point,
            "best_epoch": best.best_epoch,
            "epochs_run": best.epochs_run,
            "valid": best.valid,
            "test": best.test,
            "train_seconds_per_epoch": best.train_seconds_per_epoch,
            "inference_seconds": best.inference_seconds,
            "peak_rss_mb": self.peak_rss_mb,
            **self.extra,
            "selection": f"best {self.valid_metric} on validation across {len(self.points)} grid point(s)",
            "grid": [{"point": p.point, "best_epoch": p.best_epoch, "valid": p.valid, "test": p.test}
                     for p in self.points],
            **best.extra,
            **({"resumed_from_epoch": best.resumed_from_epoch} if best.resumed_from_epoch is not None else {}),
        }


def run_grid(points: list[dict], fit_point: Callable[[int, dict], PointResult], what: str) -> list[PointResult]:
    """Train every grid point in order (``fit_point(index, point)``), each logged as ``what`` runs it."""
    results = []
    for idx, point in enumerate(points):
        log.info("run %d/%d of %s: %s", idx + 1, len(points), what, point)
        results.append(fit_point(idx, point))
    return results


def resumable(snapshot: str | Path | None, points: int, loading: bool = False) -> str | Path | None:
    """``snapshot`` where it can resume the run: one grid point that trains. Elsewhere None, with
    a warning naming why (both engines apply this rule)."""
    if snapshot is not None and (loading or points != 1):
        log.warning("%s: a snapshot resumes one training run; this one (%d grid points%s) is not resumable",
                    snapshot, points, ", --load" if loading else "")
        return None
    return snapshot
