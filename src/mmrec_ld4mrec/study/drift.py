"""Finished runs whose recorded settings today's config files no longer give.

A run's registry key hashes what an experiment file says (dataset, model, seed, overrides), not
the model's YAML defaults beneath them, so a run recorded before a config file changed (a tuned
default carried into ``configs/model/LD4MRec.yaml``, say) would otherwise be reused as if it had
run today's configuration. Every standalone run's record holds the settings it ran with; this
module compares them with the settings its spec resolves to now. MMRec runs resolve their
settings inside the MMRec checkout and are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..engine.config import Config
from ..errors import ConfigError
from .experiment import RunSpec

# Where a run happened, what the key already holds, or speed alone: never a change of what it computes.
NOT_SETTINGS = frozenset({"data_path", "device", "gpu_id", "use_gpu", "seed", "hyper_parameters", "inference_study",
                          "eval_batch_size", "cuda_graphs"})


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def settings_now(spec: RunSpec, data_path: str | None) -> dict | None:
    """The settings ``spec`` resolves to with today's config files (None for an MMRec run, or
    when its dataset's config cannot be found here)."""
    if spec.overrides.get("engine", "standalone") != "standalone":
        return None
    config = {k: v for k, v in spec.overrides.items() if k != "engine"}
    config["seed"] = spec.seed
    if data_path:
        config["data_path"] = data_path
    try:
        return Config(spec.model, spec.dataset, config).final_config_dict
    except ConfigError:
        return None


def changed_settings(recorded: dict, now: dict) -> dict[str, tuple]:
    """{key: (recorded value, value now)} over the keys both hold, but a grid's list (the
    record holds the point validation chose) and the keys of ``NOT_SETTINGS``."""
    grid = set(now.get("hyper_parameters") or [])
    changed = {}
    for key in sorted((set(recorded) & set(now)) - NOT_SETTINGS):
        old, new = _plain(recorded[key]), _plain(now[key])
        if old != new and not (key in grid and isinstance(new, list)):
            changed[key] = (old, new)
    return changed


def changed_runs(specs: Iterable[RunSpec], done: dict[str, dict], data_path: str | None) -> list[tuple[RunSpec, dict]]:
    """The finished runs among ``specs`` (records by key in ``done``) whose settings changed,
    each with its :func:`changed_settings`."""
    out = []
    for spec in specs:
        record = done.get(spec.key)
        recorded = ((record or {}).get("result") or {}).get("config")
        if not isinstance(recorded, dict):
            continue
        now = settings_now(spec, data_path)
        changed = changed_settings(recorded, now) if now is not None else {}
        if changed:
            out.append((spec, changed))
    return out


def describe(spec: RunSpec, changed: dict) -> str:
    """One line: the run, its key, and each setting as recorded → as the config files give it now."""
    parts = ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in changed.items())
    return f"{spec.label} (key {spec.key}): {parts}"
