"""Models this project provides, by MMRec name."""

from __future__ import annotations

import importlib

from ..errors import ConfigError

MODELS = {"LD4MRec": "ld4mrec", "LD4MRecPaper": "ld4mrec", "Pop": "pop", "DiffRec": "diffrec", "EASE": "ease", "SimGCL": "simgcl",
          "MMSSL": "mmssl", "DiffMM": "diffmm"}


# LD4MRec's open choices that did not win on validation and were removed (docs/findings.md):
# a profile or --set that still names one is told so, not only that the key is unknown
RETIRED_KEYS = frozenset({"item_features", "item_features_input", "gate_input", "gate_bias", "input_activation",
                          "collab_scale", "step_zero_prob", "item_graph_source", "ema_decay", "sparse_input"})


def get_model(name: str):
    """The model class called ``name`` (MMRec's lookup: module ``name.lower()``, attribute ``name``)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; this project provides: {', '.join(sorted(MODELS))}")
    return getattr(importlib.import_module(f"{__name__}.{MODELS[name]}"), name)
