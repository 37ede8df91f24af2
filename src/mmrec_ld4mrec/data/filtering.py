"""Filtering, id remapping and the per-user chronological split."""

from __future__ import annotations

import numpy as np
import pandas as pd


def k_core(df: pd.DataFrame, k: int = 10, user: str = "user", item: str = "item") -> pd.DataFrame:
    """Drop users and items with fewer than ``k`` interactions, repeated until stable."""
    while True:
        user_ok = df[user].map(df[user].value_counts()) >= k
        item_ok = df[item].map(df[item].value_counts()) >= k
        keep = user_ok & item_ok
        if keep.all():
            return df
        df = df[keep]


def remap_ids(df: pd.DataFrame, column: str) -> tuple[pd.Series, pd.DataFrame]:
    """0-based ids in order of the raw ids (sorted); returns (new ids, mapping raw -> new)."""
    raw = np.sort(df[column].unique())
    mapping = pd.DataFrame({"raw_id": raw, "new_id": np.arange(len(raw))})
    return df[column].map(pd.Series(mapping["new_id"].to_numpy(), index=raw)), mapping


def chronological_split(df: pd.DataFrame, ratios=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Per user, oldest 80 % train, next 10 % validation, newest 10 % test (``x_label`` 0/1/2).

    Rows are ordered by (timestamp, item id), so equal timestamps are broken by item id and
    the split is deterministic. Validation and test get round(10 % of n) interactions each,
    at least one each when the user has three or more; a user with fewer interactions keeps
    them all in training (10-core filtering leaves none such).
    """
    order = df.sort_values(["user", "timestamp", "item"], kind="mergesort")
    labels = pd.Series(0, index=order.index, dtype=np.int64)
    position = order.groupby("user").cumcount().to_numpy()
    n = order["user"].map(order["user"].value_counts()).to_numpy()
    n_eval = np.where(n >= 3, np.maximum(1, np.round(n * ratios[2]).astype(int)), 0)
    n_valid = np.where(n >= 3, np.maximum(1, np.round(n * ratios[1]).astype(int)), 0)
    from_end = n - position
    lab = np.zeros(len(order), dtype=np.int64)
    lab[from_end <= n_eval] = 2
    lab[(from_end > n_eval) & (from_end <= n_eval + n_valid)] = 1
    labels[:] = lab
    return labels.reindex(df.index).to_numpy()
