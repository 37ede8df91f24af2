"""Writing outputs so that an interrupted or failed command leaves no partial file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``; nothing partial is left on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
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
