"""Whether a saved optimizer state fits an optimizer, checked before ``load_state_dict``: torch
loads per-parameter tensors of any shape, and a fused step then writes out of bounds."""

from __future__ import annotations

import math

import torch


def optimizer_misfit(saved: dict, optimizer) -> str | None:
    """Why an optimizer's saved ``state_dict`` cannot be loaded into ``optimizer``: a per-parameter
    tensor whose shape, dtype or device kind is not its parameter's (a fused step would write out
    of bounds), a step count that is not a finite number >= 0, values that are not finite, or a
    state for a parameter the optimizer does not have. None when it fits."""
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or \
            not isinstance(saved.get("param_groups"), list):
        return "is not an optimizer's state (a 'state' and 'param_groups')"
    ids = [i for group in saved["param_groups"] for i in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(ids) != len(params) or len(set(ids)) != len(ids):
        return "names other parameters"
    place = dict(zip(ids, params))
    for key, entry in saved["state"].items():
        if key not in place:
            return f"holds parameter {key!r:.40}, which this optimizer does not have"
        if not isinstance(entry, dict):
            return f"of parameter {key!r:.40} is not a mapping"
        param = place[key]
        for name, value in entry.items():
            if value is None or isinstance(value, (bool, int, float)) and name != "step":
                continue
            if not isinstance(value, torch.Tensor):
                if name == "step" and isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and math.isfinite(value) and value >= 0:
                    continue
                return f"'{name}' of parameter {key!r:.40} is {type(value).__name__}, not a tensor"
            if name == "step":
                if value.numel() != 1 or value.is_complex() or not torch.isfinite(value).all() or float(value) < 0:
                    return f"'step' of parameter {key!r:.40} is not one finite count >= 0"
                continue
            if tuple(value.shape) != tuple(param.shape):
                return (f"'{name}' of parameter {key!r:.40} has shape {tuple(value.shape)}, its parameter "
                        f"{tuple(param.shape)}")
            if value.dtype != param.dtype:
                return f"'{name}' of parameter {key!r:.40} is {value.dtype}, its parameter {param.dtype}"
            if not torch.isfinite(value).all():
                return f"'{name}' of parameter {key!r:.40} holds values that are not finite"
    return None
