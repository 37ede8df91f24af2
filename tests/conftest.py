from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmrec_ld4mrec.data.synthetic import ensure_synthetic

SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("MMREC_LD4MREC_STANDALONE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per test worker, for it and the processes it starts: workers share the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def data_path(tmp_path_factory) -> Path:
    """A data_path folder holding the generated ``synthetic`` dataset."""
    root = tmp_path_factory.mktemp("data")
    ensure_synthetic(root / "synthetic")
    return root


@pytest.fixture
def small_ld4mrec() -> dict:
    """A fast LD4MRec configuration for tests (narrow layers, one grid point)."""
    return {"embedding_size": 64, "hidden_size": 32, "svd_rank": 16, "soft_prob": 0.01, "smooth": 0.01,
            "epochs": 3, "seed": [7]}


def _lr_study(tmp_path, trials: int):
    """A study of one log-scaled key on a SQLite file, for runs faked in-process."""
    from mmrec_ld4mrec.study.tune import Dimension, TuneRequest

    return TuneRequest(model="LD4MRec", dataset="d", trials=trials, storage=f"sqlite:///{tmp_path / 's.db'}",
                       study_name="s", settings={}, seeds=[1], space=[Dimension("learning_rate", "log_float", 1e-5, 1e-1)])


@pytest.fixture
def lr_study():
    """``lr_study(tmp_path, trials) -> TuneRequest``: a study of ``learning_rate`` on a SQLite file
    under ``tmp_path``, for runs faked in-process."""
    return _lr_study
