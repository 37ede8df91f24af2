"""MMRec-style configuration: overall -> dataset -> model YAML -> command line, read into a
:class:`Config`; the YAML loader, the ``configs/`` folder and the grid of ``hyper_parameters``.

``hyper_parameters`` lists are concatenated across the files (as MMRec does) and ``seed``
always takes part in the grid. Command-line keys must exist in one of the files, so a typo
stops the run instead of being ignored.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from ...errors import ConfigError
from ...models import RETIRED_HINT, RETIRED_KEYS
from ...resources import resource_dir
from .schema import SCALAR_CHECKS, _check_data_path, _check_scalar, check_plain_name, hyper_parameter_list, validate_config


def _yaml_loader():
    """A safe loader that also reads 1e-4 (not only 1.0e-4) as a float, like MMRec's, and reads
    a config the way a reader of the file would: a key given twice, a key that is not text, an
    alias (``*name``: what a "billion laughs" file multiplies itself with), a date or a tagged
    binary, set or ordered map is refused, not resolved silently."""

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not read here: write the value "
                                                  "out", self.peek_event().start_mark)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise yaml.constructor.ConstructorError(None, None, f"keys must be text, found {key!r:.40}",
                                                            key_node.start_mark)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key!r:.40} appears twice",
                                                            key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    def refuse(loader, node):
        raise yaml.constructor.ConstructorError(None, None, f"{node.tag} values are not read here: write text or "
                                                "a number", node.start_mark)

    for tag in ("timestamp", "binary", "set", "omap", "pairs"):
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", refuse)
    Loader.yaml_implicit_resolvers = {  # a date-like value stays text
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

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


def configs_root() -> Path:
    """``configs/`` of a source checkout (editable install) or of the installed data files."""
    return resource_dir("configs", "overall.yaml")


def read_yaml(path: Path) -> dict:
    """A YAML file holding a mapping (empty file: ``{}``); anything else is a ``ConfigError`` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML text file (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = yaml.load(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}{where})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values")
    return data


class Config:
    """``config[key]`` returns the value or None (MMRec's behaviour). Every value is checked
    for type and range when the config is built (:func:`validate_config`), before any data is read."""

    def __init__(self, model: str, dataset: str, config_dict: dict | None = None, root: Path | None = None):
        check_plain_name("model", "-m", model)
        check_plain_name("dataset", "-d", dataset)
        if "data_path" in (config_dict or {}):
            _check_scalar(config_dict, "data_path", *SCALAR_CHECKS["data_path"], [])
            _check_data_path(config_dict["data_path"])
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
            hyper.extend(hyper_parameter_list(data.pop("hyper_parameters", None), str(f)))
            merged.update(data)
        for key, value in (config_dict or {}).items():
            if key == "hyper_parameters":
                hyper = hyper_parameter_list(value, "--set")
                continue
            if key not in merged:
                close = difflib.get_close_matches(key, merged, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                if key in RETIRED_KEYS:
                    hint = f"; {RETIRED_HINT}"
                raise ConfigError(f"unknown config key '{key}' (not in overall, {dataset} or {model} YAML){hint}", key=key)
            merged[key] = value
        for key in hyper:
            if key not in merged:
                raise ConfigError(f"hyper_parameters names '{key}', which no config file sets", key=key)
        if "seed" not in hyper:
            hyper = ["seed"] + hyper
        merged["hyper_parameters"] = list(dict.fromkeys(hyper))
        merged["model"], merged["dataset"] = model, dataset
        merged["valid_metric_bigger"] = True
        validate_config(merged)
        use_gpu = bool(merged.get("use_gpu")) and torch.cuda.is_available()
        merged["device"] = torch.device(f"cuda:{merged.get('gpu_id', 0)}" if use_gpu else "cpu")
        self.final_config_dict = merged
        self.files = files

    def validate(self) -> None:
        """Check every value again (after values were replaced, e.g. from a checkpoint)."""
        validate_config(self.final_config_dict)

    @staticmethod
    def _dataset_yaml(root: Path, dataset: str, config_dict: dict) -> Path:
        """``configs/dataset/<d>.yaml``, else the one ``prepare`` wrote beside the data."""
        own = root / "dataset" / f"{dataset}.yaml"
        if own.is_file():
            return own
        data_path = config_dict.get("data_path") or read_yaml(root / "overall.yaml").get("data_path", "")
        prepared = Path(f"{data_path}{dataset}") / f"{dataset}.yaml"
        if os.path.lexists(prepared) and not prepared.is_file():
            raise ConfigError(f"{prepared}: the dataset's config is not a regular file")
        return prepared if prepared.is_file() else own

    def __getitem__(self, key: str) -> Any:
        return self.final_config_dict.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.final_config_dict[key] = value

    def __contains__(self, key: str) -> bool:
        return key in self.final_config_dict

    def to_dict(self) -> dict:
        return {k: (str(v) if isinstance(v, torch.device) else v) for k, v in self.final_config_dict.items()}


def grid_points(keys: list[str], value_of: Callable[[str], Any]) -> list[dict]:
    """Every combination of the values of ``keys`` (``value_of(key)``; a scalar is a one-value axis)."""
    axes = [v if isinstance(v, list) else [v] for v in (value_of(k) for k in keys)]
    return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]
