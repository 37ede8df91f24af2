"""Hostile input against what the project writes and deletes: `prepare` and its slots and
--overwrite, outputs written by rename, and the embedded ``synthetic`` generator started by
several first runs at once. Each case ends in one clean line (exit code 2) or the documented
behaviour, and nothing outside the intended folder changes (issue 13, defects 2, 3 and 5).
The install / manifest cases: tests/mmrec/test_hostile_checkout.py."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from mmrec_ld4mrec.data.synthetic import FEATURE_DIMS, INTER_FILE

from ..hostile import FAST, assert_clean_error, cli, snapshot, wait_for
from ..prepare_fixtures import N_ITEMS, write_diffmm, write_diffrec, write_microlens

# --- 2. prepare --features SLOT=...: the slot is a plain file name ---------------------------------------------

@pytest.mark.parametrize("slot", ["/abs/x.npy", "../../x.npy", "../x.npy", "sub/x.npy", ".hidden.npy", "a\\b.npy"])
def test_a_feature_slot_is_a_plain_file_name(tmp_path, capsys, slot):
    write_microlens(tmp_path / "raw")
    np.save(tmp_path / "f.npy", np.ones((N_ITEMS, 3), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(str(i) for i in range(1, N_ITEMS + 1)))
    slot = slot.replace("/abs", str(tmp_path / "abs"))
    before = snapshot(tmp_path)
    outcome = cli(["prepare", "microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "data" / "ml",
                   "--features", f"{slot}={tmp_path / 'f.npy'},{tmp_path / 'ids.txt'}"], capsys)
    assert_clean_error(outcome, "plain file name")
    assert snapshot(tmp_path) == before


def test_two_features_with_one_slot_name_are_refused(tmp_path, capsys):
    write_microlens(tmp_path / "raw")
    np.save(tmp_path / "f.npy", np.ones((N_ITEMS, 3), dtype=np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(str(i) for i in range(1, N_ITEMS + 1)))
    spec = f"image_feat.npy={tmp_path / 'f.npy'},{tmp_path / 'ids.txt'}"
    outcome = cli(["prepare", "microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "ml", "--features", spec, spec],
                  capsys)
    assert_clean_error(outcome, "repeat")
    assert not (tmp_path / "ml").exists()


# --- 5. prepare --overwrite deleted its own source -------------------------------------------------------------

def test_prepare_never_overwrites_its_own_source(tmp_path, capsys):
    src = tmp_path / "D"
    write_diffrec(src)
    (src / "notes.txt").write_text("mine\n")
    (src / "sub").mkdir()
    before = snapshot(tmp_path)
    for out in (src, tmp_path):  # the source itself, and a folder holding it
        outcome = cli(["prepare", "diffrec", "--src", src, "--out", out, "--overwrite"], capsys)
        assert_clean_error(outcome, "source")
        assert snapshot(tmp_path) == before


def test_overwrite_replaces_only_a_folder_prepare_wrote(tmp_path, capsys):
    write_diffrec(tmp_path / "src")
    mine = tmp_path / "data" / "cf"
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work\n")
    before = snapshot(tmp_path)
    outcome = cli(["prepare", "diffrec", "--src", tmp_path / "src", "--out", mine, "--overwrite"], capsys)
    assert_clean_error(outcome, "only a dataset folder that `prepare` wrote")
    assert snapshot(tmp_path) == before
    other = tmp_path / "data" / "cf2"
    assert cli(["prepare", "diffrec", "--src", tmp_path / "src", "--out", other], capsys).code == 0
    assert cli(["prepare", "diffrec", "--src", tmp_path / "src", "--out", other, "--overwrite"], capsys).code == 0


@pytest.mark.parametrize("added", ["notes.txt", "sub/", "extra.npy", "link.pt"])
def test_overwrite_keeps_what_the_user_added_to_a_prepared_folder(tmp_path, capsys, added):
    """--overwrite replaces a prepared folder only while it holds nothing but what prepare wrote and
    MMRec's caches (*.pt); a file or folder the user added later is named, and nothing is deleted."""
    write_diffmm(tmp_path / "src")
    out = tmp_path / "data" / "mine"
    argv = ["prepare", "diffmm", "--src", tmp_path / "src", "--out", out, "--overwrite"]
    assert cli(argv, capsys).code == 0
    (out / "image_adj_10.pt").write_bytes(b"MMRec's cache")  # derived from the data: may go with it
    name = added.rstrip("/")
    if added.endswith("/"):
        (out / name).mkdir()
        (out / name / "work.txt").write_text("the user's\n")
    elif added == "link.pt":
        (tmp_path / "precious.pt").write_bytes(b"the user's checkpoint")
        (out / name).symlink_to(tmp_path / "precious.pt")
    else:
        (out / name).write_text("the user's\n")
    before = snapshot(tmp_path)
    assert_clean_error(cli(argv, capsys), str(out), f"'{name}'")
    assert snapshot(tmp_path) == before
    if added.endswith("/"):
        shutil.rmtree(out / name)
    else:
        (out / name).unlink()
    assert cli(argv, capsys).code == 0  # only prepare's files and the cache: replaced
    assert not (out / "image_adj_10.pt").exists()


# --- 3. outputs written by rename never replace a link or a device ---------------------------------------------

def _special(tmp_path, kind):
    target = tmp_path / "node"
    if kind == "link":
        (tmp_path / "elsewhere.json").write_text("precious\n")
        target.symlink_to(tmp_path / "elsewhere.json")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        try:
            os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
        except PermissionError:
            pytest.skip("creating a device node needs privileges this run lacks")
    elif kind == "folder":
        target.mkdir()
        (target / "inside.txt").write_text("kept\n")
    return target


@pytest.mark.parametrize("kind", ["link", "fifo", "device", "folder"])
@pytest.mark.parametrize("command", ["run", "summarize"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_work(tmp_path, data_path, capsys, kind, command):
    target = _special(tmp_path, kind)
    before = snapshot(tmp_path)
    if command == "run":
        argv = ["run", "-m", "Pop", "-d", "synthetic", "--data-path", data_path, "--out", target]
    elif command == "summarize":
        result = tmp_path / "r.json"
        result.write_text(json.dumps({"model": "Pop", "dataset": "x", "valid": {"Recall@20": 0.1},
                                      "test": {"Recall@20": 0.1}}))
        before = snapshot(tmp_path)
        argv = ["summarize", result, "--out", target]
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, str(target))
    assert snapshot(tmp_path) == before


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    from mmrec_ld4mrec.files import atomic_write

    path = tmp_path / "report.md"
    path.write_text("old\n")

    def half(tmp):
        with open(tmp, "w") as f:
            f.write("half a rep")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, half)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


# --- prepare for other data: --core K, an interactions-only DiffMM release -------------------------------------

def test_core_filters_raw_releases_and_is_checked(tmp_path, capsys):
    write_microlens(tmp_path / "raw")
    assert cli(["prepare", "microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "k10"], capsys).code == 0
    assert cli(["prepare", "microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "k15", "--core", "15"],
               capsys).code == 0
    k10 = json.loads((tmp_path / "k10" / "stats.json").read_text())
    k15 = json.loads((tmp_path / "k15" / "stats.json").read_text())
    assert k15["users"] < k10["users"] and "15-core" in k15["source"] and "10-core" in k10["source"]
    for bad in ("0", "-3"):
        assert_clean_error(cli(["prepare", "microlens", "--raw", tmp_path / "raw", "--out", tmp_path / "x",
                                "--core", bad], capsys), "--core")
    write_diffrec(tmp_path / "dr")
    assert_clean_error(cli(["prepare", "diffrec", "--src", tmp_path / "dr", "--out", tmp_path / "y", "--core", "5"],
                           capsys), "kept as published")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_an_interactions_only_diffmm_release_prepares_as_not_multimodal(tmp_path, capsys):
    write_diffmm(tmp_path / "src")
    for name in ("image_feat.npy", "audio_feat.npy"):
        (tmp_path / "src" / name).unlink()
    assert cli(["prepare", "diffmm", "--src", tmp_path / "src", "--out", tmp_path / "data" / "plain"], capsys).code == 0
    folder = tmp_path / "data" / "plain"
    assert sorted(p.name for p in folder.iterdir()) == ["plain.inter", "plain.yaml", "stats.json"]
    assert "is_multimodal_model: false" in (folder / "plain.yaml").read_text()
    outcome = cli(["run", "-m", "LD4MRec", "-d", "plain", "--data-path", tmp_path / "data",
                   "--set", *FAST, "topk=[5,10]", "valid_metric=Recall@10"], capsys)
    assert outcome.code == 0, outcome.err


# --- the embedded `synthetic` generator: two first runs creating it at once ------------------------------------

RACE = """import pathlib, sys, time
from mmrec_ld4mrec.data.synthetic import ensure_synthetic
folder, ready, go = map(pathlib.Path, sys.argv[1:4])
ready.touch()
while not go.exists():
    time.sleep(0.002)
ensure_synthetic(folder)
"""


def test_first_runs_at_once_all_get_the_synthetic_dataset(tmp_path, data_path):
    folder = tmp_path / "data" / "synthetic"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(folder), str(tmp_path / f"ready{i}"), str(go)],
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    try:
        wait_for(lambda: all((tmp_path / f"ready{i}").exists() for i in range(4)), what="the writers")
        go.touch()
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert sorted(os.listdir(folder)) == sorted([INTER_FILE, *FEATURE_DIMS])
    assert os.listdir(tmp_path / "data") == ["synthetic"]  # no temporary folder left behind
    for name in os.listdir(folder):  # the generator is deterministic: whoever won wrote the same files
        assert (folder / name).read_bytes() == (data_path / "synthetic" / name).read_bytes(), name
