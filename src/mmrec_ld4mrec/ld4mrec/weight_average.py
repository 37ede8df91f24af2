"""An exponential moving average of a network's weights, ranked with in place of the weights.

Not in the paper: DDPM (Ho et al., 2020) and improved DDPM sample from an EMA of the denoiser's
weights, and LD4MRec's early validation peaks on TikTok are fragile (docs/model-quality.md).
The ``ema_decay`` key turns it on (0 = off, the paper's reading). The shadow weights are buffers,
so the best-epoch state, checkpoints and snapshots carry them with the weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class WeightAverage(nn.Module):
    """Shadow copies of ``network``'s parameters: after each optimiser step
    shadow <- d shadow + (1 - d) weight, with d = min(decay, (1 + n) / (10 + n)) at the n-th update
    (the warm-up of TensorFlow's ExponentialMovingAverage), so the first epochs are not held at the
    initial weights."""

    def __init__(self, network: nn.Module, decay: float) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay: expected a number in (0, 1), got {decay!r}")
        self.decay = decay
        self.names = [name for name, _ in network.named_parameters()]
        for i, (_, p) in enumerate(network.named_parameters()):
            self.register_buffer(f"shadow_{i}", p.detach().clone())
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def _shadows(self) -> list[torch.Tensor]:
        return [getattr(self, f"shadow_{i}") for i in range(len(self.names))]

    def _parameters_of(self, network: nn.Module) -> list[nn.Parameter]:
        params = dict(network.named_parameters())
        if list(params) != self.names:
            raise ValueError("WeightAverage: the network's parameters are not the ones it was built on")
        return list(params.values())

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        """One step of the average towards ``network``'s current weights."""
        n = int(self.updates)
        d = min(self.decay, (1.0 + n) / (10.0 + n))
        for s, p in zip(self._shadows(), self._parameters_of(network)):
            s.lerp_(p.detach(), 1.0 - d)
        self.updates += 1

    @contextlib.contextmanager
    def swapped_in(self, network: nn.Module) -> Iterator[None]:
        """``network`` computes with the averaged weights inside the block, its own after. The
        storages are exchanged, not copied: ranking calls this once per batch of users."""
        pairs = list(zip(self._parameters_of(network), self._shadows()))

        def exchange() -> None:
            for p, s in pairs:
                p.data, s.data = s.data, p.data

        exchange()
        try:
            yield
        finally:
            exchange()
