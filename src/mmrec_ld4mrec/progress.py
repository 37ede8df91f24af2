"""A progress bar over a sweep's runs: done / total, elapsed, estimated time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Redraws one line on a terminal; elsewhere (logs, CI) prints one line per finished run.

    The estimate divides the time spent by the runs finished in this invocation, so runs
    skipped as already in the registry do not make it optimistic.
    """

    def __init__(self, total: int, already_done: int = 0, stream: TextIO | None = None, width: int = 24):
        self.total, self.done, self.skipped = total, already_done, already_done
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def line(self, note: str = "") -> str:
        elapsed = time.monotonic() - self.start
        ran = self.done - self.skipped
        left = self.total - self.done
        eta = _clock(elapsed / ran * left) if ran else "?"
        filled = int(self.width * self.done / self.total) if self.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        text = f"[{bar}] {self.done}/{self.total} runs  elapsed {_clock(elapsed)}  left ~{eta}"
        return text + (f"  {note}" if note else "")

    def advance(self, note: str = "") -> None:
        self.done += 1
        self.show(note)

    def show(self, note: str = "") -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.line(note))
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(self.line(note) + "\n")
        self.stream.flush()
