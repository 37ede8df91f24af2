"""Beyond-accuracy metrics and segments against examples worked out by hand."""

import math

import numpy as np
import pytest

from mmrec_ld4mrec.engine.beyond_accuracy import (
    activity_bins,
    beyond_accuracy_metrics,
    head_items,
    segment_metrics,
    training_context,
)

ALL = ["ItemCoverage", "GiniIndex", "AveragePopularity", "TailPercentage"]
# five items; items 0 and 1 tie at the head's edge (5 interactions each)
POPULARITY = np.array([5, 5, 3, 1, 0])


def test_the_head_is_the_most_interacted_fifth_ties_broken_by_item_id():
    # RecBole's tail: the int(0.8 * 5) = 4 items first in (interactions, id) order: 4, 3, 2, 0
    assert head_items(POPULARITY).tolist() == [False, True, False, False, False]
    assert head_items(np.zeros(10)).sum() == 2  # no interactions at all: still a fifth of the items


def test_each_metric_on_lists_with_masked_slots_and_an_empty_list():
    topk = np.array([[1, 0],   # user 0: both recommended
                     [0, 2],   # user 1: item 0 is a training item, masked: the list is [2]
                     [3, 4]])  # user 2: both training items: an empty list
    train_items = [np.array([], dtype=np.int64), np.array([0]), np.array([3, 4])]
    got = beyond_accuracy_metrics(topk, train_items, POPULARITY, ALL, [1, 2])
    # K = 2: lists {1, 0}, {2}, {}
    assert got["ItemCoverage@2"] == pytest.approx(3 / 5)
    # counts sorted [0, 0, 1, 1, 1]: sum_j (2j - 6) c_j = 0 + 2 + 4 = 6, over 5 * 3
    assert got["GiniIndex@2"] == pytest.approx(6 / 15)
    assert got["AveragePopularity@2"] == pytest.approx(((5 + 5) / 2 + 3 / 1) / 2)  # the empty list left out
    assert got["TailPercentage@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)  # item 1 is the head
    # K = 1: lists {1}, {}, {}
    assert got["ItemCoverage@1"] == pytest.approx(1 / 5)
    assert got["GiniIndex@1"] == pytest.approx(4 / 5)  # all on one item: (2 * 5 - 6) * 1 / (5 * 1)
    assert got["AveragePopularity@1"] == pytest.approx(5.0)
    assert got["TailPercentage@1"] == pytest.approx(0.0)


def test_only_the_metrics_named_are_computed_and_every_list_empty_gives_zeros():
    topk = np.array([[0, 1]])
    assert set(beyond_accuracy_metrics(topk, [np.array([2])], POPULARITY, ["Recall", "giniindex"], [2])) == {
        "GiniIndex@2"}
    empty = beyond_accuracy_metrics(topk, [np.array([0, 1])], POPULARITY, ALL, [2])
    assert empty == {"ItemCoverage@2": 0.0, "GiniIndex@2": 0.0, "AveragePopularity@2": 0.0, "TailPercentage@2": 0.0}


def test_an_even_spread_has_gini_zero_and_coverage_one():
    topk = np.array([[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]])  # every item twice
    got = beyond_accuracy_metrics(topk, [np.array([], dtype=np.int64)] * 5, POPULARITY, ALL, [2])
    assert got["GiniIndex@2"] == pytest.approx(0.0) and got["ItemCoverage@2"] == 1.0


def test_training_context_counts_each_pair_once():
    import scipy.sparse as sp

    train = sp.csr_matrix((np.ones(4), ([0, 0, 1, 1], [2, 2, 0, 2])), shape=(3, 3))  # (0, 2) twice
    items, popularity = training_context(train, np.array([1, 0]))
    assert [x.tolist() for x in items] == [[0, 2], [2]] and popularity.tolist() == [1, 0, 2]


def _toy_segments():
    # users with 1, 5, 10 and 20 training items: one per activity bin
    train_items = [np.arange(1), np.arange(5), np.arange(10), np.arange(20)]
    popularity = np.bincount(np.concatenate(train_items), minlength=30)
    held_out = [np.array([25, 1]), np.array([9, 28]), np.array([15]), np.array([21, 22])]
    topk = np.array([[1, 5], [28, 10], [0, 15], [23, 24]])
    return segment_metrics(topk, held_out, train_items, popularity, k=2)


def test_segments_by_user_activity():
    ideal2 = 1 + 1 / math.log2(3)
    rows = _toy_segments()["user activity"]
    assert list(rows) == ["1-3", "4-7", "8-15", "16+"]
    assert [rows[b]["users"] for b in rows] == [1, 1, 1, 1] and [rows[b]["test items"] for b in rows] == [2, 2, 1, 2]
    assert [rows[b]["Recall@2"] for b in rows] == pytest.approx([0.5, 0.5, 1.0, 0.0])
    assert [rows[b]["NDCG@2"] for b in rows] == pytest.approx([1 / ideal2, 1 / ideal2, 1 / math.log2(3), 0.0])


def test_segments_by_the_test_items_popularity():
    # popularity: item 0 has 4 users, 1-4 three, 5-9 two, 10-19 one, 20-29 none; the head is the
    # 30 - int(0.8 * 30) = 6 most interacted: 0-4 and 9 (9 beats 5-8 on id)
    rows = _toy_segments()["test item popularity"]
    head, tail = rows["head 20%"], rows["tail 80%"]
    assert (head["users"], head["test items"]) == (2, 2)  # item 1 of user 0, item 9 of user 1
    assert head["Recall@2"] == pytest.approx(0.5) and head["NDCG@2"] == pytest.approx(0.5)
    assert (tail["users"], tail["test items"]) == (4, 5)
    assert tail["Recall@2"] == pytest.approx((0 + 1 + 1 + 0) / 4)
    assert tail["NDCG@2"] == pytest.approx((0 + 1 + 1 / math.log2(3) + 0) / 4)


def test_a_segment_without_users_has_no_figures():
    # six items tied: the head is items 4 and 5 (by id); the one test item, 2, is in the tail
    rows = segment_metrics(np.array([[0, 1]]), [np.array([2])], [np.array([3])], np.ones(6, dtype=np.int64), k=2)
    assert rows["test item popularity"]["head 20%"] == {"users": 0, "test items": 0, "Recall@2": None, "NDCG@2": None}


def test_users_all_active_are_split_at_the_quartiles():
    activity = np.repeat([20, 30, 40, 50], 25)
    assert activity_bins(activity) == [(20, 27), (28, 35), (36, 42), (43, None)]  # 25 users each
    assert activity_bins(np.array([1, 5, 10, 20] * 25)) == [(1, 3), (4, 7), (8, 15), (16, None)]
