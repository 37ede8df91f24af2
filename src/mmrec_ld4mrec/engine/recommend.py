"""``recommend``: top-K lists from a trained checkpoint, as a system would serve them, with the
batch throughput and the single-user latency measured in the same call.

A list ranks every item, the user's training items masked, exactly as the evaluation ranks
them (``evaluator.rank_topk``), so the lists of the test users are the ones ``run`` scored.
The serving core (:func:`serve`) takes any model with ``full_sort_predict`` and a training
matrix; the standalone engine loads its checkpoints here, MMRec's models are served the same
way inside their checkout (``mmrec.driver``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.layout import MAPPING_FILES
from ..errors import UserInputError
from ..files import atomic_write
from .evaluator import masked_topk

WARM_UP = 5  # requests before the timed ones (first calls allocate and compile)
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclass
class Served:
    users: np.ndarray  # internal user ids, in the order asked
    topk: np.ndarray  # [users, K] internal item ids, best first
    batch_seconds: float
    batch_size: int
    latencies_ms: np.ndarray  # one per timed single-user request

    def summary(self) -> dict:
        return {"users": int(len(self.users)), "k": int(self.topk.shape[1]),
                "users_per_second": len(self.users) / self.batch_seconds if self.batch_seconds > 0 else float("inf"),
                "batch_seconds": self.batch_seconds, "batch_size": self.batch_size,
                "requests": int(len(self.latencies_ms)),
                "latency_p50_ms": float(np.percentile(self.latencies_ms, 50)) if len(self.latencies_ms) else None,
                "latency_p99_ms": float(np.percentile(self.latencies_ms, 99)) if len(self.latencies_ms) else None}


def _ranked(model, users: torch.Tensor, train: sp.csr_matrix, k: int, scoring) -> torch.Tensor:
    with scoring():
        scores = model.full_sort_predict([users])
    sub = train[users.cpu().numpy()]
    rows = torch.from_numpy(np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))).to(scores.device)
    return masked_topk(scores, rows, torch.from_numpy(sub.indices.astype(np.int64)).to(scores.device), k)


@torch.no_grad()
def serve(model, train: sp.csr_matrix, users: np.ndarray, k: int, batch_size: int, requests: int,
          device: str | torch.device = "cpu", scoring: Callable[[], contextlib.AbstractContextManager] | None = None
          ) -> Served:
    """Rank ``users`` in batches of ``batch_size`` (timed as a whole: the throughput), then time
    ``requests`` single-user rankings (users taken in turn, after ``WARM_UP`` untimed ones)."""
    scoring = scoring or contextlib.nullcontext
    model.eval()
    train = sp.csr_matrix(train)
    ids = torch.from_numpy(np.asarray(users, dtype=np.int64)).to(device)
    chunks = []
    start = time.perf_counter()
    for first in range(0, len(ids), batch_size):
        chunks.append(_ranked(model, ids[first:first + batch_size], train, k, scoring).cpu())
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    batch_seconds = time.perf_counter() - start
    latencies = []
    for i in range(WARM_UP + requests):
        one = ids[i % len(ids)].view(1)
        t0 = time.perf_counter()
        _ranked(model, one, train, k, scoring).cpu()
        if i >= WARM_UP:
            latencies.append((time.perf_counter() - t0) * 1000.0)
    topk = torch.cat(chunks).numpy() if chunks else np.empty((0, k), dtype=np.int64)
    return Served(np.asarray(users, dtype=np.int64), topk, batch_seconds, batch_size, np.asarray(latencies))


# ---- ids ----------------------------------------------------------------------------------------

def id_mappings(folder: Path) -> tuple[pd.Series, pd.Series] | None:
    """(raw user id by internal id, raw item id by internal id) where ``prepare`` wrote its
    mapping files into the dataset's folder; None where it did not (ids are internal)."""
    paths = [Path(folder) / name for name in MAPPING_FILES]
    if not all(p.is_file() for p in paths):
        return None
    out = []
    for path in paths:
        frame = pd.read_csv(path, sep="\t", dtype={"raw_id": str})
        if list(frame.columns) != ["raw_id", "new_id"]:
            raise UserInputError(f"{path}: expected the columns raw_id and new_id that prepare writes")
        out.append(pd.Series(frame["raw_id"].to_numpy(), index=frame["new_id"].to_numpy()))
    return out[0], out[1]


def users_file(spec: str) -> Path | None:
    """``--users`` as a file of ids, when it names one (a long list of ids is no file name)."""
    try:
        return Path(spec) if Path(spec).is_file() else None
    except OSError:
        return None


def requested_users(spec: str | None, n_users: int, raw_users: pd.Series | None) -> np.ndarray:
    """Internal ids of ``--users``: every user when None; else a file of ids (one per line) or a
    comma-separated list, raw ids where the dataset has id mappings. Unknown ids are refused."""
    if spec is None:
        return np.arange(n_users, dtype=np.int64)
    path = users_file(spec)
    if path is not None:
        tokens = [t.strip() for t in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        where = str(path)
    else:
        tokens = [t.strip() for t in spec.split(",")]
        where = "--users"
    tokens = [t for t in tokens if t]
    if not tokens:
        raise UserInputError(f"{where}: no user ids")
    if raw_users is not None:
        lookup = pd.Series(raw_users.index.to_numpy(), index=raw_users.to_numpy())
        unknown = [t for t in tokens if t not in lookup.index]
        ids = None if unknown else lookup.loc[tokens].to_numpy()
    else:
        unknown = [t for t in tokens if not (t.isascii() and t.isdigit() and int(t) < n_users)]
        ids = None if unknown else np.array([int(t) for t in tokens])
    if unknown:
        kind = "raw user ids of the dataset's user_id_mapping.tsv" if raw_users is not None else \
            f"user ids 0..{n_users - 1}"
        shown = ", ".join(repr(t[:40]) for t in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise UserInputError(f"{where}: {len(unknown)} unknown user id(s) ({shown}); expected {kind}")
    return ids.astype(np.int64)


def check_output(path: Path) -> None:
    if Path(path).suffix.lower() not in OUTPUT_SUFFIXES:
        raise UserInputError(f"--out {path}: expected a .csv (MMRec's top-K layout) or .parquet file")
    if Path(path).suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401  (pandas writes Parquet through it)
        except ImportError:
            raise UserInputError("--out *.parquet needs pyarrow: pip install pyarrow (or write .csv)") from None


def write_lists(path: Path, served: Served, mappings: tuple[pd.Series, pd.Series] | None) -> None:
    """MMRec's top-K layout (``id, top_0 .. top_{K-1}``; tab-separated as CSV), in raw ids where
    the dataset has id mappings."""
    k = served.topk.shape[1]
    users, items = served.users, served.topk
    if mappings is not None:
        users = mappings[0].loc[users].to_numpy()
        items = mappings[1].loc[items.ravel()].to_numpy().reshape(items.shape)
    frame = pd.DataFrame(items, columns=[f"top_{i}" for i in range(k)])
    frame.insert(0, "id", users)
    if Path(path).suffix.lower() == ".parquet":
        atomic_write(Path(path), lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(Path(path), lambda tmp: frame.to_csv(tmp, sep="\t", index=False))


def serve_to_file(model, train: sp.csr_matrix, dataset_folder: Path, users: str | None, k: int, batch_size: int,
                  requests: int, out: Path, device: str | torch.device = "cpu",
                  scoring: Callable[[], contextlib.AbstractContextManager] | None = None) -> dict:
    """``recommend`` once a model is loaded (either engine): check K, resolve ``--users`` (raw
    ids where ``dataset_folder`` has prepare's mappings), serve, write ``out``; the timings."""
    n_users, n_items = train.shape
    if k > n_items:
        raise UserInputError(f"-k/--topk: {k} is more than the {n_items} items of '{Path(dataset_folder).name}'")
    mappings = id_mappings(dataset_folder)
    ids = requested_users(users, n_users, mappings[0] if mappings else None)
    served = serve(model, train, ids, k, batch_size, requests, device, scoring)
    write_lists(out, served, mappings)
    return served.summary()


def recommend_standalone(checkpoint: str | Path, dataset: str, data_path: str | None, users: str | None, k: int,
                         batch_size: int, requests: int, out: Path) -> dict:
    """Load a standalone checkpoint on ``dataset``, serve ``users`` and write their lists to ``out``."""
    from .dataloader import interaction_matrix
    from .precision import precision_context
    from .quick_start import trained_model

    model, config, train_ds = trained_model(checkpoint, dataset, {"data_path": data_path} if data_path else None)
    return serve_to_file(model, interaction_matrix(train_ds, "csr"), Path(str(config["data_path"])) / dataset, users,
                         k, batch_size, requests, out, config["device"], scoring=lambda: precision_context(config))
