"""The files MMRec's models cache in a dataset's folder, made safe for interrupted and parallel runs.

MGCN, LATTICE, FREEDOM, DRAGON, SMORE and PGL build their modality kNN graphs on first use and
``torch.save`` them next to the dataset's files (``image_adj_10_True.pt``, ``mm_adj_10.pt``, ...);
later runs ``torch.load`` them. A plain ``torch.save`` writes in place: a run killed mid-write
leaves a truncated file, which then fails every later run of every model on that dataset with
a pickle traceback, and a worker can load a file another is still writing.

In MMRec's process (:mod:`.driver`) :func:`guard_torch_files` makes each ``torch.save`` to a
path write a temporary file beside it and rename it over the target (readers see the old file
or the whole new one), and turns a ``torch.load`` of a file that looks truncated into one line naming it
and saying how to recover. Nothing in MMRec's checkout is changed."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from types import ModuleType

from ..errors import UserInputError
from ..files import atomic_write


def _is_path(f: object) -> bool:
    return isinstance(f, (str, os.PathLike))


def _looks_truncated(exc: BaseException) -> bool:
    """What ``torch.load`` raises on a file cut short (empty, or a zip without its directory);
    not a refusal of a whole file (``weights_only``), a CUDA tensor on a CPU machine or memory."""
    if isinstance(exc, (EOFError, zipfile.BadZipFile)):
        return True
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        return not text.startswith("Weights only load failed")
    return isinstance(exc, RuntimeError) and ("PytorchStreamReader" in text or "zip archive" in text)


def guard_torch_files(torch: ModuleType) -> None:
    """Wrap ``torch.save`` and ``torch.load`` of *torch* for this process (see the module's text).
    Calls with a file object instead of a path are passed through unchanged. Idempotent."""
    if getattr(torch.save, "_guarded", False):
        return
    save, load = torch.save, torch.load

    def atomic_save(obj, f, *args, **kwargs):
        if not _is_path(f):
            return save(obj, f, *args, **kwargs)
        # the temporary keeps the target's suffix: one a kill leaves behind is swept as a cache is
        atomic_write(Path(f), lambda tmp: save(obj, tmp, *args, **kwargs), suffix=Path(f).suffix)

    def named_load(f, *args, **kwargs):
        try:
            return load(f, *args, **kwargs)
        except Exception as exc:
            if not (_is_path(f) and os.path.isfile(f) and _looks_truncated(exc)):
                raise
            first = str(exc).splitlines()[0] if str(exc) else "no message"
            raise UserInputError(
                f"{f}: torch.load failed ({type(exc).__name__}: {first}); the file looks truncated. If it is "
                "a graph MMRec caches beside the dataset (image_adj_*.pt, text_adj_*.pt, mm_adj_*.pt), a run "
                "stopped while writing it left it so: delete it and the next run rebuilds it") from exc

    atomic_save._guarded = named_load._guarded = True
    torch.save, torch.load = atomic_save, named_load
