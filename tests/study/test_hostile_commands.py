"""Hostile inputs whose checks are unit-tested elsewhere, replayed through the command line as
a user would type them: exit 2, one `error:` line naming the file or key, no traceback, and
the folder they ran in (inputs, stores) byte for byte as before. The hangs run in their own
process under a timeout, so a regression fails instead of stalling the suite."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from ..hostile import assert_clean_error, cli, cli_process, snapshot
from ..prepare_fixtures import write_diffmm

LAUGHS = ("a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
          "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n")


def _object_pickle(world):
    write_diffmm(world / "src")
    matrix = sp.coo_matrix(pickle.loads((world / "src" / "trnMat.pkl").read_bytes()))
    matrix.data = np.array(["x"] * matrix.nnz, dtype=object)
    (world / "src" / "trnMat.pkl").write_bytes(pickle.dumps(matrix))
    return ["prepare", "diffmm", "--src", world / "src", "--out", world / "out" / "x"], ["trnMat.pkl", "got object"]


def _nested_overrides(world):
    from mmrec_ld4mrec.study.results_view import FLAT_FIELDS

    row = dict.fromkeys(FLAT_FIELDS, "") | {"key": "k" * 20, "status": "done", "experiment": "x", "model": "Pop",
                                            "dataset": "synthetic", "seed": "1", "overrides": "[" * 5000 + "]" * 5000}
    row |= {f"{s} {c}": "0.1" for s in ("valid", "test") for c in ("Recall@10", "Recall@20", "NDCG@10", "NDCG@20")}
    with open(world / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FLAT_FIELDS)
        writer.writeheader()
        writer.writerow(row)
    return ["results", "import", world / "runs.csv", "--results", world / "R"], ["runs.csv line 2", "'overrides'"]


def _profile(text):
    def make(world):
        (world / "p.yaml").write_text(text)
        return (["run", "-m", "Pop", "-d", "synthetic", "--data-path", world / "data", "--profile", world / "p.yaml"],
                ["p.yaml"])
    return make


def _experiment(text, *needles):
    def make(world):
        (world / "e.yaml").write_text(text)
        return ["reproduce", world / "e.yaml", "--results", world / "R", "--data-path", world / "data"], \
            ["e.yaml", *needles]
    return make


def _space(text, *needles):
    def make(world):
        (world / "space.yaml").write_text(text)
        return (["tune", "-m", "EASE", "-d", "synthetic", "--data-path", world / "data", "--trials", "1",
                 "--results", world / "R", "--space", world / "space.yaml"], ["space.yaml", *needles])
    return make


def _storage(url, *needles):
    def make(world):
        (world / "cut.db").write_bytes(b"SQLite format 3\x00" + bytes(50))
        return (["tune", "-m", "EASE", "-d", "synthetic", "--data-path", world / "data", "--trials", "1",
                 "--results", world / "R", "--storage", url.format(w=world)], ["--storage", *needles])
    return make


CASES = {
    "a DiffMM pickle with object-dtype values": _object_pickle,
    "an overrides cell nested thousands deep": _nested_overrides,
    "a profile with settings: null": _profile("model: Pop\nsettings: null\n"),
    "a profile whose own data_path would move the run": _profile("model: Pop\nsettings: {data_path: /elsewhere/}\n"),
    "a profile with budget: 5": _profile("model: Pop\nbudget: 5\nsettings: {}\n"),
    "an infinite reg_weight as a search-space choice": _space("reg_weight: {type: categorical, choices: [.inf]}\n",
                                                              "reg_weight"),
    "a journal in /proc": _storage("journal:/proc/x.journal", "/proc"),
    "an SQLite file cut short": _storage("sqlite:///{w}/cut.db", "cut.db"),
    "billion laughs in seeds": _experiment(LAUGHS + "name: e\ndatasets: [synthetic]\nseeds: *e\nmodels: {Pop: {}}\n",
                                           "aliases"),
}


@pytest.fixture
def world(tmp_path, data_path):
    world = tmp_path / "world"
    world.mkdir()
    (world / "data").symlink_to(data_path)
    return world


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_in_one_line_with_everything_as_it_was(case, world, capsys):
    argv, needles = CASES[case](world)
    before = snapshot(world.parent)
    assert_clean_error(cli(argv, capsys), *needles)
    assert snapshot(world.parent) == before


def test_the_settings_null_message_names_what_a_profile_holds(world, capsys):
    argv, _ = _profile("model: Pop\nsettings: null\n")(world)
    line = assert_clean_error(cli(argv, capsys), "p.yaml")
    assert "'settings' (a mapping of config keys)" in line


@pytest.mark.parametrize("text", [
    LAUGHS + "name: e\ndatasets: [synthetic]\nseeds: [1]\nbase: {topk: *e}\nmodels: {Pop: {}}\n",
])
def test_a_multiplying_experiment_ends_at_once_not_in_a_hang(text, world):
    (world / "e.yaml").write_text(text)
    before = snapshot(world.parent)
    outcome = cli_process(["reproduce", world / "e.yaml", "--results", world / "R", "--data-path", world / "data"],
                          timeout=60)
    assert_clean_error(outcome, "e.yaml", "aliases")
    assert snapshot(world.parent) == before


def test_a_pipe_as_the_journal_ends_at_once_not_in_a_hang(world):
    import os

    os.mkfifo(world / "j.fifo")
    outcome = cli_process(["tune", "-m", "EASE", "-d", "synthetic", "--data-path", world / "data", "--trials", "1",
                           "--results", world / "R", "--storage", f"journal:{world / 'j.fifo'}"], timeout=60)
    assert_clean_error(outcome, "--storage", "not a regular file")
    assert not (world / "R").exists()

