"""Hostile input against an MMRec checkout: install / uninstall and their manifest, and
`run --engine mmrec` on a dataset without a config. Each case ends in one clean line (exit code
2) or the documented behaviour, and nothing outside the checkout changes (issue 13, defects 1,
6 and 13 and the install / manifest cases of 10)."""

from __future__ import annotations

import hashlib
import json

import pytest

from mmrec_ld4mrec.mmrec import overlay
from mmrec_ld4mrec.mmrec.overlay import CHECKOUT_MARKERS, MANIFEST, install

from ..hostile import assert_clean_error, cli, snapshot


@pytest.fixture
def world(tmp_path):
    """A fake MMRec checkout at WORLD/MMRec beside a victim folder WORLD/victim holding user files."""
    root = tmp_path / "MMRec"
    for marker in CHECKOUT_MARKERS:
        (root / marker).parent.mkdir(parents=True, exist_ok=True)
        (root / marker).write_text("# upstream file\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("the user's own file\n")
    (victim / "weights.pt").write_bytes(b"the user's checkpoint")
    return tmp_path


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(root, files=None, dirs=None, raw=None):
    (root / MANIFEST).write_text(raw if raw is not None else json.dumps({"files": files or {}, "dirs": dirs or []}))


# --- 1. uninstall deletes outside the checkout -----------------------------------------------------------------

UNINSTALL_ESCAPES = {
    "dir with ..": lambda w: {"dirs": ["data/../../victim"]},
    "dir three levels up": lambda w: {"dirs": ["data/../../../" + w.name + "/victim"]},
    "file with ..": lambda w: {"files": {"../victim/keep.txt": _sha(w / "victim" / "keep.txt")}},
    "absolute file": lambda w: {"files": {str(w / "victim" / "keep.txt"): _sha(w / "victim" / "keep.txt")}},
    "absolute dir": lambda w: {"dirs": [str(w / "victim")]},
    "file through a link": lambda w: {"files": {"out/keep.txt": _sha(w / "victim" / "keep.txt")}},
    "dir that is a link": lambda w: {"dirs": ["out"]},
}


@pytest.mark.parametrize("case", UNINSTALL_ESCAPES)
def test_uninstall_never_touches_anything_outside_the_checkout(world, capsys, case):
    root = world / "MMRec"
    (root / "out").symlink_to(world / "victim")
    _manifest(root, **UNINSTALL_ESCAPES[case](world))
    before = snapshot(world)
    outcome = cli(["uninstall", "--mmrec-root", root], capsys)
    assert_clean_error(outcome, MANIFEST, "nothing was changed")
    assert snapshot(world) == before


def test_uninstall_removes_caches_only_in_the_generated_dataset_folder(world):
    root = world / "MMRec"
    install(root)
    (root / "data" / "synthetic" / "image_adj_10.pt").write_bytes(b"MMRec cache of our data")
    (root / "data" / "mine").mkdir()
    (root / "data" / "mine" / "model.pt").write_bytes(b"the user's")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["dirs"].append("data/mine")  # even if the manifest claims it
    (root / MANIFEST).write_text(json.dumps(manifest))
    report = overlay.uninstall(root)
    assert not (root / "data" / "synthetic").exists()
    assert (root / "data" / "mine" / "model.pt").read_bytes() == b"the user's"
    assert "data/mine/" in report["kept"]


# --- 6. uninstall removed a file the user had before install ---------------------------------------------------

def test_a_file_the_user_had_with_our_content_survives_uninstall(world):
    root = world / "MMRec"
    ours = next(f for f in overlay.planned_files() if f.target == "src/configs/model/LD4MRec.yaml")
    (root / ours.target).parent.mkdir(parents=True, exist_ok=True)
    (root / ours.target).write_bytes(ours.content)
    report = install(root)
    assert ours.target in report["unchanged"]
    assert ours.target not in json.loads((root / MANIFEST).read_text())["files"]
    overlay.uninstall(root)
    assert (root / ours.target).read_bytes() == ours.content


@pytest.mark.parametrize("link", ["src/configs/dataset", "src/models", "data"])
def test_install_never_writes_through_a_link_that_leaves_the_checkout(world, capsys, link):
    """A folder of the checkout that is a link to elsewhere: install refuses before writing anything
    (uninstall would refuse to remove such files ever after)."""
    root = world / "MMRec"
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(world / "victim", target_is_directory=True)
    before = snapshot(world)
    assert_clean_error(cli(["install", "--mmrec-root", root], capsys), link + "/", "link", "nothing was changed")
    assert snapshot(world) == before


# --- 10. malformed manifests and a checkout that cannot be written ---------------------------------------------

BAD_MANIFESTS = {
    "a list": "[1, 2]",
    "not JSON": "{files: nope",
    "binary": "\x00\x01\x02",
    "files is a list": json.dumps({"files": [], "dirs": []}),
    "digest is a number": json.dumps({"files": {"src/models/pop.py": 5}, "dirs": []}),
    "dir is a number": json.dumps({"files": {}, "dirs": [3]}),
    "empty path": json.dumps({"files": {}, "dirs": [""]}),
}


@pytest.mark.parametrize("command", ["install", "uninstall"])
@pytest.mark.parametrize("case", BAD_MANIFESTS)
def test_a_malformed_manifest_is_refused_in_one_line(world, capsys, command, case):
    root = world / "MMRec"
    _manifest(root, raw=BAD_MANIFESTS[case])
    before = snapshot(world)
    assert_clean_error(cli([command, "--mmrec-root", root], capsys), MANIFEST)
    assert snapshot(world) == before


def test_install_into_a_checkout_it_cannot_write_changes_nothing(world, capsys, monkeypatch):
    """A read-only checkout (simulated: tests run as root, who may write anywhere) fails part-way."""
    root = world / "MMRec"
    before = snapshot(world)
    calls = []

    def refuse(path, write):
        calls.append(path)
        if len(calls) > 3:
            raise PermissionError(13, "Permission denied", str(path))
        return original(path, write)

    original = overlay.atomic_write
    monkeypatch.setattr(overlay, "atomic_write", refuse)
    assert_clean_error(cli(["install", "--mmrec-root", root], capsys), "cannot write", "nothing was changed")
    assert snapshot(world) == before


# --- 13. the MMRec engine on a dataset without a config anywhere -----------------------------------------------

def test_mmrec_engine_without_any_dataset_config_says_so_before_starting(world, capsys):
    root = world / "MMRec"
    outcome = cli(["run", "--engine", "mmrec", "--mmrec-root", root, "-m", "BPR", "-d", "mine",
                   "--data-path", world / "data"], capsys)
    assert_clean_error(outcome, "no dataset config for 'mine'", "mine.yaml")


def test_mmrec_engine_with_a_dataset_config_that_is_a_folder_says_so(world, capsys):
    root = world / "MMRec"
    (world / "data" / "mine" / "mine.yaml").mkdir(parents=True)
    outcome = cli(["run", "--engine", "mmrec", "--mmrec-root", root, "-m", "BPR", "-d", "mine",
                   "--data-path", world / "data"], capsys)
    line = assert_clean_error(outcome, str(world / "data" / "mine" / "mine.yaml"), "not a file")
    assert "neither" not in line
