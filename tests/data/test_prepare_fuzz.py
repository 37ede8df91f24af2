"""Malformed inputs to every prepare step: each must exit 2 with a one-line message naming
the file, and leave no output (and no temporary folder) behind."""

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mmrec_ld4mrec.cli import main

from ..prepare_fixtures import N_ITEMS, N_USERS, write_diffmm, write_diffrec, write_hm, write_microlens, write_tmall


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo fuzz-should-not-run",))


def _coo(pairs, data=None, shape=(N_USERS, N_ITEMS)):
    data = np.ones(len(pairs)) if data is None else data
    return sp.coo_matrix((data, (pairs[:, 0], pairs[:, 1])), shape=shape)


def _pkl(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj))


def _without_last_user(m):
    keep = m.row < N_USERS - 1
    return _coo(np.stack([m.row[keep], m.col[keep]], 1))


def _trn(src):
    return pickle.loads((src / "trnMat.pkl").read_bytes())


def _edit_csv(path: Path, edit, **read):
    df = pd.read_csv(path, dtype=str, keep_default_na=False, **read)
    edit(df).to_csv(path, index=False, sep=read.get("sep", ","), header="header" not in read)


def _set(df: pd.DataFrame, column: int, row: int, value: str) -> pd.DataFrame:
    df.iloc[row, column] = value
    return df


DIFFMM = {
    "missing train pickle": lambda s: (s / "trnMat.pkl").unlink(),
    "truncated pickle": lambda s: (s / "trnMat.pkl").write_bytes((s / "trnMat.pkl").read_bytes()[:40]),
    "empty pickle file": lambda s: (s / "valMat.pkl").write_bytes(b""),
    "pickle that runs code": lambda s: _pkl(s / "trnMat.pkl", _RunsCode()),
    "pickle of eval": lambda s: (s / "tstMat.pkl").write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR."),
    "pickle of a list": lambda s: _pkl(s / "valMat.pkl", [1, 2, 3]),
    "pickle of a dense array": lambda s: _pkl(s / "valMat.pkl", np.ones((N_USERS, N_ITEMS))),
    "shapes disagree": lambda s: _pkl(s / "valMat.pkl", _coo(np.array([[0, 0]]), shape=(N_USERS, N_ITEMS + 1))),
    "empty split": lambda s: _pkl(s / "tstMat.pkl", sp.coo_matrix((N_USERS, N_ITEMS))),
    "negative value": lambda s: _pkl(s / "trnMat.pkl", _coo(np.array([[0, 0], [N_USERS - 1, N_ITEMS - 1]]),
                                                             np.array([-1.0, 1.0]))),
    "NaN value": lambda s: _pkl(s / "trnMat.pkl", _coo(np.array([[0, 0], [N_USERS - 1, N_ITEMS - 1]]),
                                                        np.array([np.nan, 1.0]))),
    "a trillion users": lambda s: [_pkl(s / n, _coo(np.stack([m.row, m.col], 1), shape=(10**12, N_ITEMS)))
                                   for n, m in ((n, pickle.loads((s / n).read_bytes()))
                                                for n in ("trnMat.pkl", "valMat.pkl", "tstMat.pkl"))],
    "duplicate entries": lambda s: _pkl(s / "trnMat.pkl", _coo(np.array([[0, 0], [0, 0], [N_USERS - 1, N_ITEMS - 1]]))),
    "pair in two splits": lambda s: _pkl(s / "tstMat.pkl", _coo(np.stack([_trn(s).row[:3], _trn(s).col[:3]], 1))),
    "last user never seen": lambda s: [_pkl(s / n, _without_last_user(pickle.loads((s / n).read_bytes())))
                                       for n in ("trnMat.pkl", "valMat.pkl", "tstMat.pkl")],
    "feature rows do not match": lambda s: np.save(s / "image_feat.npy", np.zeros((N_ITEMS - 2, 8))),
    "feature NaN": lambda s: np.save(s / "image_feat.npy", np.full((N_ITEMS, 8), np.nan)),
    "feature file that is text": lambda s: (s / "image_feat.npy").write_text("0.1,0.2\n0.3,0.4\n"),
    "feature inf": lambda s: np.save(s / "audio_feat.npy", np.full((N_ITEMS, 4), np.inf)),
    "feature 1-D": lambda s: np.save(s / "image_feat.npy", np.zeros(N_ITEMS)),
    "feature strings": lambda s: np.save(s / "image_feat.npy", np.array([["a"] * 8] * N_ITEMS)),
    "feature object array": lambda s: np.save(s / "image_feat.npy", np.array([[object()]] * N_ITEMS), allow_pickle=True),
    "feature garbage bytes": lambda s: (s / "audio_feat.npy").write_bytes(b"\x93NUMPY garbage"),
}

DIFFREC = {
    "an npz archive as a split": lambda s: np.savez(s / "train_list", pairs=np.ones((3, 2), dtype=np.int64))
    or (s / "train_list.npz").replace(s / "train_list.npy"),
    "missing valid list": lambda s: (s / "valid_list.npy").unlink(),
    "float pairs": lambda s: np.save(s / "train_list.npy", np.load(s / "train_list.npy").astype(float)),
    "three columns": lambda s: np.save(s / "train_list.npy", np.zeros((5, 3), dtype=np.int64)),
    "one-dimensional": lambda s: np.save(s / "test_list.npy", np.arange(6)),
    "negative ids": lambda s: np.save(s / "test_list.npy", np.array([[-1, 0]])),
    "duplicate pairs": lambda s: np.save(s / "test_list.npy", np.array([[1, 2], [1, 2]])),
    "empty split": lambda s: np.save(s / "valid_list.npy", np.zeros((0, 2), dtype=np.int64)),
    "pair in two splits": lambda s: np.save(s / "test_list.npy", np.load(s / "train_list.npy")[:2]),
    "ids with a gap": lambda s: np.save(s / "test_list.npy", np.array([[0, 10**6]])),
    "garbage bytes": lambda s: (s / "train_list.npy").write_bytes(b"not an array at all"),
    "pickled object array": lambda s: np.save(s / "train_list.npy", np.array([[1, object()]]), allow_pickle=True),
    "truncated npy": lambda s: (s / "train_list.npy").write_bytes((s / "train_list.npy").read_bytes()[:100]),
}

TMALL_LOG = "Tianchi_2014002_Rec_Tmall_Log_partc.txt"
TMALL = {
    "no log file": lambda s: (s / TMALL_LOG).unlink(),
    "three columns": lambda s: _edit_csv(s / TMALL_LOG, lambda d: d.iloc[:, :3], sep="\t", header=None),
    "bad vtime": lambda s: _edit_csv(s / TMALL_LOG, lambda d: _set(d, 3, 4, "yesterday"), sep="\t", header=None),
    "unknown action": lambda s: _edit_csv(s / TMALL_LOG, lambda d: _set(d, 2, 0, "like"), sep="\t", header=None),
    "empty user": lambda s: _edit_csv(s / TMALL_LOG, lambda d: _set(d, 1, 2, ""), sep="\t", header=None),
    "header missing vtime": lambda s: (s / TMALL_LOG).write_text("item_id\tuser_id\taction\ttime\n1\tu1\tclick\tx\n"),
    "empty file": lambda s: (s / TMALL_LOG).write_text(""),
}

MICROLENS = {
    "missing pairs file": lambda s: (s / "MicroLens-50k_pairs.csv").unlink(),
    "missing timestamp column": lambda s: _edit_csv(s / "MicroLens-50k_pairs.csv", lambda d: d.drop(columns="timestamp")),
    "text timestamp": lambda s: _edit_csv(s / "MicroLens-50k_pairs.csv",
                                          lambda d: d.assign(timestamp=d.timestamp.where(d.index != 1, "soon"))),
    "negative timestamp": lambda s: _edit_csv(s / "MicroLens-50k_pairs.csv",
                                              lambda d: d.assign(timestamp=d.timestamp.where(d.index != 1, "-5"))),
    "binary garbage": lambda s: (s / "MicroLens-50k_pairs.csv").write_bytes(b"\xff\xfe\x00\x81" * 50),
    "too few for 10-core": lambda s: _edit_csv(s / "MicroLens-50k_pairs.csv", lambda d: d.head(30)),
    "header only": lambda s: (s / "MicroLens-50k_pairs.csv").write_text("user,item,timestamp\n"),
}

HM = {
    "missing t_dat column": lambda s: _edit_csv(s / "transactions_train.csv", lambda d: d.drop(columns="t_dat")),
    "slashed dates": lambda s: _edit_csv(s / "transactions_train.csv",
                                         lambda d: d.assign(t_dat=d.t_dat.str.replace("-", "/"))),
    "empty customer": lambda s: _edit_csv(s / "transactions_train.csv",
                                          lambda d: d.assign(customer_id=d.customer_id.where(d.index != 0, ""))),
    "header only": lambda s: (s / "transactions_train.csv").write_text("t_dat,customer_id,article_id\n"),
    "ragged rows": lambda s: (s / "transactions_train.csv").write_text("t_dat,customer_id,article_id\n"
                                                                      "2020-09-01,a,1,extra,more\n2020-09-01\n"),
}


def _feature_case(kind):
    def setup(s):
        ids = "\n".join(str(i) for i in range(1, N_ITEMS + 1))
        if kind == "ids missing":
            np.save(s / "f.npy", np.zeros((N_ITEMS, 3)))
        elif kind == "rows differ":
            np.save(s / "f.npy", np.zeros((N_ITEMS - 3, 3)))
            (s / "ids.txt").write_text(ids)
        elif kind == "duplicate ids":
            np.save(s / "f.npy", np.zeros((N_ITEMS, 3)))
            (s / "ids.txt").write_text(ids.replace("\n2\n", "\n1\n"))
        elif kind == "NaN":
            np.save(s / "f.npy", np.full((N_ITEMS, 3), np.nan))
            (s / "ids.txt").write_text(ids)
    return setup


FEATURES = {k: _feature_case(k) for k in ("ids missing", "rows differ", "duplicate ids", "NaN")}

CASES = ([("diffmm", k, f) for k, f in DIFFMM.items()] + [("diffrec", k, f) for k, f in DIFFREC.items()]
         + [("tmall", k, f) for k, f in TMALL.items()] + [("microlens", k, f) for k, f in MICROLENS.items()]
         + [("hm", k, f) for k, f in HM.items()] + [("features", k, f) for k, f in FEATURES.items()]
         + [("microlens", "raw folder missing", None), ("features", "malformed spec", None)])
WRITERS = {"diffmm": write_diffmm, "diffrec": write_diffrec, "tmall": write_tmall, "microlens": write_microlens,
           "hm": write_hm, "features": write_microlens}


def test_there_are_at_least_fifty_cases():
    assert len(CASES) >= 50


@pytest.mark.parametrize("source,name,mutate", CASES, ids=[f"{s}: {n}" for s, n, _ in CASES])
def test_malformed_input_fails_cleanly(tmp_path, capsys, source, name, mutate):
    src = tmp_path / "in"
    WRITERS[source](src)
    if mutate is not None:
        mutate(src)
    out = tmp_path / "data" / "ds"
    args = ["prepare", source if source != "features" else "microlens", "--out", str(out)]
    args += ["--src", str(src)] if source in ("diffmm", "diffrec") else ["--raw", str(src)]
    if source == "microlens" and name == "raw folder missing":
        args[-1] = str(tmp_path / "nowhere")
    if source == "features":
        spec = f"image_feat.npy={src / 'f.npy'},{src / 'ids.txt'}" if mutate else "image_feat.npy=f.npy"
        args += ["--features", spec]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "allow_pickle" not in err  # never advice to load a pickle
    assert str(tmp_path) in err or "--features" in err, err  # names the file (or the argument)
    assert not out.exists()
    leftovers = list((tmp_path / "data").iterdir()) if (tmp_path / "data").exists() else []
    assert leftovers == []
