"""Small raw files that mimic each release's format, and a small DiffMM / DiffRec split."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

N_USERS, N_ITEMS = 40, 30


def raw_events(seed: int = 0) -> pd.DataFrame:
    """About 17 distinct items per user over 30 items, random times in Aug-Sep 2013."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        for i in rng.choice(N_ITEMS, size=rng.integers(14, 20), replace=False):
            rows.append((u, int(i), int(rng.integers(1375315200, 1380585600))))
    rows.append((0, rows[0][1], rows[0][2] + 50))  # a repeated interaction: keeps the earliest
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


def write_tmall(folder: Path, header: bool = False, sep: str = "\t") -> pd.DataFrame:
    ev = raw_events()
    df = pd.DataFrame({"item_id": ev["item"] + 1000, "user_id": "u" + ev["user"].astype(str),
                       "action": np.array(["click", "collect", "cart", "alipay"])[ev.index % 4],
                       "vtime": pd.to_datetime(ev["ts"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")})
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "Tianchi_2014002_Rec_Tmall_Log_partc.txt", sep=sep, header=header, index=False)
    return ev


def write_microlens(folder: Path) -> pd.DataFrame:
    ev = raw_events(1)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user": ev["user"] + 1, "item": ev["item"] + 1, "timestamp": ev["ts"] * 1000}).to_csv(
        folder / "MicroLens-50k_pairs.csv", index=False)
    return ev


def write_hm(folder: Path) -> pd.DataFrame:
    ev = raw_events(2)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"t_dat": pd.to_datetime(ev["ts"], unit="s").dt.strftime("%Y-%m-%d"),
                  "customer_id": [f"{u:064x}" for u in ev["user"] * 7919],
                  "article_id": [f"0{108775000 + i}" for i in ev["item"]],
                  "price": 0.0508, "sales_channel_id": 2}).to_csv(folder / "transactions_train.csv", index=False)
    return ev


def _pairs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dense = rng.random((N_USERS, N_ITEMS)) < 0.3
    dense[np.arange(N_USERS), np.arange(N_USERS) % N_ITEMS] = True
    dense[N_USERS - 1, N_ITEMS - 1] = True
    return np.argwhere(dense)


def split_pairs() -> list[np.ndarray]:
    pairs = _pairs(0)
    label = np.random.default_rng(1).choice(3, size=len(pairs), p=[0.8, 0.1, 0.1])
    label[(pairs[:, 0] == N_USERS - 1) & (pairs[:, 1] == N_ITEMS - 1)] = 0
    return [pairs[label == k] for k in range(3)]


def write_diffmm(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, p in zip(("trnMat.pkl", "valMat.pkl", "tstMat.pkl"), split_pairs()):
        m = sp.coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(N_USERS, N_ITEMS))
        (folder / name).write_bytes(pickle.dumps(m))
    rng = np.random.default_rng(3)
    np.save(folder / "image_feat.npy", rng.normal(size=(N_ITEMS, 8)).astype(np.float16))
    np.save(folder / "audio_feat.npy", rng.normal(size=(N_ITEMS, 4)).astype(np.float16))


def write_diffrec(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, p in zip(("train_list.npy", "valid_list.npy", "test_list.npy"), split_pairs()):
        np.save(folder / name, p.astype(np.int64))
