"""What a study is asked to do (:class:`TuneRequest`), the tuning seeds, the pruner's warm-up,
and the settings one trial runs with."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from ...errors import ConfigError
from .space import Dimension


@dataclass
class TuneRequest:
    """One study: model and dataset, budget and storage, fixed settings, seeds and search space, and
    how its workers beat, retry and snapshot."""

    model: str
    dataset: str
    trials: int
    storage: str
    study_name: str
    settings: dict
    seeds: list[int]
    space: list[Dimension]
    engine: str = "standalone"
    mmrec_root: str | None = None
    sampler_seed: int = 0
    warmup_epochs: int = 20
    startup_trials: int = 5
    heartbeat_seconds: float = 30.0
    grace_seconds: float = 120.0
    max_failures: int = 5
    snapshot_dir: str | None = None  # where trials save their training state (None: trials restart from epoch 0)
    snapshot_every: float = 120.0


TUNING_SEED_BASE = 1000


def tuning_seeds(count: int) -> list[int]:
    """Seeds 1001..1000+count: a trial's seeds, apart from the seeds a reproduction reports."""
    return list(range(TUNING_SEED_BASE + 1, TUNING_SEED_BASE + count + 1))


def patience_epochs(settings: dict, defaults: dict) -> int:
    """Epochs of early stopping's patience, ``stopping_step`` x ``eval_step``: the pruner's warm-up.

    Both engines report the 0-based epoch of each evaluation and Optuna prunes from step
    ``warm-up`` on, so a trial is never pruned in its first ``stopping_step`` evaluations;
    early stopping itself can end a trial at evaluation ``stopping_step + 2`` at the earliest,
    one evaluation after pruning may start."""
    def value(key: str) -> int:
        raw = settings.get(key, defaults.get(key))
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
            raise ConfigError(f"{key}: expected an integer >= 1 for the pruner's warm-up, got {raw!r}")
        return raw
    return value("stopping_step") * value("eval_step")


def trial_settings(request: TuneRequest, params: dict, seed: int) -> dict:
    """A trial's run config: ``--set`` values, the trial's parameters, one seed, no YAML grid."""
    values = {}
    for dim in request.space:
        value = params[dim.name]
        if dim.kind == "categorical" and isinstance(value, str) and value.startswith("["):
            value = yaml.safe_load(value)
        values[dim.name] = value
    return {**request.settings, **values, "seed": seed, "hyper_parameters": []}
