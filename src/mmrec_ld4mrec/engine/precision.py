"""``precision``: fp32 (default), bf16 (matrix products in bfloat16 under autocast) or tf32.

bf16 is kept only where validation metrics stay within seed noise (docs/speed.md says which
runs checked that)."""

from __future__ import annotations

import contextlib

import torch


def precision_of(config) -> str:
    """``config['precision']``, fp32 where the config (an MMRec one, a test's dict) has none."""
    try:
        return config["precision"] or "fp32"
    except KeyError:
        return "fp32"


def precision_context(config, cache: bool = True) -> contextlib.AbstractContextManager:
    """The matrix-product precision of ``config['precision']`` for a block of work: ``bf16``
    autocasts to bfloat16 on the model's device (torch keeps softmax, losses and reductions in
    float32); ``fp32`` and ``tf32`` change nothing here (``tf32`` is set once per run).
    ``cache=False`` recasts weights at every use, as a CUDA-graph capture needs."""
    if precision_of(config) != "bf16":
        return contextlib.nullcontext()
    device = torch.device(config["device"]).type
    return torch.autocast(device_type=device, dtype=torch.bfloat16, cache_enabled=cache)


def apply_matmul_precision(config) -> None:
    """``tf32``: float32 products may use TensorFloat-32 (CUDA) or faster internal precision."""
    torch.set_float32_matmul_precision("high" if precision_of(config) == "tf32" else "highest")
