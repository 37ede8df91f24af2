"""MMRec-style configuration: overall -> dataset -> model YAML -> command line.

``hyper_parameters`` lists are concatenated across the files (as MMRec does) and ``seed``
always takes part in the grid. Command-line keys must exist in one of the files, so a typo
stops the run instead of being ignored.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import ConfigError, UserInputError
from ..resources import resource_dir


def _yaml_loader():
    """A safe loader that also reads 1e-4 (not only 1.0e-4) as a float, like MMRec's."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."),
    )
    return Loader


YAML_LOADER = _yaml_loader()


def parse_value(text: str) -> Any:
    """A command-line value, read as YAML (``0.01``, ``[1, 2]``, ``true``, ``tanh``)."""
    try:
        return yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError:
        return text


def parse_overrides(items: list[str]) -> dict:
    """``--set key=value ...`` as a dict of config overrides, each value read by ``parse_value``."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserInputError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def configs_root() -> Path:
    """``configs/`` of a source checkout (editable install) or of the installed data files."""
    return resource_dir("configs", "overall.yaml")


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return data


class Config:
    """``config[key]`` returns the value or None (MMRec's behaviour)."""

    def __init__(self, model: str, dataset: str, config_dict: dict | None = None, root: Path | None = None):
        root = root or configs_root()
        files = [root / "overall.yaml", self._dataset_yaml(root, dataset, config_dict or {}),
                 root / "model" / f"{model}.yaml"]
        for f in files[1:]:
            if not f.is_file():
                known = sorted(p.stem for p in f.parent.glob("*.yaml"))
                raise ConfigError(f"no config file {f}; known {f.parent.name}s: {', '.join(known)}")
        merged: dict[str, Any] = {}
        hyper: list[str] = []
        for f in files:
            data = read_yaml(f)
            hyper.extend(data.pop("hyper_parameters", None) or [])
            merged.update(data)
        for key, value in (config_dict or {}).items():
            if key == "hyper_parameters":
                hyper = list(value)
                continue
            if key not in merged:
                close = difflib.get_close_matches(key, merged, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"unknown config key '{key}' (not in overall, {dataset} or {model} YAML){hint}")
            merged[key] = value
        for key in hyper:
            if key not in merged:
                raise ConfigError(f"hyper_parameters names '{key}', which no config file sets")
        if "seed" not in hyper:
            hyper = ["seed"] + hyper
        merged["hyper_parameters"] = list(dict.fromkeys(hyper))
        merged["model"], merged["dataset"] = model, dataset
        merged["valid_metric_bigger"] = True
        use_gpu = bool(merged.get("use_gpu")) and torch.cuda.is_available()
        merged["device"] = torch.device(f"cuda:{merged.get('gpu_id', 0)}" if use_gpu else "cpu")
        self.final_config_dict = merged
        self.files = files

    @staticmethod
    def _dataset_yaml(root: Path, dataset: str, config_dict: dict) -> Path:
        """``configs/dataset/<d>.yaml``, else the one ``prepare`` wrote beside the data."""
        own = root / "dataset" / f"{dataset}.yaml"
        if own.is_file():
            return own
        data_path = config_dict.get("data_path") or read_yaml(root / "overall.yaml").get("data_path", "")
        prepared = Path(f"{data_path}{dataset}") / f"{dataset}.yaml"
        return prepared if prepared.is_file() else own

    def __getitem__(self, key: str) -> Any:
        return self.final_config_dict.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.final_config_dict[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.final_config_dict

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, torch.device) else v) for k, v in self.final_config_dict.items()}


def settings_per_model(models: list[str], dataset: str, settings: dict, data_path: str | None = None) -> dict:
    """``--set`` values for several models: each key goes to the models whose configs define
    it; a key that none defines is refused."""
    base = {"data_path": data_path} if data_path else {}
    known = {m: Config(m, dataset, base).final_config_dict for m in dict.fromkeys(models)}
    unknown = [k for k in settings if not any(k in known[m] for m in known)]
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for models {', '.join(known)}")
    return {m: {k: v for k, v in settings.items() if k in known[m]} for m in known}
