"""Beyond-accuracy metrics of the top-K lists, and accuracy by user and item segment.

Both engines call these on the same lists their Recall and NDCG are computed on: every
evaluation user's top-K items with the user's training items masked. A masked item that
still fills a slot (a user who has interacted with nearly every item) is no recommendation
and is dropped, so a list may be shorter than K, or empty.

The definitions are RecBole's (``recbole.evaluator.metrics``), with P(i) the number of lists
item i appears in, phi(i) its training interactions, R_u user u's list, I the items:

* ItemCoverage@K      = |union of R_u| / |I|
* GiniIndex@K         = sum_j (2j - |I| - 1) P_(j) / (|I| sum_j P_(j)), P_(j) in non-decreasing
  order over all items (an item never recommended counts 0); 0 spreads the lists evenly, 1 puts
  them on one item
* AveragePopularity@K = mean over users of sum_{i in R_u} phi(i) / |R_u|
* TailPercentage@K    = mean over users of |R_u and T| / |R_u|, T the long tail

The long tail T is every item outside the head: the 20 % of items with the most training
interactions (RecBole's ``tail_ratio: 0.8``: the int(0.8 |I|) items with the fewest, ties
broken by item id). Unlike RecBole, items with no training interaction are counted among the
items (they are the tail's end). Users with an empty list are left out of the two per-user means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

BEYOND = {"itemcoverage": "ItemCoverage", "giniindex": "GiniIndex", "averagepopularity": "AveragePopularity",
          "tailpercentage": "TailPercentage"}
HEAD_SHARE = 0.2  # the head: the most-interacted 20 % of items
ACTIVITY_BINS = ((1, 3), (4, 7), (8, 15), (16, None))  # training interactions per user
MIN_BIN_SHARE = 0.01  # a user-activity bin with fewer users than this: quartiles instead
SEGMENT_K = 20


def training_context(train: sp.spmatrix, eval_users: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """From the training matrix [users, items]: each evaluation user's training items (what
    the ranking masks) and each item's training interactions (phi, its popularity)."""
    train = sp.csr_matrix(train)
    if not train.has_canonical_format or (train.data != 1).any():  # copied only when not already 0/1 pairs
        train = train.copy()
        train.sum_duplicates()
        train.data[:] = 1
    sub = train[np.asarray(eval_users)].tocsr()
    sub.sort_indices()
    popularity = np.asarray(train.sum(axis=0)).ravel().astype(np.int64)
    return np.split(sub.indices.astype(np.int64), sub.indptr[1:-1]), popularity


def head_items(popularity: np.ndarray, share: float = HEAD_SHARE) -> np.ndarray:
    """Boolean per item: in the head (the ``share`` most-interacted items; RecBole's tail is
    the int((1 - share) |I|) items first in (interactions, id) order, the head the rest)."""
    n = len(popularity)
    order = np.lexsort((np.arange(n), popularity))  # by interactions, then id, ascending
    head = np.ones(n, dtype=bool)
    head[order[: int(round((1.0 - share) * n, 9))]] = False
    return head


def recommended(topk: np.ndarray, train_items: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Boolean [users, K]: is the ranked item a recommendation (not one of the user's training
    items, which are masked and fill a slot only when too few others are left)?"""
    topk = np.asarray(topk, dtype=np.int64)
    rows = np.repeat(np.arange(len(train_items)), [len(x) for x in train_items])
    seen = rows * n_items + np.concatenate([*train_items, np.empty(0, dtype=np.int64)]).astype(np.int64)
    return ~np.isin(np.arange(len(topk))[:, None] * n_items + topk, seen)


def item_coverage(topk: np.ndarray, kept: np.ndarray, n_items: int) -> float:
    return len(np.unique(topk[kept])) / n_items


def gini_index(topk: np.ndarray, kept: np.ndarray, n_items: int) -> float:
    counts = np.sort(np.bincount(topk[kept], minlength=n_items))
    if counts.sum() == 0:
        return 0.0
    j = np.arange(1, n_items + 1)
    return float(np.sum((2 * j - n_items - 1) * counts) / (n_items * counts.sum()))


def _per_user_mean(values: np.ndarray, kept: np.ndarray) -> float:
    """The mean over users with a non-empty list of the mean of ``values`` over their list."""
    length = kept.sum(axis=1)
    users = length > 0
    if not users.any():
        return 0.0
    return float(np.mean((values * kept).sum(axis=1)[users] / length[users]))


def average_popularity(topk: np.ndarray, kept: np.ndarray, popularity: np.ndarray) -> float:
    return _per_user_mean(popularity[topk].astype(np.float64), kept)


def tail_percentage(topk: np.ndarray, kept: np.ndarray, head: np.ndarray) -> float:
    return _per_user_mean((~head[topk]).astype(np.float64), kept)


# each measure of (ranked [users, k], kept [users, k], popularity, head)
MEASURES = {"ItemCoverage": lambda ranked, kept, pop, head: item_coverage(ranked, kept, len(pop)),
            "GiniIndex": lambda ranked, kept, pop, head: gini_index(ranked, kept, len(pop)),
            "AveragePopularity": lambda ranked, kept, pop, head: average_popularity(ranked, kept, pop),
            "TailPercentage": lambda ranked, kept, pop, head: tail_percentage(ranked, kept, head)}


def beyond_accuracy_metrics(topk: np.ndarray, train_items: Sequence[np.ndarray], popularity: np.ndarray,
                            metrics: Sequence[str], cutoffs: Sequence[int]) -> dict[str, float]:
    """``{"ItemCoverage@20": ..., ...}`` for each beyond-accuracy name in ``metrics`` (others
    are skipped) and cut-off; ``topk`` [users, >= max(cutoffs)] ranked item ids."""
    wanted = [BEYOND[m.lower()] for m in metrics if m.lower() in BEYOND]
    if not wanted:
        return {}
    topk = np.asarray(topk, dtype=np.int64)
    head = head_items(popularity)
    kept_all = recommended(topk, train_items, len(popularity))
    out = {}
    for k in cutoffs:
        ranked, kept = topk[:, :k], kept_all[:, :k]
        for name in wanted:
            out[f"{name}@{k}"] = MEASURES[name](ranked, kept, popularity, head)
    return out


def _recall_ndcg(lists: Sequence[np.ndarray], relevant: Sequence[np.ndarray], k: int) -> tuple[float, float]:
    """Recall@k and NDCG@k (MMRec's definitions) over users with at least one relevant item."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    recalls, ndcgs = [], []
    for row, wanted in zip(lists, relevant):
        if not len(wanted):
            continue
        hits = np.isin(row[:k], wanted)
        recalls.append(hits.sum() / len(wanted))
        ndcgs.append(discount[: len(hits)][hits].sum() / discount[: min(len(wanted), k)].sum())
    return (float(np.mean(recalls)), float(np.mean(ndcgs))) if recalls else (None, None)


def activity_bins(activity: np.ndarray) -> list[tuple[int, int | None]]:
    """``ACTIVITY_BINS`` where each holds at least ``MIN_BIN_SHARE`` of the users; else (a
    dataset of active users only, such as ML-1M) the quartiles of training interactions."""
    def count(low, high):
        return int(((activity >= low) & (activity <= (np.inf if high is None else high))).sum())

    if all(count(low, high) >= MIN_BIN_SHARE * len(activity) for low, high in ACTIVITY_BINS):
        return list(ACTIVITY_BINS)
    edges = sorted({int(np.floor(q)) for q in np.quantile(activity, [0.25, 0.5, 0.75])})
    lows = [int(activity.min()), *[e + 1 for e in edges]]
    return [(low, high) for low, high in zip(lows, [*edges, None]) if count(low, high)]


def activity_label(low: int, high: int | None) -> str:
    return f"{low}+" if high is None else (f"{low}" if low == high else f"{low}-{high}")


def segment_metrics(topk: np.ndarray, held_out: Sequence[np.ndarray], train_items: Sequence[np.ndarray],
                    popularity: np.ndarray, k: int = SEGMENT_K) -> dict:
    """Recall@k and NDCG@k by user activity (training interactions, :func:`activity_bins`) and
    by the popularity of the test item (head 20 % / tail 80 %: a user's Recall in a segment
    counts only the user's held-out items of that segment), with each segment's users and test
    items. A segment without users has no figures (None)."""
    topk = np.asarray(topk)[:, :k]
    activity = np.array([len(x) for x in train_items])
    head = head_items(popularity)
    out: dict[str, dict] = {"user activity": {}, "test item popularity": {}}
    for low, high in activity_bins(activity):
        inside = (activity >= low) & (activity <= (high if high is not None else np.inf))
        users = np.flatnonzero(inside)
        recall, ndcg = _recall_ndcg([topk[u] for u in users], [held_out[u] for u in users], k)
        out["user activity"][activity_label(low, high)] = {
            "users": int(len(users)), "test items": int(sum(len(held_out[u]) for u in users)),
            f"Recall@{k}": recall, f"NDCG@{k}": ndcg}
    for label, in_head in ((f"head {HEAD_SHARE:.0%}", True), (f"tail {1 - HEAD_SHARE:.0%}", False)):
        relevant = [items[head[items] == in_head] for items in held_out]
        recall, ndcg = _recall_ndcg(list(topk), relevant, k)
        out["test item popularity"][label] = {
            "users": int(sum(1 for r in relevant if len(r))), "test items": int(sum(len(r) for r in relevant)),
            f"Recall@{k}": recall, f"NDCG@{k}": ndcg}
    return out
