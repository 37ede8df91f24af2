from __future__ import annotations

import pytest
import torch

from mmrec_ld4mrec.engine.config import Config
from mmrec_ld4mrec.engine.dataloader import TrainDataLoader
from mmrec_ld4mrec.engine.dataset import RecDataset
from mmrec_ld4mrec.models.ld4mrec import LD4MRec


def _build_ld4mrec(data_path, **overrides):
    settings = {"data_path": f"{data_path}/", "embedding_size": 32, "hidden_size": 16, "svd_rank": 8,
                "soft_prob": 0.05, "smooth": 0.05, **overrides}
    config = Config("LD4MRec", "synthetic", settings)
    train, _, _ = RecDataset(config).split()
    loader = TrainDataLoader(config, train, 64)
    torch.manual_seed(0)
    return LD4MRec(config, loader), loader


@pytest.fixture
def build_ld4mrec():
    """``build_ld4mrec(data_path, **overrides) -> (model, loader)``: a small LD4MRec on ``synthetic``
    (seeded), with its training loader; ``overrides`` are config keys."""
    return _build_ld4mrec
