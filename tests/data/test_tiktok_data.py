"""The real TikTok data in ../shared: safe loading and a short LD4MRec run (slow)."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from mmrec_ld4mrec.data.safe_pickle import load_sparse_pickle
from mmrec_ld4mrec.errors import DataError

from ..conftest import SHARED

TIKTOK = SHARED / "data" / "tiktok"
needs_tiktok = pytest.mark.skipif(not (TIKTOK / "trnMat.pkl").is_file(), reason=f"{TIKTOK} not present")


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo should-not-run",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    evil = tmp_path / "trnMat.pkl"
    evil.write_bytes(pickle.dumps(_RunsCode()))
    with pytest.raises(DataError, match="refusing to load posix.system"):
        load_sparse_pickle(evil)


def test_truncated_or_non_matrix_pickles_are_refused(tmp_path):
    (tmp_path / "cut.pkl").write_bytes(pickle.dumps([1, 2, 3])[:5])
    with pytest.raises(DataError, match="cut.pkl"):
        load_sparse_pickle(tmp_path / "cut.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="expected a scipy sparse matrix"):
        load_sparse_pickle(tmp_path / "list.pkl")


def _hand_made(matrix, **parts) -> bytes:
    """A matrix whose parts are set after construction, as a hand-made pickle can hold them."""
    for name, value in parts.items():
        setattr(matrix, name, value)
    return pickle.dumps(matrix)


@pytest.mark.parametrize("fmt, parts, message", [
    ("coo", {"data": np.array(["x", "y", "z"], dtype=object)}, "values must be numbers .* got object"),
    ("coo", {"data": np.array([1.0, 1.0, 1.0], dtype=object)}, "values must be numbers .* got object"),
    ("coo", {"data": np.array(["1", "1", "1"])}, "values must be numbers .* got <U1"),
    ("coo", {"data": np.array([1.0, np.nan, 1.0])}, "non-finite"),
    ("coo", {"col": np.array([0, 1, 9])}, "col holds 0..9, outside 0..2"),
    ("coo", {"row": np.array([0, 1])}, "not a well-formed"),
    ("csr", {"indices": np.array([0.0, 1.0, 2.0])}, "indices must be integers, got float64"),
    ("csr", {"indptr": np.array([3, 2, 1, 0])}, "indptr must rise from 0"),
])
def test_hand_made_matrices_with_bad_parts_are_refused(tmp_path, fmt, parts, message):
    matrix = sp.coo_matrix((np.ones(3), ([0, 1, 2], [0, 1, 2])), shape=(3, 3)).asformat(fmt)
    (tmp_path / "trnMat.pkl").write_bytes(_hand_made(matrix, **parts))
    with pytest.raises(DataError, match=f"trnMat.pkl: .*{message}"):
        load_sparse_pickle(tmp_path / "trnMat.pkl")


def test_a_well_formed_csr_matrix_loads_as_coo(tmp_path):
    matrix = sp.csr_matrix((np.ones(3), ([0, 1, 2], [2, 1, 0])), shape=(3, 4))
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(matrix))
    loaded = load_sparse_pickle(tmp_path / "m.pkl")
    assert loaded.format == "coo" and (loaded.toarray() == matrix.toarray()).all()


@needs_tiktok
def test_shared_tiktok_loads_with_published_counts():
    counts = [load_sparse_pickle(TIKTOK / f).nnz for f in ("trnMat.pkl", "valMat.pkl", "tstMat.pkl")]
    assert counts == [59541, 3051, 6130]


@needs_tiktok
@pytest.mark.slow
def test_ld4mrec_trains_on_tiktok(tmp_path):
    from mmrec_ld4mrec.data.published import prepare_diffmm
    from mmrec_ld4mrec.engine.quick_start import run

    prepare_diffmm(TIKTOK, tmp_path / "tiktok")
    result = run("LD4MRec", "tiktok", {"data_path": f"{tmp_path}/", "epochs": 1, "embedding_size": 64,
                                       "hidden_size": 32, "soft_prob": 0.01, "smooth": 0.01})
    assert result["epochs_run"] == 1 and 0 < result["test"]["Recall@20"] < 1
