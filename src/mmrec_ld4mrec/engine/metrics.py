"""Top-k metrics with MMRec's definitions, averaged over users.

``hits`` is a boolean [n_users, K] matrix (True where the i-th ranked item is held out for
the user) and ``pos_len`` the number of held-out items per user.

* Recall@k    = |hits in top k| / pos_len
* Precision@k = |hits in top k| / k
* NDCG@k      = DCG@k / IDCG@k, DCG = sum over hit ranks i of 1/log2(i+1), IDCG over the
  first min(pos_len, k) ranks
* MAP@k       = (1 / min(pos_len, k)) * sum over ranks j <= k of Precision@j * hit_j
"""

from __future__ import annotations

import numpy as np


def _cum_hits(hits: np.ndarray) -> np.ndarray:
    return np.cumsum(hits, axis=1, dtype=np.float64)


def recall_at(hits: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    return (_cum_hits(hits) / pos_len[:, None]).mean(axis=0)


def precision_at(hits: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    return (_cum_hits(hits) / np.arange(1, hits.shape[1] + 1)).mean(axis=0)


def ndcg_at(hits: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = np.cumsum(np.where(hits, discount, 0.0), axis=1)
    ideal_hits = np.arange(1, hits.shape[1] + 1)[None, :] <= pos_len[:, None]
    idcg = np.cumsum(np.where(ideal_hits, discount, 0.0), axis=1)
    return (dcg / idcg).mean(axis=0)


def map_at(hits: np.ndarray, pos_len: np.ndarray) -> np.ndarray:
    ranks = np.arange(1, hits.shape[1] + 1)
    precision = _cum_hits(hits) / ranks
    sum_precision = np.cumsum(precision * hits, axis=1)
    return (sum_precision / np.minimum(pos_len[:, None], ranks[None, :])).mean(axis=0)


METRICS = {"recall": recall_at, "precision": precision_at, "ndcg": ndcg_at, "map": map_at}
DISPLAY = {"recall": "Recall", "precision": "Precision", "ndcg": "NDCG", "map": "MAP"}


def topk_metrics(hits: np.ndarray, pos_len: np.ndarray, metrics: list[str], topk: list[int]) -> dict[str, float]:
    """``{"Recall@20": ..., ...}`` for each metric name (case-insensitive) and cut-off."""
    hits = np.asarray(hits, dtype=bool)
    pos_len = np.asarray(pos_len, dtype=np.float64)
    out = {}
    for name in metrics:
        key = name.lower()
        if key not in METRICS:
            raise ValueError(f"metrics: unknown metric {name!r}; expected some of {list(DISPLAY.values())}")
        curve = METRICS[key](hits, pos_len)
        for k in topk:
            out[f"{DISPLAY[key]}@{k}"] = float(curve[k - 1])
    return out
