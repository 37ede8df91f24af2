"""Resumable training: a run's whole training state, saved between epochs, so that a run stopped
part-way (a tuning worker's session or GPU lease ending, a Slurm job preempted) resumes at its
last saved epoch and ends with the digits it would have had without the stop.

A snapshot holds what the next epoch depends on: the weights, the optimizer's and the
learning-rate scheduler's state, every random generator the run draws from (Python's, numpy's,
torch's), the training loader's order (the shuffled interaction frame, users and negative
pool), the early-stopping state and the results so far. A model with training state beyond its
weights (a second optimizer, an epoch counter) provides ``training_state()`` and
``load_training_state(state)``. Both engines use it: the standalone ``Trainer`` and the MMRec
driver, which restores MMRec's ``Trainer`` attributes (``start_epoch``, ``cur_step``, the best
results) before its ``fit`` loop starts.

The file names what it was made for (``identity``: the model, the dataset and the resolved
settings); a snapshot made for anything else is set aside with a warning, never loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..files import atomic_write
from ..models.optimizer_state import optimizer_misfit

log = logging.getLogger(__name__)

FORMAT = 1


def identity_of(model: str, dataset: str, settings: dict) -> str:
    """What a snapshot belongs to: a hash of the model, the dataset and the run's settings."""
    text = json.dumps({"model": model, "dataset": dataset, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def rng_state() -> dict:
    """Every random generator a run draws from, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    state = {"python": [version, torch.tensor(internal, dtype=torch.int64), py_gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()  # the run's own device only: another machine may have fewer
    return state


def set_rng_state(state: dict) -> None:
    version, internal, py_gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal.tolist()), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def frame_order(frame: pd.DataFrame, original: pd.DataFrame, uid_field: str, iid_field: str) -> torch.Tensor:
    """The row order of a shuffled interaction frame as positions in ``original`` (int32):
    1.6 MB for MovieLens-1M's training split where the frame itself would take several times that."""
    width = int(original[iid_field].max()) + 1 if len(original) else 1
    keys_now = frame[uid_field].to_numpy(dtype=np.int64) * width + frame[iid_field].to_numpy(dtype=np.int64)
    keys_then = original[uid_field].to_numpy(dtype=np.int64) * width + original[iid_field].to_numpy(dtype=np.int64)
    if len(keys_now) != len(keys_then):
        raise ValueError(f"the shuffled frame has {len(keys_now)} rows, the original {len(keys_then)}")
    then_sorted = np.argsort(keys_then, kind="stable")
    now_sorted = np.argsort(keys_now, kind="stable")
    if not np.array_equal(keys_then[then_sorted], keys_now[now_sorted]):
        raise ValueError("the shuffled frame does not hold the original frame's rows")
    order = np.empty(len(keys_now), dtype=np.int64)
    order[now_sorted] = then_sorted  # equal keys (duplicate rows) pair up in order: either pairing is the same data
    return torch.from_numpy(order.astype(np.int32))


def reordered(original: pd.DataFrame, order: torch.Tensor) -> pd.DataFrame:
    """``original``'s rows in a saved order, indexed 0..n-1 as the loaders leave a shuffled frame."""
    return original.iloc[order.numpy().astype(np.int64)].reset_index(drop=True)


def loader_orders(frame: pd.DataFrame, original: pd.DataFrame, uid_field: str, iid_field: str, users, items) -> dict:
    """A training loader's orders (both engines' loaders hold the same three): the shuffled
    frame as positions in ``original``, the users and the negative pool."""
    return {"frame": frame_order(frame, original, uid_field, iid_field),
            "users": torch.from_numpy(np.asarray(users).astype(np.int64)),
            "items": torch.tensor(list(items), dtype=torch.int64)}


def model_training_state(model) -> dict | None:
    """A model's training state beyond its weights (``training_state()``), if it has any."""
    getter = getattr(model, "training_state", None)
    return getter() if getter is not None else None


def load_model_training_state(model, state: dict | None) -> None:
    if state is not None:
        model.load_training_state(state)


def weights_misfit(saved, model) -> str | None:
    """Why a saved state dict does not fit ``model``: other names, something that is not a tensor,
    or another shape (but for the keys a model may resize, ``resizable_state_keys``)."""
    own = model.state_dict()
    if not isinstance(saved, dict) or set(saved) != set(own):
        return f"weights are named otherwise ({len(set(saved) ^ set(own)) if isinstance(saved, dict) else 'all'} names differ)"
    resizable = set(getattr(model, "resizable_state_keys", ()))
    for key in own:
        if not isinstance(saved[key], torch.Tensor):
            return f"weight {key!r} is not a tensor"
        if key not in resizable and tuple(saved[key].shape) != tuple(own[key].shape):
            return f"weight {key!r} has shape {tuple(saved[key].shape)}, here {tuple(own[key].shape)}"
    return None


def misfit(payload: dict, model, optimizer, required: tuple[str, ...] = ()) -> str | None:
    """Why a snapshot cannot be put back into this run: an entry of ``required`` it lacks, or
    weights or optimizer state that do not fit ``model`` and ``optimizer`` (other names, shapes or
    parameter groups: the code changed); None when it fits."""
    missing = [key for key in ("model", "optimizer", *required) if key not in payload]
    if missing:
        return f"it has no {', '.join(map(repr, missing))} (written by other code)"
    try:
        problem = weights_misfit(payload["model"], model)
        if problem:
            return f"its {problem}"
        if (payload.get("model_training_state") is None) != (getattr(model, "training_state", None) is None):
            return "its model's training state beyond the weights (a second optimizer) is not this model's"
        groups = [len(g["params"]) for g in payload["optimizer"]["param_groups"]]
        if groups != [len(g["params"]) for g in optimizer.param_groups]:
            return "its optimizer holds other parameter groups"
        problem = optimizer_misfit(payload["optimizer"], optimizer)
        if problem:
            return f"its optimizer state {problem}"
        checker = getattr(model, "training_state_problem", None)
        if checker is not None and payload.get("model_training_state") is not None:
            problem = checker(payload["model_training_state"])
            if problem:
                return f"its model's training state {problem}"
        problem = rng_problem(payload["rng"]) if "rng" in payload else None
        if problem:
            return f"its random generators' state {problem}"
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        return f"it lacks what a resume needs ({type(exc).__name__}: {exc})"
    return None


def rng_problem(state) -> str | None:
    """Why saved random-generator states cannot be put back (each generator's own layout)."""
    if not isinstance(state, dict) or not {"python", "numpy", "torch"} <= set(state):
        return "lacks Python's, numpy's or torch's"
    python, numpy_state, torch_state = state["python"], state["numpy"], state["torch"]
    own_python, own_numpy, own_torch = random.getstate(), np.random.get_state(), torch.get_rng_state()
    if not (isinstance(python, (list, tuple)) and len(python) == 3 and isinstance(python[1], torch.Tensor)
            and tuple(python[1].shape) == (len(own_python[1]),) and python[1].dtype == torch.int64
            and python[0] == own_python[0] and bool(((python[1] >= 0) & (python[1] < 2 ** 32)).all())):
        return "holds no Python generator state of this version"
    if not (isinstance(numpy_state, (list, tuple)) and len(numpy_state) == 5 and numpy_state[0] == own_numpy[0]
            and isinstance(numpy_state[1], torch.Tensor) and tuple(numpy_state[1].shape) == own_numpy[1].shape
            and bool(((numpy_state[1] >= 0) & (numpy_state[1] < 2 ** 32)).all())
            and isinstance(numpy_state[2], int) and 0 <= numpy_state[2] <= len(own_numpy[1])):
        return "holds no numpy generator state of this version"
    if not (isinstance(torch_state, torch.Tensor) and torch_state.dtype == own_torch.dtype
            and tuple(torch_state.shape) == tuple(own_torch.shape)):
        return "holds no torch generator state of this version"
    return None


def loader_problem(state, original_rows: int, users, items) -> str | None:
    """Why a training loader's saved orders are not orders of this loader's data: the frame's
    order must be a permutation of its rows, the users and the negative pool the same sets."""
    if not isinstance(state, dict) or not all(isinstance(state.get(k), torch.Tensor) for k in ("frame", "users", "items")):
        return "is not a loader's orders (frame, users, items)"
    frame = state["frame"]
    if frame.dim() != 1 or len(frame) != original_rows or frame.is_floating_point() or \
            not torch.equal(torch.sort(frame.long()).values, torch.arange(original_rows)):
        return f"does not order the {original_rows} training rows"
    for name, saved, own in (("users", state["users"], users), ("items", state["items"], items)):
        mine = np.sort(np.asarray(own, dtype=np.int64))
        if saved.dim() != 1 or saved.is_floating_point() or not np.array_equal(np.sort(saved.numpy()), mine):
            return f"holds other {name} than this loader's"
    return None


def metrics_problem(name: str, value) -> str | None:
    """``value`` maps metric names to finite numbers."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, (int, float))
                                              and not isinstance(v, bool) and math.isfinite(v) for k, v in value.items()):
        return f"its '{name}' is not a mapping of metrics to finite numbers"
    return None


def seconds_problem(name: str, value) -> str | None:
    """``value`` is a list of finite durations >= 0."""
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              and math.isfinite(v) and v >= 0 for v in value):
        return f"its '{name}' is not a list of durations"
    return None


def counter_problem(name: str, value, low: int, high: int) -> str | None:
    """``value`` is a whole number in [low, high] (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return f"its '{name}' is {value!r:.40}, expected a whole number from {low} to {high}"
    return None


class SnapshotUnusable(Exception):
    """A snapshot failed part-way through its restore and was set aside: start the run over."""


class Snapshot:
    """One run's snapshot file: ``due()`` says whether ``every_seconds`` have passed since the
    last save (or the run's start), ``save()`` writes atomically, ``load()`` returns the saved
    state or None, ``discard()`` removes it once the run has finished.

    A resumed run ends with the digits of one never stopped on the same device with the same
    thread count; resumed elsewhere (a GPU lease's snapshot on a CPU) it goes on correctly, in
    that device's arithmetic, and says so."""

    def __init__(self, path: str | Path, identity: str, every_seconds: float = 60.0, device: str = "cpu"):
        self.path, self.identity, self.every_seconds = Path(path), identity, float(every_seconds)
        self.device = str(device)
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def save(self, state: dict) -> None:
        payload = {"format": FORMAT, "identity": self.identity, "device": self.device, "saved_at": time.time(), **state}
        atomic_write(self.path, lambda tmp: torch.save(payload, tmp))
        self._last = time.monotonic()

    def load(self, model, optimizer, required: tuple[str, ...] = (), check=None) -> dict | None:
        """The saved state, or None where there is none. A file this run cannot use (unreadable,
        another format, made for other settings, weights or optimizer state that do not fit
        ``model`` and ``optimizer``, or what ``check(payload)`` names: the engine's own counters,
        results and loader orders) is renamed aside with a warning, before anything is loaded:
        a fresh start is always correct, a wrong resume never is."""
        if os.path.lexists(self.path) and not self.path.is_file():
            return self.set_aside("not a file")
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: torch raises many types
            # in MMRec's process torch.load names the file (mmrec.cache_files): show torch's own error type
            return self.set_aside(f"not readable ({type(exc.__cause__ or exc).__name__})")
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            return self.set_aside("not a snapshot of this version")
        if payload.get("identity") != self.identity:
            return self.set_aside("made for another model, dataset or settings")
        problem = misfit(payload, model, optimizer, required)
        if problem is None and check is not None:
            try:
                problem = check(payload)
            except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
                problem = f"it lacks what a resume needs ({type(exc).__name__}: {exc})"
        if problem:
            return self.set_aside(f"does not fit this run: {problem}")
        if payload.get("device", self.device) != self.device:
            log.warning("%s was saved on %s and resumes on %s: the run goes on in this device's arithmetic, "
                        "so its digits will differ from a run never stopped", self.path, payload.get("device"),
                        self.device)
        log.info("resuming from %s (saved after epoch %d)", self.path, int(payload["next_epoch"]) - 1)
        return payload

    def set_aside(self, why: str) -> None:
        """Rename the file ``*.unused`` (never over an earlier one), with a warning saying ``why``."""
        aside, n = self.path.with_name(self.path.name + ".unused"), 1
        while aside.exists():  # an earlier one set aside is kept too
            n += 1
            aside = self.path.with_name(f"{self.path.name}.unused{n}")
        os.replace(self.path, aside)
        log.warning("%s: %s; it is kept as %s and this run starts from epoch 0", self.path, why, aside)
        return None

    @contextlib.contextmanager
    def restoring(self) -> Iterator[None]:
        """Context of a restore: if putting the state back fails part-way, the file is set aside
        and :class:`SnapshotUnusable` raised, so that the caller builds its model afresh and
        trains from epoch 0 (half-loaded weights are no start)."""
        try:
            yield
        except Exception as exc:
            if self.path.is_file():
                self.set_aside(f"could not be put back ({type(exc).__name__}: {exc})")
            raise SnapshotUnusable(f"{self.path}: could not be put back ({type(exc).__name__}: {exc})") from exc

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)

