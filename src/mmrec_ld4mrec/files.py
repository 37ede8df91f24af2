"""Writing outputs so that an interrupted or failed command leaves no partial file behind,
and checking output paths before any work starts, so that a long run never ends in an
output it cannot write; child processes that end with their parent, so that none writes
into a folder after the command that owns it has gone."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import UserInputError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _check_writable_folder(folder: Path, what: str, shown: Path) -> None:
    """``folder`` (or its nearest existing ancestor, where it does not exist yet) can hold new files."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UserInputError(f"{what} {shown}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UserInputError(f"{what} {shown}: cannot write in {existing} ({exc.strerror or exc})") from None


def check_path_name(path: Path, what: str) -> None:
    """Refuse a path with a component longer than the file system allows, naming ``what``."""
    try:
        limit = os.pathconf(_nearest_existing(path.parent), "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise UserInputError(f"{what}: a path component is {len(os.fsencode(part))} bytes long, "
                                 f"longer than this file system allows ({limit})")


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """Refuse, before any work, a file path the command could not write at the end: one that
    exists and is not a regular file (a folder, a link, a device), a name too long, or a
    folder that is not writable. Missing folders are fine: they are created on write."""
    path = Path(path)
    check_path_name(path, what)
    _refuse_non_regular(path, what)
    _check_writable_folder(path.parent if str(path.parent) else Path("."), what, path)
    return path


def _refuse_non_regular(path: Path, what: str) -> None:
    if os.path.lexists(path) and (path.is_symlink() or not stat.S_ISREG(os.lstat(path).st_mode)):
        kind = "a folder" if path.is_dir() and not path.is_symlink() else "not a regular file (a link, device or pipe)"
        raise UserInputError(f"{what} {path}: exists and is {kind}; refusing to replace it")


def check_output_folder(path: str | Path, what: str) -> Path:
    """Refuse, before any work, a folder path that exists as something else or cannot be created."""
    path = Path(path)
    check_path_name(path, what)
    if os.path.lexists(path) and not path.is_dir():
        raise UserInputError(f"{what} {path}: exists and is not a folder")
    _check_writable_folder(path, what, path)
    return path


def atomic_write(path: Path, write: Callable[[str], object], suffix: str = "") -> None:
    """Call ``write(tmp_path)`` then rename over ``path``; nothing partial is left on failure.
    ``suffix`` ends the temporary's name, for a process killed before its cleanup: the leftover
    ``.NAME.XXXX<suffix>`` is then what code that sweeps ``*<suffix>`` files expects.

    A target that exists and is not a regular file (a link, a device such as /dev/null, a
    folder) is refused rather than replaced by the rename."""
    path = Path(path)
    _refuse_non_regular(path, "output")  # a rename would replace it; mkstemp reports the rest
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make reports unreadable to others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data) -> None:
    """``data`` as indented JSON at ``path``, atomically (numpy scalars written as floats)."""
    text = json.dumps(data, indent=2, default=float)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def die_with_parent() -> None:
    """On Linux, have the kernel end this process when the one that started it dies (a run's
    worker with its sweep, MMRec's run with its worker): no orphan goes on training and writing
    into a results folder that a later command uses."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def check_apart(output: str | Path, what: str, inputs: dict[str, str | Path | None]) -> None:
    """Refuse, before any work, an output path that is one of the command's inputs or stores, or
    lies inside one (a dataset folder, a registry), naming both: writing there would destroy
    what the command reads. ``inputs`` maps a description to its path (None: not used)."""
    out = Path(os.path.realpath(output))
    for name, path in inputs.items():
        if path is None or str(path) == "":
            continue
        source = Path(os.path.realpath(path))
        if out == source or source in out.parents:
            where = "is" if out == source else "lies inside"
            raise UserInputError(f"{what} {output}: {where} {name} ({path}), which this command reads; "
                                 "choose another path")
