import math

import numpy as np
import pytest

from mmrec_ld4mrec.engine.metrics import topk_metrics


def test_hand_computed_user():
    # one user, 2 held-out items, hits at ranks 1 and 3 of 4
    hits = np.array([[True, False, True, False]])
    m = topk_metrics(hits, np.array([2]), ["Recall", "NDCG", "Precision", "MAP"], [1, 2, 3, 4])
    assert m["Recall@1"] == pytest.approx(0.5)
    assert m["Recall@3"] == pytest.approx(1.0)
    assert m["Precision@3"] == pytest.approx(2 / 3)
    idcg = 1 + 1 / math.log2(3)
    assert m["NDCG@1"] == pytest.approx(1.0)
    assert m["NDCG@3"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    # MAP@k = sum_j P(j) rel(j) / min(pos_len, k)
    assert m["MAP@1"] == pytest.approx(1.0)
    assert m["MAP@3"] == pytest.approx((1 + 2 / 3) / 2)


def test_average_over_users_and_short_ideal_lists():
    hits = np.array([[False, True], [False, False]])
    m = topk_metrics(hits, np.array([1, 3]), ["Recall", "NDCG", "MAP"], [2])
    assert m["Recall@2"] == pytest.approx((1.0 + 0.0) / 2)
    # user 0: one held-out item, so IDCG@2 = 1; DCG = 1/log2(3)
    assert m["NDCG@2"] == pytest.approx((1 / math.log2(3)) / 2)
    assert m["MAP@2"] == pytest.approx((0.5 / 1) / 2)


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="Hit"):
        topk_metrics(np.zeros((1, 2), bool), np.array([1]), ["Hit"], [1])


def test_recall_divides_by_every_test_item_not_by_the_cut_off():
    """One user with 5 test items and a hit at rank 1: Recall@2 is 1/5 (MMRec's definition),
    not 1/min(5, 2)."""
    hits = np.array([[True, False, False, False, False]])
    out = topk_metrics(hits, np.array([5]), ["recall", "precision"], [1, 2, 5])
    assert out["Recall@2"] == pytest.approx(0.2) and out["Recall@1"] == pytest.approx(0.2)
    assert out["Precision@2"] == pytest.approx(0.5)
