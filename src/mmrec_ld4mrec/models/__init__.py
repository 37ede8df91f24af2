"""Models this project provides, by MMRec name."""

from __future__ import annotations

import importlib

from ..errors import ConfigError

MODELS = {"LD4MRec": "ld4mrec", "LD4MRecPaper": "ld4mrec", "Pop": "pop", "DiffRec": "diffrec", "EASE": "ease", "SimGCL": "simgcl",
          "MMSSL": "mmssl", "DiffMM": "diffmm"}


def get_model(name: str):
    """The model class called ``name`` (MMRec's lookup: module ``name.lower()``, attribute ``name``)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; this project provides: {', '.join(sorted(MODELS))}")
    return getattr(importlib.import_module(f"{__name__}.{MODELS[name]}"), name)
