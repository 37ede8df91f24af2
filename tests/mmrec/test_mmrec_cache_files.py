"""The graphs MMRec's models cache beside a dataset: a stopped writer leaves nothing half-written,
and an unreadable cache is named with how to recover (`mmrec.cache_files`; no checkout needed)."""

import io
import pickle
import signal
import subprocess
import sys
import time
import types

import pytest
import torch

from mmrec_ld4mrec.data.layout import foreign_entry
from mmrec_ld4mrec.errors import UserInputError
from mmrec_ld4mrec.mmrec.cache_files import guard_torch_files


@pytest.fixture
def guarded():
    """A stand-in for the torch module with the real save/load, guarded as MMRec's process does."""
    fake = types.SimpleNamespace(save=torch.save, load=torch.load)
    guard_torch_files(fake)
    return fake


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("stopped while pickling")


def test_a_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, guarded):
    target = tmp_path / "image_adj_10_True.pt"
    guarded.save(torch.ones(3), target)
    with pytest.raises(RuntimeError, match="stopped while pickling"):
        guarded.save([torch.zeros(3), _Unpicklable()], str(target))
    assert torch.equal(torch.load(target), torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


_KILLED_WRITER = """
import sys, time, torch
from mmrec_ld4mrec.mmrec.cache_files import guard_torch_files
if sys.argv[2] == "guarded":
    guard_torch_files(torch)
class Slow:
    def __reduce__(self):
        print("writing", flush=True); time.sleep(60); return (int, (0,))
torch.save([torch.ones(1000), Slow()], sys.argv[1])
"""


@pytest.mark.parametrize("mode", ["plain", "guarded"])
def test_a_writer_killed_mid_save(tmp_path, mode):
    """Plain torch.save leaves a file that every later load fails on (the hazard); guarded, the
    target is never created, so the next run builds the graph again, and the temporary the kill
    left ends in .pt, a cache `prepare --overwrite` and `uninstall` sweep (`foreign_entry`)."""
    target = tmp_path / "image_adj_10_True.pt"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target), mode], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if mode == "plain":
        assert target.is_file()
        with pytest.raises((EOFError, RuntimeError, pickle.UnpicklingError)):
            torch.load(target)
    else:
        assert not target.exists()
        left = [p.name for p in tmp_path.iterdir()]
        assert len(left) == 1 and left[0].startswith(".image_adj_10_True.pt.") and left[0].endswith(".pt"), left
        assert foreign_entry(tmp_path) is None


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip"])
def test_an_unreadable_cache_is_named_with_how_to_recover(tmp_path, guarded, content):
    target = tmp_path / "image_adj_10_True.pt"
    target.write_bytes(content)
    with pytest.raises(UserInputError) as err:
        guarded.load(str(target))
    message = str(err.value)
    assert str(target) in message and "delete it" in message and "\n" not in message


def test_file_objects_and_missing_files_pass_through(tmp_path, guarded):
    with open(tmp_path / "x.pt", "wb") as f:
        guarded.save({"a": torch.arange(4)}, f)
    with open(tmp_path / "x.pt", "rb") as f:
        assert torch.equal(guarded.load(f)["a"], torch.arange(4))
    with pytest.raises(EOFError):
        guarded.load(io.BytesIO(b""))  # not a file on disk: nothing to name or delete
    with pytest.raises(FileNotFoundError):
        guarded.load(str(tmp_path / "absent.pt"))


class _Pickled:
    pass


def test_a_whole_file_refused_for_another_reason_is_not_called_truncated(tmp_path, guarded):
    """weights_only refusing a class is not truncation: deleting and rebuilding would not help."""
    target = tmp_path / "mm_adj_10.pt"
    torch.save(_Pickled(), target)
    with pytest.raises(pickle.UnpicklingError, match="Weights only"):
        guarded.load(str(target), weights_only=True)


def test_guarding_twice_wraps_once(guarded):
    save, load = guarded.save, guarded.load
    guard_torch_files(guarded)
    assert guarded.save is save and guarded.load is load


def test_a_truncated_snapshot_in_mmrecs_process_is_set_aside_naming_torchs_error(tmp_path, monkeypatch, caplog):
    """Snapshots load through the same guarded torch.load there: still set aside, and the warning
    names torch's error, not the guard's."""
    from mmrec_ld4mrec.engine.snapshot import Snapshot

    monkeypatch.setattr(torch, "save", torch.save)  # restored after the test, guard and all
    monkeypatch.setattr(torch, "load", torch.load)
    guard_torch_files(torch)
    path = tmp_path / "run.snapshot"
    path.write_bytes(b"")
    with caplog.at_level("WARNING"):
        assert Snapshot(path, "identity").load(torch.nn.Linear(1, 1), None) is None
    assert "not readable (EOFError)" in caplog.text and not path.exists()
