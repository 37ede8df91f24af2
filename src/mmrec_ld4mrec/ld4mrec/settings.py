"""LD4MRec's hyper-parameters: names, paper defaults and range checks.

Every key here appears in ``configs/model/LD4MRec.yaml`` and ``LD4MRecPaper.yaml``; the model reads its settings only
through :func:`ld4mrec_settings`, so a bad value stops with the key's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .cnet import ACTIVATIONS
from .loss import LOSSES
from .signals import FEATURE_NORMS


@dataclass(frozen=True)
class LD4MRecSettings:
    embedding_size: int = 1000  # d_e, section 6.4
    hidden_size: int = 100  # d_h, section 6.4
    step_emb_size: int = 10  # d_t, section 6.4
    steps: int = 5  # T
    noise_scale: float = 0.01  # s
    noise_min: float = 0.001  # alpha_min
    noise_max: float = 0.01  # alpha_max
    soft_prob: float = 0.01  # p, Eq. 6
    smooth: float = 0.01  # gamma, Eq. 7
    svd_rank: int = 100  # q, Eq. 14
    svd_oversampling: int = 100  # extra random test vectors of the randomized SVD (Halko et al.'s p)
    svd_power_iterations: int = 8  # its power iterations
    history_num_per_term: int = 10  # Eq. 8
    uniform_mix: float = 0.001  # Eq. 8
    activation: str = "tanh"
    input_dropout: float = 0.0
    feature_norm: str = "l2"  # before Eq. 16
    inference_steps: int = 0  # 0 = forward-free (Algorithm 2)
    use_cg: bool = True  # False = "w/o CG"
    use_pg: bool = True  # False = "w/o PG"
    use_soft_target: bool = True  # False = "w/o SR"
    extra_feature_files: tuple[str, ...] = ()
    # Open choices beyond the paper's text (docs/configuration.md); the defaults are the paper's reading.
    loss: str = "mse"  # mse (Eq. 5) | multinomial (softmax log-likelihood of the soft target)
    input_norm: str = "none"  # none | l2: the observed row scaled to unit norm before dropout/corruption
    residual: bool = False  # skip act(FC_in x) around CG_1 -> PG -> CG_2 (cnet.CNet)
    item_graph_k: int = 0  # 0 = off; k > 0: content kNN item graph S (item_graph.py) on FC_in/FC_out weights
    item_graph_weight: float = 0.5  # w in W + w S W (cnet.ItemGraph)


INPUT_NORMS = ("none", "l2")




def _int(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"config key '{key}': expected an integer >= {minimum}, got {value!r}", key=key)
    return value


def _float(key: str, value: Any, low: float, high: float, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value < high
    if not ok:
        bracket = "(" if low_open else "["
        raise ConfigError(f"config key '{key}': expected a number in {bracket}{low}, {high}), got {value!r}", key=key)
    return float(value)


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config key '{key}': expected true or false, got {value!r}", key=key)
    return value


def _files(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(f"config key '{key}': expected a list of file names, got {value!r}", key=key)


def _choice(key: str, value: Any, choices) -> str:
    if value not in choices:
        raise ConfigError(f"config key '{key}': expected one of {sorted(choices)}, got {value!r}", key=key)
    return value


def ld4mrec_settings(get: Callable[[str], Any]) -> LD4MRecSettings:
    """Build validated settings; ``get(key)`` returns the configured value or None."""
    d = LD4MRecSettings()

    def val(key: str):
        v = get(key)
        return getattr(d, key) if v is None else v

    s = LD4MRecSettings(
        embedding_size=_int("embedding_size", val("embedding_size"), 1),
        hidden_size=_int("hidden_size", val("hidden_size"), 1),
        step_emb_size=_int("step_emb_size", val("step_emb_size"), 1),
        steps=_int("steps", val("steps"), 2),
        noise_scale=_float("noise_scale", val("noise_scale"), 0.0, math.inf, low_open=True),
        noise_min=_float("noise_min", val("noise_min"), 0.0, 1.0, low_open=True),
        noise_max=_float("noise_max", val("noise_max"), 0.0, 1.0, low_open=True),
        soft_prob=_float("soft_prob", val("soft_prob"), 0.0, 1.0),
        smooth=_float("smooth", val("smooth"), 0.0, 1.0),
        svd_rank=_int("svd_rank", val("svd_rank"), 1),
        svd_oversampling=_int("svd_oversampling", val("svd_oversampling"), 0),
        svd_power_iterations=_int("svd_power_iterations", val("svd_power_iterations"), 0),
        history_num_per_term=_int("history_num_per_term", val("history_num_per_term"), 1),
        uniform_mix=_float("uniform_mix", val("uniform_mix"), 0.0, 1.0),
        activation=_choice("activation", val("activation"), ACTIVATIONS),
        input_dropout=_float("input_dropout", val("input_dropout"), 0.0, 1.0),
        feature_norm=_choice("feature_norm", val("feature_norm"), FEATURE_NORMS),
        inference_steps=_int("inference_steps", val("inference_steps"), 0),
        use_cg=_bool("use_cg", val("use_cg")),
        use_pg=_bool("use_pg", val("use_pg")),
        use_soft_target=_bool("use_soft_target", val("use_soft_target")),
        extra_feature_files=_files("extra_feature_files", val("extra_feature_files") or ()),
        loss=_choice("loss", val("loss"), LOSSES),
        residual=_bool("residual", val("residual")),
        input_norm=_choice("input_norm", val("input_norm"), INPUT_NORMS),
        item_graph_k=_int("item_graph_k", val("item_graph_k"), 0),
        item_graph_weight=_float("item_graph_weight", val("item_graph_weight"), 0.0, 1000.0),
    )
    if s.noise_min > s.noise_max:
        raise ConfigError(f"config keys 'noise_min'/'noise_max': noise_min ({s.noise_min}) exceeds noise_max "
                          f"({s.noise_max})", key="noise_min")
    if s.noise_scale * s.noise_max >= 1.0:
        raise ConfigError(f"config key 'noise_scale': noise_scale * noise_max must be < 1, got "
                          f"{s.noise_scale * s.noise_max}", key="noise_scale")
    if s.inference_steps > s.steps:
        raise ConfigError(f"config key 'inference_steps': expected 0..steps ({s.steps}), got {s.inference_steps}",
                          key="inference_steps")
    return s
