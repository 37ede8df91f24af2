"""Child processes that end with the process that started them."""

from __future__ import annotations

import ctypes
import signal


def die_with_parent() -> None:
    """On Linux, have the kernel end this process when the one that started it dies (a run's
    worker with its sweep, MMRec's run with its worker): no orphan goes on training and writing
    into a results folder that a later command uses."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
