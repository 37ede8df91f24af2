"""Finished runs whose recorded settings today's config files no longer give.

A run's registry key hashes what an experiment file says (dataset, model, seed, overrides), not
the model's YAML defaults beneath them, so a run recorded before a config file changed (a tuned
default carried into ``configs/model/LD4MRec.yaml``, say) would otherwise be reused as if it had
run today's configuration. Every standalone run's record holds the settings it ran with; this
module compares them with the settings its spec resolves to now, as the model reads them:

* LD4MRec's family is compared through its validated settings (``LD4MRec.resolved_settings``), so a key
  a record predates counts as the behaviour before it: the code's default, since new switches
  arrive off, except where ``BEFORE_KEYS`` says otherwise (the randomized SVD's oversampling
  and power iterations arrived with new values). The item graph is off on a dataset without
  item features (as the model turns it off), and its weight does not count while it is off.
* Other models are compared on the keys both sides hold: a key added to their config files
  after a run was recorded is not seen.
* MMRec runs resolve their settings inside the MMRec checkout and are not compared.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Protocol

from ..engine.config import Config
from ..errors import ConfigError
from ..models.ld4mrec import LD4MRec
from .inference_study import KEY as INFERENCE_STUDY


class Run(Protocol):
    """What is read of a run's spec (``experiment.RunSpec``; not imported: it imports `tune`)."""

    dataset: str
    model: str
    seed: int
    overrides: dict
    key: str
    label: str


# Where a run happened, what the key already holds, speed and logging alone, or which figures
# are reported of its ranking (metrics: the chosen epoch hangs on valid_metric): never a change
# of what it computes.
NOT_SETTINGS = frozenset({"data_path", "device", "gpu_id", "use_gpu", "seed", "hyper_parameters", "inference_study",
                          "eval_batch_size", "cuda_graphs", "test_history", "metrics"})
LD4MREC_FAMILY = ("LD4MRec", "LD4MRecPaper")
# LD4MRec keys that arrived with a value other than the behaviour before them: a record
# without the key ran this (6dbd0e2: the SVD had q test vectors and 4 power iterations).
BEFORE_KEYS = {"svd_oversampling": 0, "svd_power_iterations": 4}


def plain(value):
    """``value`` in the JSON form a registry record or a study stores."""
    return json.loads(json.dumps(value, default=str))


def settings_now(model: str, dataset: str, seed: int, overrides: dict, data_path: str | None) -> dict | None:
    """The settings a run resolves to with today's config files (None for an MMRec run, or when
    its dataset's config cannot be found here)."""
    if overrides.get("engine", "standalone") != "standalone":
        return None
    config = {k: v for k, v in overrides.items() if k not in ("engine", INFERENCE_STUDY)}
    config["seed"] = seed
    if data_path:
        config["data_path"] = data_path
    try:
        return Config(model, dataset, config).final_config_dict
    except ConfigError:
        return None


def _as_run(model: str, config: dict) -> dict:
    """``config`` as the model reads it (see the module's docstring); unchanged where its
    settings cannot be read (a grid's list, a value today's checks refuse)."""
    if model not in LD4MREC_FAMILY:
        return config
    try:
        s = LD4MRec.resolved_settings({**BEFORE_KEYS, **config})
    except (ConfigError, TypeError, ValueError):
        return config
    if s.item_graph_k == 0 and "item_graph_k" in config:  # a graph configured off (not a key left out)
        s = dataclasses.replace(s, item_graph_weight=type(s)().item_graph_weight)  # the default: unread
    settings = dataclasses.asdict(s)
    return {**{k: v for k, v in config.items() if k not in settings}, **settings}


def changed_settings(recorded: dict, now: dict, model: str = "") -> dict[str, tuple]:
    """{key: (recorded value, value now)}: the settings ``model`` reads that differ, but the keys
    of ``NOT_SETTINGS``; a grid's list (today's files) matches a record holding one of its points."""
    now = dict(now)
    for key in now.get("hyper_parameters") or []:
        if isinstance(now.get(key), list) and plain(recorded.get(key)) in plain(now[key]):
            now[key] = recorded[key]
    recorded, now = _as_run(model, recorded), _as_run(model, now)
    changed = {}
    for key in sorted((set(recorded) & set(now)) - NOT_SETTINGS):
        old, new = plain(recorded[key]), plain(now[key])
        if old != new:
            changed[key] = (old, new)
    return changed


def changed_runs(specs: Iterable[Run], done: dict[str, dict], data_path: str | None) -> list[tuple[Run, dict]]:
    """The finished runs among ``specs`` (records by key in ``done``) whose settings changed,
    each with its :func:`changed_settings`."""
    out = []
    for spec in specs:
        record = done.get(spec.key)
        recorded = ((record or {}).get("result") or {}).get("config")
        if not isinstance(recorded, dict):
            continue
        now = settings_now(spec.model, spec.dataset, spec.seed, spec.overrides, data_path)
        changed = changed_settings(recorded, now, spec.model) if now is not None else {}
        if changed:
            out.append((spec, changed))
    return out


def describe(spec: Run, changed: dict) -> str:
    """One line: the run, its key, and each setting as recorded → as the config files give it now."""
    parts = ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in changed.items())
    return f"{spec.label} (key {spec.key}): {parts}"
