"""Fig. 3: one trained state ranked with each inference strategy of the model.

The paper compares forward-free inference (Algorithm 2) with k-step inference (corrupt the row
to step k, then k reverse steps) on the same trained model. A run asks for it with the key
``inference_study`` (a list of steps, 0 = forward-free), set with ``--set`` or by an
experiment's ``studies.inference``; it is not a setting of the model or the engine, so it is
taken out of the configuration here and handed to the run as an extension
(``engine.quick_start.run(..., after_fit=...)``), which checks the strategies before training and
ranks the best state with each after it.
"""

from __future__ import annotations

from ..engine.config import Config
from ..engine.dataloader import EvalDataLoader
from ..engine.evaluator import evaluate
from ..errors import ConfigError

KEY = "inference_study"


class InferenceStudy:
    """``steps``: the strategies, each 0 (forward-free) or k (k-step inference, at most T)."""

    def __init__(self, steps: list[int]):
        self.steps = steps

    def check(self, model) -> None:
        """Before training: a strategy the model does not have is refused (the model names it).
        A model without inference strategies (a baseline) takes no part: nothing to check."""
        if hasattr(model, "inference_strategy"):
            for k in self.steps:
                with model.inference_strategy(k):
                    pass

    def __call__(self, model, valid: EvalDataLoader, test: EvalDataLoader, config: Config) -> dict:
        """The trained (best) state's validation and test metrics with each strategy."""
        if not hasattr(model, "inference_strategy"):
            return {}
        study = []
        for k in self.steps:
            with model.inference_strategy(k):
                study.append({"inference_steps": k, "valid": evaluate(model, valid, config)[0],
                              "test": evaluate(model, test, config)[0]})
        return {KEY: study}


def split_inference_study(config: dict) -> tuple[dict, InferenceStudy | None]:
    """``config`` without ``inference_study``, and the study it asks for (None for none)."""
    config = dict(config)
    steps = config.pop(KEY, None)
    if steps is None or steps == []:
        return config, None
    if not isinstance(steps, list) or len(set(map(repr, steps))) != len(steps) \
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in steps):
        raise ConfigError(f"config key '{KEY}': expected a list of distinct integers >= 0, got {steps!r}", key=KEY)
    return config, InferenceStudy(steps)
