"""prepare: published splits and raw releases to MMRec's layout."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmrec_ld4mrec.cli import main
from mmrec_ld4mrec.engine.quick_start import run

from ..conftest import SHARED
from ..prepare_fixtures import N_ITEMS, N_USERS, write_diffmm, write_diffrec, write_hm, write_microlens, write_tmall

TIKTOK = SHARED / "data" / "tiktok"
ML1M = SHARED / "data" / "ml-1m"


def _prepare(*args) -> int:
    return main(["prepare", *map(str, args)])


@pytest.mark.skipif(not (TIKTOK / "trnMat.pkl").is_file(), reason=f"{TIKTOK} not present")
def test_shared_tiktok_gives_the_published_counts(tmp_path, capsys):
    assert _prepare("diffmm", "--src", TIKTOK, "--out", tmp_path / "tiktok") == 0
    stats = json.loads((tmp_path / "tiktok" / "stats.json").read_text())
    assert (stats["users"], stats["items"]) == (9308, 6710)
    assert (stats["train"], stats["validation"], stats["test"]) == (59541, 3051, 6130)
    assert stats["users_without_training_interactions"] == {"validation": 5, "test": 5}
    assert "5 in validation, 5 in test" in capsys.readouterr().out
    result = run("Pop", "tiktok", {"data_path": f"{tmp_path}/"})
    assert result["dropped_cold_users"] == {"validation": 5, "test": 5}


@pytest.mark.skipif(not (ML1M / "train_list.npy").is_file(), reason=f"{ML1M} not present")
def test_shared_ml1m(tmp_path):
    assert _prepare("diffrec", "--src", ML1M, "--out", tmp_path / "ml-1m") == 0
    stats = json.loads((tmp_path / "ml-1m" / "stats.json").read_text())
    assert (stats["users"], stats["items"], stats["interactions"]) == (5949, 2810, 571531)
    assert "is_multimodal_model: false" in (tmp_path / "ml-1m" / "ml-1m.yaml").read_text()


def test_diffmm_layout_and_slots(tmp_path):
    write_diffmm(tmp_path / "src")
    assert _prepare("diffmm", "--src", tmp_path / "src", "--out", tmp_path / "data" / "mini") == 0
    folder = tmp_path / "data" / "mini"
    assert sorted(p.name for p in folder.iterdir()) == ["audio_feat.npy", "image_feat.npy", "mini.inter", "mini.yaml",
                                                       "stats.json"]
    yaml_text = (folder / "mini.yaml").read_text()
    assert "vision_feature_file: image_feat.npy" in yaml_text and "text_feature_file: audio_feat.npy" in yaml_text
    assert np.load(folder / "image_feat.npy").dtype == np.float32
    settings = {"data_path": f"{tmp_path / 'data'}/", "epochs": 1, "embedding_size": 16, "hidden_size": 8,
                "svd_rank": 4, "soft_prob": 0.01, "smooth": 0.01, "topk": [5, 10], "valid_metric": "Recall@10"}
    assert _modalities("mini", settings) == 2  # the vision and the text slot both reach the model
    result = run("LD4MRec", "mini", settings)
    assert result["epochs_run"] == 1 and result["config"]["vision_feature_file"] == "image_feat.npy"
    _check_metrics(result)
    _check_pop_against_the_split(tmp_path / "data", "mini")


def test_diffrec_has_no_modalities(tmp_path):
    write_diffrec(tmp_path / "src")
    assert _prepare("diffrec", "--src", tmp_path / "src", "--out", tmp_path / "data" / "cf") == 0
    settings = {"data_path": f"{tmp_path / 'data'}/", "epochs": 1, "embedding_size": 16, "hidden_size": 8,
                "svd_rank": 4, "soft_prob": 0.01, "smooth": 0.01, "topk": [5, 10], "valid_metric": "Recall@10"}
    assert _modalities("cf", settings) == 0  # no features: LD4MRec runs without PG blocks
    result = run("LD4MRec", "cf", settings)
    assert result["epochs_run"] == 1 and result["config"]["is_multimodal_model"] is False
    _check_metrics(result)
    _check_pop_against_the_split(tmp_path / "data", "cf")


def _modalities(dataset: str, settings: dict) -> int:
    from mmrec_ld4mrec.engine.config import Config
    from mmrec_ld4mrec.engine.dataloader import TrainDataLoader
    from mmrec_ld4mrec.engine.dataset import RecDataset
    from mmrec_ld4mrec.models.ld4mrec import LD4MRec

    config = Config("LD4MRec", dataset, settings)
    train, _, _ = RecDataset(config).split()
    return LD4MRec(config, TrainDataLoader(config, train, 16)).n_modalities


def _check_metrics(result: dict) -> None:
    for split in ("valid", "test"):
        assert {"Recall@5", "Recall@10", "NDCG@5", "NDCG@10"} <= set(result[split])
        metrics = result[split]
        assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if not k.startswith("AveragePopularity")), metrics
        assert metrics["Recall@5"] <= metrics["Recall@10"], metrics  # a longer list holds the shorter one
    assert result["test"]["Recall@10"] > 0  # 30 items, 10 ranked: a trained model finds some


def _check_pop_against_the_split(data_path: Path, dataset: str) -> None:
    """Pop's test Recall@K on the prepared split, worked out from the .inter file alone: items
    ranked by training count, a user's training items masked. Items tied at the cut-off may
    fall either side of it, so the hand figure is a range, which here is narrow."""
    inter = pd.read_csv(data_path / dataset / f"{dataset}.inter", sep="\t")
    train, test = inter[inter.x_label == 0], inter[inter.x_label == 2]
    counts = train.itemID.value_counts().reindex(range(inter.itemID.max() + 1), fill_value=0).to_numpy()
    seen = train.groupby("userID").itemID.apply(set)
    result = run("Pop", dataset, {"data_path": f"{data_path}/", "topk": [5, 10], "valid_metric": "Recall@10"})
    for k in (5, 10):
        low, high = [], []
        for user, items in test.groupby("userID").itemID:
            if user not in seen:
                continue  # no training interactions: dropped from evaluation
            wanted = set(items)
            candidates = np.array([i for i in range(len(counts)) if i not in seen[user]])
            scores = counts[candidates]
            cut = np.sort(scores)[::-1][k - 1]
            above = list(candidates[scores > cut])
            tied = list(candidates[scores == cut])
            slots, tied_wanted = k - len(above), len(wanted & set(tied))
            sure = len(wanted & set(above))
            low.append((sure + max(0, slots - (len(tied) - tied_wanted))) / len(wanted))
            high.append((sure + min(tied_wanted, slots)) / len(wanted))
        assert np.mean(high) - np.mean(low) < 0.15  # the figure pins the result down
        assert np.mean(low) - 1e-6 <= result["test"][f"Recall@{k}"] <= np.mean(high) + 1e-6, (k, np.mean(low),
                                                                                             np.mean(high), result)


def _check_release(out, events):
    inter = pd.read_csv(out / f"{out.name}.inter", sep="\t")
    users = pd.read_csv(out / "user_id_mapping.tsv", sep="\t", dtype=str)
    items = pd.read_csv(out / "item_id_mapping.tsv", sep="\t", dtype=str)
    assert len(users) == inter.userID.nunique() and len(items) == inter.itemID.nunique()
    assert inter.groupby("userID").size().min() >= 10 and inter.groupby("itemID").size().min() >= 10
    assert not inter.duplicated(["userID", "itemID"]).any()
    for _, rows in inter.groupby("userID"):
        n = len(rows)
        counts = rows.x_label.value_counts()
        assert counts.get(2, 0) == max(1, round(0.1 * n)) and counts.get(1, 0) == max(1, round(0.1 * n))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["interactions"] == len(inter) and stats["users"] == inter.userID.nunique()
    return inter, users, items


def _times_by_label(inter, users, items, events, user_key, item_key):
    first = events.sort_values("ts").drop_duplicates(["user", "item"])
    lookup = {(user_key(u), item_key(i)): t for u, i, t in first[["user", "item", "ts"]].itertuples(index=False)}
    u_raw, i_raw = users.raw_id.to_numpy(), items.raw_id.to_numpy()
    inter = inter.assign(ts=[lookup[(u_raw[u], i_raw[i])] for u, i in zip(inter.userID, inter.itemID)])
    for _, rows in inter.groupby("userID"):
        assert rows[rows.x_label == 0].ts.max() <= rows[rows.x_label == 1].ts.min()
        assert rows[rows.x_label == 1].ts.max() <= rows[rows.x_label == 2].ts.min()


@pytest.mark.parametrize("header,sep", [(False, "\t"), (True, ",")])
def test_tmall_release(tmp_path, header, sep):
    events = write_tmall(tmp_path / "raw", header=header, sep=sep)
    assert _prepare("tmall", "--raw", tmp_path / "raw", "--out", tmp_path / "tmall") == 0
    inter, users, items = _check_release(tmp_path / "tmall", events)
    _times_by_label(inter, users, items, events, lambda u: f"u{u}", lambda i: str(i + 1000))


def test_microlens_release_with_features(tmp_path):
    events = write_microlens(tmp_path / "raw")
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(N_ITEMS - 1, 5)).astype(np.float32)  # item 30 has no feature row
    np.save(tmp_path / "img.npy", feats)
    (tmp_path / "img_ids.txt").write_text("\n".join(str(i) for i in range(1, N_ITEMS)))
    assert _prepare("microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "ml",
                    "--features", f"image_feat.npy={tmp_path / 'img.npy'},{tmp_path / 'img_ids.txt'}") == 0
    out = tmp_path / "ml"
    inter, users, items = _check_release(out, events)
    _times_by_label(inter, users, items, events, lambda u: str(u + 1), lambda i: str(i + 1))
    stored = np.load(out / "image_feat.npy")
    assert stored.shape == (len(items), 5)
    for new_id, raw_id in enumerate(items.raw_id):
        assert np.allclose(stored[new_id], feats[int(raw_id) - 1])
    assert json.loads((out / "stats.json").read_text())["items_dropped_without_features"] == 1


def test_hm_release(tmp_path):
    events = write_hm(tmp_path / "raw")
    assert _prepare("hm", "--raw", tmp_path / "raw", "--out", tmp_path / "hm") == 0
    inter, users, items = _check_release(tmp_path / "hm", events)
    _times_by_label(inter, users, items, events.assign(ts=events.ts // 86400), lambda u: f"{u * 7919:064x}",
                    lambda i: str(108775000 + i))


def test_overwrite_replaces_only_on_success(tmp_path, capsys):
    write_diffrec(tmp_path / "src")
    out = tmp_path / "cf"
    assert _prepare("diffrec", "--src", tmp_path / "src", "--out", out) == 0
    before = (out / "cf.inter").read_bytes()
    assert _prepare("diffrec", "--src", tmp_path / "src", "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    np.save(tmp_path / "src" / "test_list.npy", np.zeros((0, 2), dtype=np.int64))
    assert _prepare("diffrec", "--src", tmp_path / "src", "--out", out, "--overwrite") == 2
    assert (out / "cf.inter").read_bytes() == before


def _independent_core(pairs: set[tuple[int, int]], k: int) -> set[tuple[int, int]]:
    """Drop users and items with fewer than ``k`` pairs until none is left to drop."""
    while True:
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        kept = {(u, i) for u, i in pairs if users[u] >= k and items[i] >= k}
        if kept == pairs:
            return kept
        pairs = kept


def test_tmall_pairs_are_a_dedup_and_10_core_of_every_raw_row_the_last_included(tmp_path):
    """The prepared pairs, mapped back to raw ids, are exactly an independent dedup and 10-core
    of the raw events; the file's last row is a new pair of a user and an item that stay, so a
    reader dropping it shows."""
    events = write_tmall(tmp_path / "raw")
    pairs = set(zip(events.user, events.item))
    user, item = next((u, i) for u in range(N_USERS) for i in range(N_ITEMS) if (u, i) not in pairs)
    with open(tmp_path / "raw" / "Tianchi_2014002_Rec_Tmall_Log_partc.txt", "a") as fh:
        fh.write(f"{item + 1000}\tu{user}\tclick\t2013-09-30 23:59:59\n")
    expected = _independent_core(pairs | {(user, item)}, 10)
    assert (user, item) in expected
    assert _prepare("tmall", "--raw", tmp_path / "raw", "--out", tmp_path / "tmall") == 0
    inter = pd.read_csv(tmp_path / "tmall" / "tmall.inter", sep="\t")
    users = pd.read_csv(tmp_path / "tmall" / "user_id_mapping.tsv", sep="\t", dtype=str).raw_id.to_numpy()
    items = pd.read_csv(tmp_path / "tmall" / "item_id_mapping.tsv", sep="\t", dtype=str).raw_id.to_numpy()
    got = {(users[u], items[i]) for u, i in zip(inter.userID, inter.itemID)}
    assert got == {(f"u{u}", str(i + 1000)) for u, i in expected}


@pytest.mark.parametrize("stamp", ["inf", "1e30", "-5", "soon"])
def test_a_microlens_timestamp_no_clock_can_give_is_refused_naming_the_row(tmp_path, stamp, capsys):
    """inf and 1e30 milliseconds used to pass with a warning and wrap in int64."""
    write_microlens(tmp_path / "raw")
    path = tmp_path / "raw" / "MicroLens-50k_pairs.csv"
    lines = path.read_text().splitlines()
    user, item, _ = lines[3].split(",")
    lines[3] = f"{user},{item},{stamp}"
    path.write_text("\n".join(lines) + "\n")
    assert _prepare("microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "MicroLens-50k_pairs.csv" in err and "data row 3" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
