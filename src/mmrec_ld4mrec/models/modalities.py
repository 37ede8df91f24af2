"""The item modalities a multimodal model reads, in one fixed order: MMRec's text slot,
its vision slot, then ``extra_feature_files`` (any number more), each a float array with a
row per item. LD4MRec, MMSSL and DiffMM all take their modalities from here."""

from __future__ import annotations

import os

import numpy as np

from ..data.features import configured_feature_path, load_feature_file
from ..errors import ConfigError
from .base import config_get


def item_modalities(model, config, extra_feature_files: list[str] | tuple[str, ...] = ()) -> list[np.ndarray]:
    """The modalities of ``model`` (an MMRec ``GeneralRecommender`` with ``t_feat``/``v_feat``
    loaded) plus ``extra_feature_files``, each checked to be finite."""
    slots = [("text_feature_file", model.t_feat), ("vision_feature_file", model.v_feat)]
    folder = os.path.abspath(str(config_get(config, "data_path", "")) + str(config_get(config, "dataset", "")))
    for key, f in slots:
        if f is None and config_get(config, "is_multimodal_model", True) and not config_get(config, "end2end", False):
            # MMRec's own base class skips a configured file that is absent; refuse it instead
            configured_feature_path(folder, key, config_get(config, key))
    feats = [(config_get(config, key, key), f.detach().cpu().numpy()) for key, f in slots if f is not None]
    for name in extra_feature_files:
        path = configured_feature_path(folder, "extra_feature_files", name)
        if path is not None:
            feats.append((name, load_feature_file(path, model.n_items)))
    for name, f in feats:
        if not np.isfinite(f).all():
            raise ConfigError(f"{os.path.join(folder, str(name))}: item features hold NaN or infinite values")
    return [f for _, f in feats]


def require_modalities(features: list[np.ndarray], model_name: str, config) -> None:
    """A content model without any modality is a configuration error, named as such."""
    if not features:
        raise ConfigError(f"{model_name} needs at least one item modality: set vision_feature_file, "
                          f"text_feature_file or extra_feature_files for dataset {config_get(config, 'dataset')!r} "
                          "(and is_multimodal_model: True)")
