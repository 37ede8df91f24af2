"""A model's keys read from an MMRec-style config, each checked: an error names the model,
the key, what was expected and what it got (a list left by a grid included)."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

from ..errors import ConfigError
from .base import config_get


class GetView:
    """``get(key)`` (a grid point's value, None when absent) seen as the config mapping the
    readers below take, so a model's ``check_settings(get)`` runs its own key checks."""

    def __init__(self, get: Callable[[str], Any]):
        self.get = get

    def __getitem__(self, key: str) -> Any:
        return self.get(key)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
    return f"{lo}, {hi}"


def real_key(model: str, config, key: str, default: float, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False) -> float:
    """A finite number in the interval given (closed unless ``*_open``)."""
    value = config_get(config, key, default)
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ConfigError(f"{model}: config key {key!r}: expected a number in "
                          f"{_interval(low, high, low_open, high_open)}, got {value!r}", key=key)
    return float(value)


def int_key(model: str, config, key: str, default: int, low: int | None = None, high: int | None = None) -> int:
    """An integer in [low, high]."""
    value = config_get(config, key, default)
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    if ok and ((low is not None and value < low) or (high is not None and value > high)):
        ok = False
    if not ok:
        raise ConfigError(f"{model}: config key {key!r}: expected an integer in "
                          f"{_interval(low, high, False, False)}, got {value!r}", key=key)
    return int(value)


def bool_key(model: str, config, key: str, default: bool) -> bool:
    value = config_get(config, key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{model}: config key {key!r}: expected true or false, got {value!r}", key=key)
    return value


def int_list_key(model: str, config, key: str, default: list[int], low: int = 1) -> list[int]:
    """A non-empty list of integers >= low."""
    value = config_get(config, key, default)
    if not (isinstance(value, (list, tuple)) and value
            and all(isinstance(v, Integral) and not isinstance(v, bool) and v >= low for v in value)):
        raise ConfigError(f"{model}: config key {key!r}: expected a non-empty list of integers >= {low}, got {value!r}", key=key)
    return [int(v) for v in value]


def real_list_key(model: str, config, key: str, default: list[float], length: int, low: float, high: float,
                  high_open: bool = True) -> list[float]:
    """A list of ``length`` numbers in [low, high) (or [low, high])."""
    value = config_get(config, key, default)
    ok = isinstance(value, (list, tuple)) and len(value) == length and all(
        isinstance(v, Real) and not isinstance(v, bool) and low <= v and (v < high if high_open else v <= high)
        for v in value)
    if not ok:
        raise ConfigError(f"{model}: config key {key!r}: expected {length} numbers in "
                          f"{_interval(low, high, False, high_open)}, got {value!r}", key=key)
    return [float(v) for v in value]


def triple_trained_keys(model: str, config) -> tuple[Callable[..., float], Callable[..., int]]:
    """(real, integer) readers of ``model``'s keys, after refusing full sampling: the model
    trains on (user, positive, negative) triples."""
    if bool(config_get(config, "use_full_sampling", False)):
        raise ConfigError(f"{model} trains on (user, positive, negative) triples: set use_full_sampling: False")

    def real(key: str, default: float, **kw) -> float:
        return real_key(model, config, key, default, **kw)

    def integer(key: str, default: int, **kw) -> int:
        return int_key(model, config, key, default, **kw)

    return real, integer
