"""The checks of a config: file and folder names built from a model or dataset name, and the
type and range of every value of the engine's own keys (``configs/overall.yaml``)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...files import check_path_name
from ..beyond_accuracy import BEYOND
from ..metrics import DISPLAY, METRICS


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def plain_name_problem(name: object, max_bytes: int = 255) -> str | None:
    """Why ``name`` cannot name one file or folder (None when it can): empty, a path
    separator or NUL in it, ``.``/``..``, or longer than ``max_bytes``."""
    if not isinstance(name, str) or not name.strip():
        return "it is empty"
    if len(os.fsencode(name)) > max_bytes:
        return f"it is {len(os.fsencode(name))} bytes long, longer than a name may be here ({max_bytes})"
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        return "it must be a plain name, without '/', '\\' or NUL, and not '.' or '..'"
    return None


def check_plain_name(what: str, flag: str, name: Any) -> str:
    """A dataset or model name is a plain file name: ``<data_path>/<name>/`` and
    ``configs/<kind>/<name>.yaml`` are built from it (:func:`plain_name_problem`)."""
    problem = plain_name_problem(name, _NAME_MAX)
    if problem == "it is empty":
        raise ConfigError(f"{what} name ({flag}) is empty")
    if problem and problem.startswith("it is "):
        raise ConfigError(f"{what} name {_shown(name, 40)} ({flag}) is {len(name)} characters long, "
                          f"too long for a file name (at most {_NAME_MAX} bytes)")
    if problem:
        names = "configs/dataset/<name>.yaml and <data_path>/<name>/" if what == "dataset" else "configs/model/<name>.yaml"
        raise ConfigError(f"{what} name {name!r} ({flag}) must be a plain name, without path separators "
                          f"or '.'/'..': it names {names}")
    return name


_NAME_MAX = 250  # a file name's 255 bytes less the ".yaml" suffix


def hyper_parameter_list(value: Any, where: str) -> list[str]:
    """``hyper_parameters``: a list of key names (a single name is a one-key list)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(f"config key 'hyper_parameters' ({where}): expected a list of key names, got {_shown(value)}",
                          key="hyper_parameters")
    return list(value)


# ---- type and range checks of the engine's own keys (configs/overall.yaml) -------------------

SEED_MAX = 2**32 - 1  # numpy's seed range
PRECISIONS = ("fp32", "bf16", "tf32")
LEARNERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop")  # the optimizers engine.trainer builds


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _name(v: Any) -> bool:
    return isinstance(v, str) and v != "" and "\0" not in v


def _optional_file(v: Any) -> bool:
    return v is None or (isinstance(v, str) and "\0" not in v)


# key -> (accepts one value, what is expected); a key listed in hyper_parameters may hold a
# non-empty list of such values (one grid axis).
SCALAR_CHECKS: dict[str, tuple[Any, str]] = {
    "epochs": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "seed": (lambda v: _is_int(v) and 0 <= v <= SEED_MAX, "an integer in [0, 2**32 - 1] (or a list of them)"),
    "train_batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "eval_batch_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "stopping_step": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "eval_step": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "test_history": (lambda v: isinstance(v, bool), "true or false"),
    "cuda_graphs": (lambda v: isinstance(v, bool), "true or false"),
    "gpu_id": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "embedding_size": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "learning_rate": (lambda v: _is_real(v) and v > 0, "a finite number > 0"),
    "weight_decay": (lambda v: _is_real(v) and v >= 0, "a finite number >= 0"),
    "train_noise_ratio": (lambda v: _is_real(v) and 0 <= v <= 10, "a number in [0, 10]"),
    "use_gpu": (lambda v: isinstance(v, bool), "true or false"),
    "filter_out_cod_start_users": (lambda v: isinstance(v, bool), "true or false"),
    "is_multimodal_model": (lambda v: isinstance(v, bool), "true or false"),
    "end2end": (lambda v: isinstance(v, bool), "true or false"),
    "use_neg_sampling": (lambda v: isinstance(v, bool), "true or false"),
    "use_full_sampling": (lambda v: isinstance(v, bool), "true or false"),
    "USER_ID_FIELD": (_name, "a column name"),
    "ITEM_ID_FIELD": (_name, "a column name"),
    "inter_splitting_label": (_name, "a column name"),
    "field_separator": (_name, "a non-empty separator string such as \"\\t\""),
    "learner": (lambda v: isinstance(v, str) and v.lower() in LEARNERS, f"one of {', '.join(LEARNERS)}"),
    "precision": (lambda v: v in PRECISIONS, "one of fp32, bf16, tf32"),
    "data_path": (lambda v: isinstance(v, str) and "\0" not in v, "a folder path"),
    "inter_file_name": (_optional_file, "a file name"),
    "vision_feature_file": (_optional_file, "a file name, or '' for none"),
    "text_feature_file": (_optional_file, "a file name, or '' for none"),
}
GRID_KEYS = {"epochs", "seed", "train_batch_size", "stopping_step", "embedding_size", "learning_rate", "weight_decay",
             "train_noise_ratio", "use_neg_sampling", "use_full_sampling"}  # keys a grid search may sensibly vary
_CLIP_KEYS = {"max_norm", "norm_type", "error_if_nonfinite", "foreach"}


def _check_once(key: str, values: list, same=lambda v: v) -> None:
    """Each value of a list once: a repeated seed, cut-off or metric would run or count twice."""
    seen = []
    for v in values:
        if same(v) in seen:
            raise ConfigError(f"config key '{key}': {_shown(v, 30)} appears more than once in {_shown(values)}; "
                              "give each value once", key=key)
        seen.append(same(v))


def _check_scalar(cfg: dict, key: str, ok, expected: str, hyper: list[str]) -> None:
    value = cfg[key]
    if isinstance(value, list) and key in hyper:
        if not value:
            raise ConfigError(f"config key '{key}': an empty list of values to search over (hyper_parameters)", key=key)
        bad = [v for v in value if not ok(v)]
        if bad:
            raise ConfigError(f"config key '{key}': expected each value to be {expected}, got {_shown(bad[0])}", key=key)
        _check_once(key, value)
        return
    if not ok(value):
        hint = "; a list of values is searched over only when the key is in hyper_parameters" \
            if isinstance(value, list) and key in GRID_KEYS else ""
        raise ConfigError(f"config key '{key}': expected {expected}, got {_shown(value)}{hint}", key=key)


def _check_topk(cfg: dict) -> list[int]:
    topk = cfg["topk"]
    if _is_int(topk):
        topk = [topk]
    if not isinstance(topk, list) or not topk or not all(_is_int(k) and k >= 1 for k in topk):
        raise ConfigError(f"config key 'topk': expected a non-empty list of integers >= 1 such as [10, 20], "
                          f"got {_shown(cfg['topk'])}", key="topk")
    _check_once("topk", topk)
    cfg["topk"] = topk
    return topk


def _check_metrics(cfg: dict) -> list[str]:
    metrics = cfg["metrics"]
    if isinstance(metrics, str):
        metrics = [metrics]
    known = [*DISPLAY.values(), *BEYOND.values()]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and (m.lower() in METRICS
                                                                                       or m.lower() in BEYOND)
                                                               for m in metrics):
        raise ConfigError(f"config key 'metrics': expected a non-empty list of some of {known}, got {_shown(cfg['metrics'])}",
                          key="metrics")
    _check_once("metrics", metrics, str.lower)
    cfg["metrics"] = metrics
    return metrics


def _check_valid_metric(cfg: dict, metrics: list[str] | None, topk: list[int] | None) -> None:
    value = cfg["valid_metric"]
    match = re.fullmatch(r"\s*([A-Za-z]+)@(\d+)\s*", value) if isinstance(value, str) else None
    names = [m.lower() for m in (metrics or []) if m.lower() in METRICS]  # chosen on accuracy, not on coverage
    if match is None or match.group(1).lower() not in names or (topk is not None and int(match.group(2)) not in topk):
        accuracy = [m for m in metrics or [] if m.lower() in METRICS]
        options = f"METRIC one of the accuracy metrics {accuracy} and K one of topk {topk}" if metrics else "a known metric"
        raise ConfigError(f"config key 'valid_metric': expected METRIC@K with {options} (e.g. Recall@20), "
                          f"got {_shown(value)}", key="valid_metric")
    cfg["valid_metric"] = f"{DISPLAY[match.group(1).lower()]}@{int(match.group(2))}"


def _non_finite(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is, or holds (lists, mappings), a float that is NaN or infinite."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth < 8 and isinstance(value, (list, tuple)):
        return any(_non_finite(v, depth + 1) for v in value)
    if depth < 8 and isinstance(value, dict):
        return any(_non_finite(v, depth + 1) for v in value.values())
    return False


def validate_config(cfg: dict) -> None:
    """Refuse, with the key's name, a value of the engine's own keys (``configs/overall.yaml``)
    of the wrong type or out of range; normalise ``topk`` (a scalar becomes a one-item list),
    ``metrics`` (likewise) and the case of ``valid_metric`` (``recall@20`` -> ``Recall@20``)."""
    hyper = cfg.get("hyper_parameters") or []
    for key in hyper:
        if key not in cfg:
            raise ConfigError(f"hyper_parameters names '{key}', which no config file sets", key=key)
        if isinstance(cfg[key], list) and not cfg[key]:
            raise ConfigError(f"config key '{key}': an empty list of values to search over (hyper_parameters)", key=key)
    for key, value in cfg.items():  # NaN or infinity is no setting of any key: it runs to a meaningless end
        if _non_finite(value):
            raise ConfigError(f"config key '{key}': expected finite numbers, got {_shown(value)}", key=key)
    for key, (ok, expected) in SCALAR_CHECKS.items():
        if key in cfg:
            _check_scalar(cfg, key, ok, expected, hyper)
    topk = _check_topk(cfg) if "topk" in cfg else None
    metrics = _check_metrics(cfg) if "metrics" in cfg else None
    if "valid_metric" in cfg:
        _check_valid_metric(cfg, metrics, topk)
    extra = cfg.get("extra_feature_files")
    if extra is not None and (not isinstance(extra, list) or not all(_name(n) for n in extra)):
        raise ConfigError(f"config key 'extra_feature_files': expected a list of file names, got {_shown(extra)}",
                          key="extra_feature_files")
    schedule = cfg.get("learning_rate_scheduler")
    if schedule is not None and not (isinstance(schedule, (list, tuple)) and len(schedule) == 2
                                     and all(_is_real(v) and v > 0 for v in schedule)):
        raise ConfigError("config key 'learning_rate_scheduler': expected [factor, period], two numbers > 0 "
                          f"(the rate is multiplied by factor every period epochs), got {_shown(schedule)}",
                          key="learning_rate_scheduler")
    clip = cfg.get("clip_grad_norm")
    if clip is not None and not (isinstance(clip, dict) and set(clip) <= _CLIP_KEYS and _is_real(clip.get("max_norm"))
                                 and clip["max_norm"] > 0):
        raise ConfigError("config key 'clip_grad_norm': expected null or a mapping such as {max_norm: 5, norm_type: 2} "
                          f"(keys: {sorted(_CLIP_KEYS)}), got {_shown(clip)}", key="clip_grad_norm")
    _check_data_path(cfg.get("data_path"))


def _check_data_path(data_path: Any) -> None:
    """``data_path`` is a folder, or does not exist yet; a file there (or above) is refused."""
    if not isinstance(data_path, str) or not data_path:
        return
    path = Path(data_path)
    check_path_name(path, "config key 'data_path' (--data-path)")
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            if not candidate.is_dir():
                raise ConfigError(f"config key 'data_path' (--data-path) {data_path}: {candidate} is not a folder; "
                                  "it must name the folder holding <dataset>/", key="data_path")
            return
