"""Models this project provides, by MMRec name."""

from __future__ import annotations

import importlib

from ..errors import ConfigError

MODELS = {"LD4MRec": "ld4mrec", "LD4MRecPaper": "ld4mrec", "Pop": "pop", "DiffRec": "diffrec", "EASE": "ease", "SimGCL": "simgcl",
          "MMSSL": "mmssl", "DiffMM": "diffmm"}


# LD4MRec's options removed after they did not win on validation (docs/findings.md), each with
# the value that computes what LD4MRec computes now: a profile, --set or checkpoint that still
# names one is told so, not only that the key is unknown
RETIRED_KEYS = {"item_features": False, "item_features_input": False, "gate_input": "step", "gate_bias": 0.0,
                "input_activation": False, "collab_scale": "none", "step_zero_prob": 0.0,
                "item_graph_source": "content", "ema_decay": 0.0, "sparse_input": True}
RETIRED_HINT = "LD4MRec's option was removed (docs/findings.md says why)"


def get_model(name: str):
    """The model class called ``name`` (MMRec's lookup: module ``name.lower()``, attribute ``name``)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; this project provides: {', '.join(sorted(MODELS))}")
    return getattr(importlib.import_module(f"{__name__}.{MODELS[name]}"), name)
