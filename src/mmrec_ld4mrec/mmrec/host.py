"""Where a model's base class comes from: MMRec's own ``GeneralRecommender`` when the
model is imported inside an MMRec checkout (its ``src`` on ``sys.path``), else the
standalone engine's look-alike. This is the only module that looks for MMRec."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

STANDALONE_ENV = "MMREC_LD4MREC_STANDALONE"


def mmrec_base_class():
    """MMRec's ``common.abstract_recommender.GeneralRecommender`` or None when not in MMRec."""
    if os.environ.get(STANDALONE_ENV) == "1":
        return None
    try:
        module = importlib.import_module("common.abstract_recommender")
    except ImportError:
        return None
    base = getattr(module, "GeneralRecommender", None)
    src = Path(getattr(module, "__file__", "") or ".").resolve().parents[1]
    if base is None or not (src / "utils" / "quick_start.py").is_file():
        return None
    return base


def general_recommender_base():
    base = mmrec_base_class()
    if base is not None:
        return base
    from ..engine.recommender import GeneralRecommender

    return GeneralRecommender


def config_get(config, key: str, default=None):
    """Read a key from an MMRec-style config (``config[key]`` is None when absent)."""
    try:
        value = config[key]
    except KeyError:
        return default
    return default if value is None else value
