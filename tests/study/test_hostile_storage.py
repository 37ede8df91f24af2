"""`tune` against storages and names it cannot use: each refused before anything is created or
written, in one line naming the flag, with every file as it was."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ..hostile import assert_clean_error, cli, snapshot

JOURNAL = Path(__file__).resolve().parents[2] / "experiments" / "results" / "tune" / "tiktok" / "studies.journal"


def _tune(world: Path, *extra: str) -> list[str]:
    return ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", str(world / "data"), "--trials", "1",
            "--results", str(world / "R"), *extra]


def _damaged_journal(world: Path, how: str) -> str:
    text = JOURNAL.read_bytes()
    path = world / "studies.journal"
    if how == "cut short":
        path.write_bytes(text[:3000])
    elif how == "a garbage line":
        path.write_bytes(text[:text.index(b"\n") + 1] + b"this is not a record\n" + text[text.index(b"\n") + 1:])
    else:
        path.write_bytes(text + b'{"op_code": 99, "worker_id": "x"}\n')
    return f"journal:{path}"


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return f"journal:{path}"


def _sqlite(world: Path, how: str) -> str:
    path = world / "db.sqlite"
    if how == "garbage":
        path.write_bytes(b"garbage, not a database" * 20)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    return f"sqlite:///{path}"


STORAGES = {
    "a journal cut short": (lambda w: _damaged_journal(w, "cut short"), "cut short"),
    "a journal with a garbage line": (lambda w: _damaged_journal(w, "a garbage line"), "line 2 of the journal"),
    "a journal with an unknown operation": (lambda w: _damaged_journal(w, "unknown op"), "is not an Optuna journal"),
    "an empty journal path": (lambda w: "journal:", "names no file"),
    "the null device as a journal": (lambda w: "journal:/dev/null", "not a regular file"),
    "a pipe as a journal": (lambda w: _fifo(w / "pipe.journal"), "not a regular file"),  # reading it would hang
    "a pipe as an SQLite file": (lambda w: f"sqlite:///{_fifo(w / 'pipe.db')[len('journal:'):]}", "not a regular file"),
    "a folder as a journal": (lambda w: f"journal:{w}", "is a folder"),
    "a journal under a file": (lambda w: f"journal:{w / 'file.txt'}/j.journal", "file.txt"),
    "an in-memory database": (lambda w: "sqlite:///:memory:", "in-memory"),
    "a file that is not a database": (lambda w: _sqlite(w, "garbage"), "is not an SQLite database"),
    "another program's database": (lambda w: _sqlite(w, "other"), "a database of something else"),
    "an unknown scheme": (lambda w: "foo://x/y", "not a database URL SQLAlchemy knows"),
    "a web address": (lambda w: "http://example.org/db", "not a database URL SQLAlchemy knows"),
    "no scheme at all": (lambda w: "just-a-word", "expected sqlite:///PATH"),
}


@pytest.fixture
def world(tmp_path, data_path):
    os.symlink(data_path, tmp_path / "data")
    (tmp_path / "file.txt").write_text("a file\n")
    return tmp_path


@pytest.mark.parametrize("case", sorted(STORAGES))
def test_a_storage_a_study_cannot_live_in_is_refused_before_anything_is_written(case, world, capsys):
    make, needle = STORAGES[case]
    storage = make(world)
    before = snapshot(world)
    dev_before = set(os.listdir("/dev"))
    outcome = cli(_tune(world, "--storage", storage), capsys)
    assert_clean_error(outcome, "--storage", needle)
    assert snapshot(world) == before and set(os.listdir("/dev")) == dev_before


def test_a_database_whose_driver_is_missing_says_which(world, capsys):
    pytest.importorskip("sqlalchemy")
    try:
        import psycopg2  # noqa: F401
        pytest.skip("the PostgreSQL driver is installed here")
    except ImportError:
        pass
    assert_clean_error(cli(_tune(world, "--storage", "postgresql://u@localhost/db"), capsys), "--storage",
                       "driver is not installed")


@pytest.mark.parametrize("flags, needle", [
    (["--study", "../../../escaped"], "plain name"),
    (["--study", "/abs/path"], "plain name"),
    (["--heartbeat", "nan"], "--heartbeat"),
    (["--heartbeat", "0"], "--heartbeat"),
    (["--heartbeat", "-5"], "--heartbeat"),
    (["--heartbeat", "inf"], "--heartbeat"),
    (["--sampler-seed", "-1"], "--sampler-seed"),
])
def test_names_and_numbers_tune_cannot_use_are_refused(flags, needle, world, capsys):
    before = snapshot(world.parent)
    outcome = cli(_tune(world, *flags), capsys)
    assert_clean_error(outcome, needle)
    assert snapshot(world.parent) == before


@pytest.mark.parametrize("space, needle", [("{w}/spaces", "is a folder"), ("/dev/zero", "not a regular file")])
def test_a_search_space_that_is_not_a_file_says_what_it_is(space, needle, world, capsys):
    (world / "spaces").mkdir()
    outcome = cli(_tune(world, "--space", space.format(w=world)), capsys)
    assert_clean_error(outcome, "--space", needle)
