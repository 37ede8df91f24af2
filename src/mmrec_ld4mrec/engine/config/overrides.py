"""Settings from the command line: ``--set key=value`` read as YAML values, and ``--set``
values shared out among several models (``compare``)."""

from __future__ import annotations

from typing import Any

import yaml

from ...errors import ConfigError, UserInputError
from .loading import YAML_LOADER, Config


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


def settings_per_model(models: list[str], dataset: str, settings: dict, data_path: str | None = None) -> dict:
    """``--set`` values for several models: each key goes to the models whose configs define
    it; a key that none defines is refused."""
    base = {"data_path": data_path} if data_path else {}
    known = {m: Config(m, dataset, base).final_config_dict for m in dict.fromkeys(models)}
    unknown = [k for k in settings if not any(k in known[m] for m in known)]
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} for models {', '.join(known)}", key=unknown[0])
    return {m: {k: v for k, v in settings.items() if k in known[m]} for m in known}
