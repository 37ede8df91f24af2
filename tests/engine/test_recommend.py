"""`recommend`: the lists a checkpoint serves are the ones `run` ranked, in the ids the user
knows; bad requests end in one line."""

from __future__ import annotations

import pandas as pd
import pytest

from ..hostile import FAST, assert_clean_error, cli, snapshot
from ..prepare_fixtures import write_tmall


@pytest.fixture(scope="module")
def saved(tmp_path_factory, data_path):
    """LD4MRec trained briefly on synthetic, saved with the test users' top-50 CSV."""
    from mmrec_ld4mrec.cli import main

    folder = tmp_path_factory.mktemp("saved")
    assert main(["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", str(data_path), "--set", *FAST,
                 "--save", str(folder / "ck")]) == 0
    ranked = pd.read_csv(next((folder / "ck").glob("*.csv")), sep="\t")
    return folder / "ck", ranked


def _recommend(saved_ck, data_path, out, *extra, capsys):
    return cli(["recommend", "--checkpoint", saved_ck, "-d", "synthetic", "--data-path", data_path, "--out", out,
                *extra], capsys)


def test_the_test_users_get_the_lists_run_ranked(saved, data_path, tmp_path, capsys):
    ck, ranked = saved
    (tmp_path / "users.txt").write_text("\n".join(map(str, ranked["id"])) + "\n")
    outcome = _recommend(ck, data_path, tmp_path / "top.csv", "--users", tmp_path / "users.txt", "-k", "50",
                         "--requests", "20", capsys=capsys)
    assert outcome.code == 0, outcome.err
    served = pd.read_csv(tmp_path / "top.csv", sep="\t")
    assert list(served.columns) == ["id", *[f"top_{i}" for i in range(50)]]  # MMRec's top-K layout
    assert served.equals(ranked)
    assert "users/s" in outcome.out and "over 20 requests" in outcome.out


def test_every_user_by_default_and_parquet_holds_the_same_rows(saved, data_path, tmp_path, capsys):
    ck, ranked = saved
    assert _recommend(ck, data_path, tmp_path / "all.parquet", "-k", "50", "--requests", "0", capsys=capsys).code == 0
    every = pd.read_parquet(tmp_path / "all.parquet")
    assert every["id"].tolist() == list(range(1000))
    assert every.set_index("id").loc[ranked["id"]].reset_index().equals(ranked)


def test_raw_ids_in_and_out_where_prepare_wrote_mappings(tmp_path, capsys):
    write_tmall(tmp_path / "raw")
    assert cli(["prepare", "tmall", "--raw", tmp_path / "raw", "--out", tmp_path / "data" / "tm"], capsys).code == 0
    assert cli(["run", "-m", "EASE", "-d", "tm", "--data-path", tmp_path / "data", "--save", tmp_path / "ck",
                "--set", "topk=[5,10]", "valid_metric=Recall@10"],
               capsys).code == 0
    users = pd.read_csv(tmp_path / "data" / "tm" / "user_id_mapping.tsv", sep="\t", dtype=str)
    items = pd.read_csv(tmp_path / "data" / "tm" / "item_id_mapping.tsv", sep="\t", dtype=str)
    asked = users["raw_id"].iloc[[3, 0]].tolist()
    outcome = cli(["recommend", "--checkpoint", tmp_path / "ck", "-d", "tm", "--data-path", tmp_path / "data",
                   "--users", ",".join(asked), "-k", "5", "--out", tmp_path / "raw.csv", "--requests", "0"], capsys)
    assert outcome.code == 0, outcome.err
    raw = pd.read_csv(tmp_path / "raw.csv", sep="\t", dtype=str)
    assert raw["id"].tolist() == asked
    assert set(raw.drop(columns="id").to_numpy().ravel()) <= set(items["raw_id"])
    # the same lists as the internal ranking of those users
    outcome = cli(["recommend", "--checkpoint", tmp_path / "ck", "-d", "tm", "--data-path", tmp_path / "data",
                   "-k", "5", "--out", tmp_path / "all.csv", "--requests", "0"], capsys)
    every = pd.read_csv(tmp_path / "all.csv", sep="\t", dtype=str).set_index("id")
    assert (every.loc[asked].to_numpy() == raw.drop(columns="id").to_numpy()).all()


@pytest.mark.parametrize("case, extra, needles", [
    ("unknown user", ["--users", "5,99999,abc"], ["--users", "2 unknown user id(s)", "'99999'", "0..999"]),
    ("K above the items", ["-k", "100000"], ["-k/--topk", "more than the"]),
    ("no K", ["-k", "0"], ["-k/--topk", ">= 1"]),
    ("unknown format", ["--out-suffix", ".json"], ["--out", ".csv", ".parquet"]),
    ("an MMRec checkpoint here", ["--mmrec-checkpoint"], ["trained in MMRec's pipeline", "--engine mmrec"]),
])
def test_bad_requests_end_in_one_line_and_write_nothing(saved, data_path, tmp_path, capsys, case, extra, needles):
    ck, _ = saved
    out = tmp_path / "out.csv"
    if extra == ["--out-suffix", ".json"]:
        out, extra = tmp_path / "out.json", []
    if extra == ["--mmrec-checkpoint"]:
        import torch

        payload = torch.load(ck / "model.pt", weights_only=True)
        (tmp_path / "mm").mkdir()
        torch.save({**payload, "engine": "mmrec"}, tmp_path / "mm" / "model.pt")
        ck, extra = tmp_path / "mm", []
    before = snapshot(tmp_path)
    assert_clean_error(_recommend(ck, data_path, out, *extra, capsys=capsys), *needles)
    assert snapshot(tmp_path) == before


def test_a_checkpoint_of_another_dataset_is_refused(saved, tmp_path, capsys):
    ck, _ = saved
    write_tmall(tmp_path / "raw")
    assert cli(["prepare", "tmall", "--raw", tmp_path / "raw", "--out", tmp_path / "data" / "tm"], capsys).code == 0
    outcome = cli(["recommend", "--checkpoint", ck, "-d", "tm", "--data-path", tmp_path / "data",
                   "--out", tmp_path / "x.csv"], capsys)
    assert_clean_error(outcome, "model.pt", "trained on dataset 'synthetic'")
    assert not (tmp_path / "x.csv").exists()


def test_the_lists_are_never_written_over_the_dataset(saved, data_path, capsys):
    ck, _ = saved
    target = data_path / "synthetic" / "top.csv"
    assert_clean_error(_recommend(ck, data_path, target, capsys=capsys), "--out", "dataset's folder")
    assert not target.exists()


def test_a_long_list_of_ids_is_read_as_ids_not_taken_for_a_file_name(saved, data_path, tmp_path, capsys):
    """Seen while working: a comma list longer than a file name may be made `Path.is_file` raise."""
    ck, _ = saved
    ids = ",".join(map(str, range(1000)))
    outcome = _recommend(ck, data_path, tmp_path / "long.csv", "--users", ids, "--requests", "0", capsys=capsys)
    assert outcome.code == 0, outcome.err
    assert pd.read_csv(tmp_path / "long.csv", sep="\t")["id"].tolist() == list(range(1000))
