"""Where the project's data files (``configs/``, ``patches/``) are: the source checkout for
an editable install, else ``<prefix>/share/mmrec_ld4mrec`` where setup.cfg installs them."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import ConfigError


def resource_dir(name: str, marker: str) -> Path:
    candidates = [Path(__file__).resolve().parents[2] / name, Path(sys.prefix) / "share" / "mmrec_ld4mrec" / name]
    for c in candidates:
        if (c / marker).exists():
            return c
    raise ConfigError(f"cannot find {name}/{marker} in any of: {', '.join(map(str, candidates))}")
