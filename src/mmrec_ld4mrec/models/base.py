"""Every model's base class: MMRec's own ``GeneralRecommender`` when the model is imported
inside an MMRec checkout (its ``src`` on ``sys.path``), else the standalone stand-ins below
for MMRec's ``AbstractRecommender`` / ``GeneralRecommender``: the same constructor signature
and attributes (``n_users``, ``n_items``, ``batch_size``, ``device``, ``v_feat``,
``t_feat``), with the feature files validated on load. This is the only module that looks
for MMRec."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from torch import nn

from ..data.features import configured_feature_path, load_feature_file
from ..errors import DataError


class AbstractRecommender(nn.Module):
    def pre_epoch_processing(self):
        pass

    def post_epoch_processing(self):
        pass

    def calculate_loss(self, interaction):
        raise NotImplementedError

    def full_sort_predict(self, interaction):
        raise NotImplementedError


class GeneralRecommender(AbstractRecommender):
    def __init__(self, config, dataloader):
        super().__init__()
        self.USER_ID = config["USER_ID_FIELD"]
        self.ITEM_ID = config["ITEM_ID_FIELD"]
        self.n_users = dataloader.dataset.get_user_num()
        self.n_items = dataloader.dataset.get_item_num()
        self.batch_size = config["train_batch_size"]
        self.device = config["device"]
        self.v_feat, self.t_feat = None, None
        if not config["end2end"] and config["is_multimodal_model"]:
            folder = os.path.abspath(config["data_path"] + config["dataset"])
            for attr, key in (("v_feat", "vision_feature_file"), ("t_feat", "text_feature_file")):
                path = configured_feature_path(folder, key, config[key])
                if path is not None:
                    arr = load_feature_file(path, self.n_items)
                    setattr(self, attr, torch.from_numpy(arr).to(self.device))
            if self.v_feat is None and self.t_feat is None:
                raise DataError(
                    f"{folder}: a multimodal model needs 'vision_feature_file' or 'text_feature_file' "
                    f"there (got {config['vision_feature_file']!r}, {config['text_feature_file']!r}); "
                    "set is_multimodal_model: False for a dataset without features")



STANDALONE_ENV = "MMREC_LD4MREC_STANDALONE"


def mmrec_base_class() -> type | None:
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


def general_recommender_base() -> type:
    """The base class of a model: MMRec's inside a checkout, :class:`GeneralRecommender` otherwise."""
    return mmrec_base_class() or GeneralRecommender


def config_get(config, key: str, default=None):
    """Read a key from an MMRec-style config (``config[key]`` is None when absent)."""
    try:
        value = config[key]
    except KeyError:
        return default
    return default if value is None else value
