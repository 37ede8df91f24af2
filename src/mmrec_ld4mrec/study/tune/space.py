"""Search spaces: ``configs/search/MODEL.yaml`` parsed into :class:`Dimension` objects, every
entry checked against its type and the config keys a run of the model accepts."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ...engine.config import read_yaml, validate_config
from ...errors import ConfigError, UserInputError
from ...models import MODELS, get_model
from ...resources import resource_dir

if TYPE_CHECKING:
    import optuna

KINDS = ("int", "float", "log_float", "categorical")


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``int`` / ``float`` / ``log_float`` in [low, high], or ``categorical``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.kind == "log_float")


def search_space_path(model: str) -> Path:
    """``configs/search/MODEL.yaml`` of this project."""
    return resource_dir("configs", "overall.yaml") / "search" / f"{model}.yaml"


def _number(value: Any) -> bool:
    """A finite number a float holds (a 400-digit bound is none)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value)) and abs(value) <= 2**53
    except OverflowError:
        return False


def parse_dimension(path: Path, name: str, spec: Any) -> Dimension:
    """One entry of a search-space file, checked; errors name the file and the key."""
    where = f"{path}: key '{name}'"
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where}: expected a mapping with 'type' (one of {', '.join(KINDS)}), got {spec!r}")
    kind = spec["type"]
    if kind not in KINDS:
        raise ConfigError(f"{where}: type must be one of {', '.join(KINDS)}, got {kind!r}")
    allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high"}
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ConfigError(f"{where}: unexpected field(s) {extra} for type {kind} (expected {sorted(allowed)})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: categorical needs a non-empty list 'choices', got {choices!r}")
        if any(isinstance(c, dict | list) for c in choices) and not all(isinstance(c, list) for c in choices):
            raise ConfigError(f"{where}: choices must be scalars (or all lists), got {choices!r}")
        # Optuna stores categorical choices as scalars: lists (e.g. DiffRec's dims) travel as strings
        return Dimension(name, kind, choices=tuple(yaml.safe_dump(c, default_flow_style=True).strip()
                                                   if isinstance(c, list) else c for c in choices))
    low, high = spec.get("low"), spec.get("high")
    if not _number(low) or not _number(high):
        raise ConfigError(f"{where}: {kind} needs numbers 'low' and 'high' (finite, at most 2**53), got "
                          f"low={low!r:.40}, high={high!r:.40}")
    if kind == "int" and (not isinstance(low, int) or not isinstance(high, int)):
        raise ConfigError(f"{where}: int needs integer bounds, got low={low!r}, high={high!r}")
    if not low < high:
        raise ConfigError(f"{where}: expected low < high, got low={low!r}, high={high!r}")
    if kind == "log_float" and low <= 0:
        raise ConfigError(f"{where}: log_float needs low > 0, got low={low!r}")
    return Dimension(name, kind, float(low) if kind != "int" else low, float(high) if kind != "int" else high)


def config_files(model: str, engine: str = "standalone", mmrec_root: str | Path | None = None) -> list[Path]:
    """The overall and model YAMLs a run of ``model`` reads: this project's, or with
    ``engine: mmrec`` the checkout's (where the overlay puts ours)."""
    if engine == "mmrec":
        if mmrec_root is None:
            raise UserInputError("--engine mmrec needs --mmrec-root PATH (an MMRec checkout)")
        root = Path(mmrec_root) / "src" / "configs"
    else:
        root = resource_dir("configs", "overall.yaml")
    files = [root / "overall.yaml", root / "model" / f"{model}.yaml"]
    if not files[1].is_file():
        raise ConfigError(f"no config file {files[1]} for model '{model}'")
    return files


def default_config(model: str, engine: str = "standalone", mmrec_root: str | Path | None = None,
                   dataset: str | None = None) -> dict:
    """The run's defaults before ``--set``: overall YAML, the dataset's (when there is one),
    then the model's, in the order both engines merge them."""
    overall, model_yaml = config_files(model, engine, mmrec_root)
    files = [overall, overall.parent / "dataset" / f"{dataset}.yaml", model_yaml] if dataset else [overall, model_yaml]
    merged: dict = {}
    for f in files:
        if f.is_file():
            merged.update(read_yaml(f) or {})
    return merged


def known_keys(model: str, engine: str = "standalone", mmrec_root: str | Path | None = None) -> set[str]:
    """The config keys a run of ``model`` accepts."""
    return set(default_config(model, engine, mmrec_root))


def load_space(path: Path, model: str, engine: str = "standalone", mmrec_root=None) -> list[Dimension]:
    """A search-space YAML, every entry checked against its type and the model's config keys."""
    path = Path(path)
    if os.path.lexists(path) and (path.is_dir() or not stat.S_ISREG(os.stat(path).st_mode)):
        kind = "a folder" if path.is_dir() else "not a regular file (a device or pipe)"
        raise ConfigError(f"--space {path}: is {kind}; give the search-space YAML file")
    if not path.is_file():
        raise ConfigError(f"no search space {path} for model '{model}' (write one: docs/tuning.md)")
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of config key -> search range, got {data!r}")
    keys = known_keys(model, engine, mmrec_root)
    dims = []
    for name, spec in data.items():
        if name not in keys:
            raise ConfigError(f"{path}: key '{name}' is not a config key of {model} (not in its YAML or overall.yaml)",
                              key=name)
        if name in ("seed", "hyper_parameters", "data_path", "epochs", "stopping_step"):
            raise ConfigError(f"{path}: key '{name}' is fixed by the protocol and cannot be searched", key=name)
        dims.append(parse_dimension(path, name, spec))
    _check_values(path, model, engine, mmrec_root, dims)
    return dims


def _check_values(path: Path, model: str, engine: str, mmrec_root, dims: list[Dimension]) -> None:
    """Each choice and each bound, put into the model's default config alone, passes the checks
    a run makes (the engine's keys and, for this project's models, their own): a value a run
    would refuse is refused here, before a study is created, not after five failed trials."""
    defaults = default_config(model, engine, mmrec_root)
    grid = {*(defaults.get("hyper_parameters") or []), "seed"}  # a grid axis (and the seeds): its first value
    base = {k: (v[0] if isinstance(v, list) and v and k in grid else v)
            for k, v in defaults.items()}
    base["hyper_parameters"] = []
    check = getattr(get_model(model), "check_settings", None) if engine == "standalone" and model in MODELS else None
    for dim in dims:
        values = [yaml.safe_load(c) if isinstance(c, str) and c.startswith("[") else c for c in dim.choices] \
            if dim.kind == "categorical" else [dim.low, dim.high]
        for value in values:
            config = {**base, dim.name: int(value) if dim.kind == "int" else value}
            try:
                validate_config(config)
                if check is not None:
                    check(config.get)
            except ConfigError as exc:
                raise ConfigError(f"{path}: key '{dim.name}': a run would refuse {value!r:.40} ({exc})",
                                  key=dim.name) from None
