"""The embedded default dataset ``synthetic``, generated deterministically on first use.

Users and items get latent factors around a few planted taste clusters; users pick items by
a softmax over factor affinity plus a mild popularity term, with a share of uniformly
random (noisy) clicks. Two modalities carry the item factors through random projections plus
noise. After iterated 10-core filtering and id remapping, each user's interactions are split
8:1:1 in a random per-user order (at least one validation and one test item each).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from .filtering import k_core as _k_core

SEED = 20240607
N_USERS, N_ITEMS, N_FACTORS, N_CLUSTERS = 1000, 500, 16, 8
CLICKS_MEAN, NOISE_SHARE, TEMPERATURE = 28, 0.15, 0.5
FEATURE_DIMS = {"image_feat.npy": 48, "text_feat.npy": 32}
INTER_FILE = "synthetic.inter"


def k_core(pairs: np.ndarray, k: int = 10) -> np.ndarray:
    """Iterated k-core on a [n, 2] array of (user, item) pairs."""
    frame = _k_core(pd.DataFrame({"user": pairs[:, 0], "item": pairs[:, 1]}), k)
    return frame.to_numpy(dtype=np.int64).copy()


def generate(rng: np.random.Generator | None = None, n_users: int = N_USERS,
             n_items: int = N_ITEMS) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The dataset at the given size (the defaults give ``synthetic``; ``bench --scale`` asks for
    larger ones). The user x item affinities are built one block of users at a time."""
    rng = rng or np.random.default_rng(SEED)
    centers = rng.normal(size=(N_CLUSTERS, N_FACTORS))
    user_f = centers[rng.integers(N_CLUSTERS, size=n_users)] + 0.6 * rng.normal(size=(n_users, N_FACTORS))
    item_f = centers[rng.integers(N_CLUSTERS, size=n_items)] + 0.6 * rng.normal(size=(n_items, N_FACTORS))
    popularity = rng.normal(scale=0.5, size=n_items)
    pairs = []
    block = max(1, 2_000_000 // n_items)
    for first in range(0, n_users, block):
        logits = user_f[first:first + block] @ item_f.T / (np.sqrt(N_FACTORS) * TEMPERATURE) + popularity
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        for u in range(first, min(first + block, n_users)):
            n = int(np.clip(rng.poisson(CLICKS_MEAN), 12, n_items // 4))
            n_noise = rng.binomial(n, NOISE_SHARE)
            chosen = set(rng.choice(n_items, size=n - n_noise, replace=False, p=probs[u - first]).tolist())
            chosen |= set(rng.choice(n_items, size=n_noise, replace=False).tolist())
            pairs.extend((u, i) for i in chosen)
    pairs = k_core(np.array(pairs, dtype=np.int64))
    users, pairs[:, 0] = np.unique(pairs[:, 0], return_inverse=True)
    items, pairs[:, 1] = np.unique(pairs[:, 1], return_inverse=True)
    order = rng.permutation(len(pairs))
    pairs = pairs[order]
    # Per user, in the shuffled order: the first round(10 %) (at least one) to validation, the
    # next as many to test, the rest to training.
    by_user = np.argsort(pairs[:, 0], kind="stable")
    counts = np.bincount(pairs[:, 0], minlength=len(users))
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[by_user] = np.arange(len(pairs)) - np.repeat(np.cumsum(counts) - counts, counts)
    n_eval = np.maximum(1, np.round(0.1 * counts).astype(np.int64))[pairs[:, 0]]
    labels = np.where(rank < n_eval, 1, np.where(rank < 2 * n_eval, 2, 0)).astype(np.int64)
    df = pd.DataFrame({"userID": pairs[:, 0], "itemID": pairs[:, 1], "x_label": labels})
    df = df.sort_values(["userID", "x_label", "itemID"]).reset_index(drop=True)
    features = {}
    for name, dim in FEATURE_DIMS.items():
        projection = rng.normal(size=(N_FACTORS, dim)) / np.sqrt(N_FACTORS)
        feat = item_f[items] @ projection + 0.5 * rng.normal(size=(len(items), dim))
        features[name] = feat.astype(np.float32)
    return df, features


def generate_large(n_users: int, n_items: int, rng: np.random.Generator | None = None,
                   clicks_mean: int = CLICKS_MEAN) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """A dataset of any size in seconds, for timing and memory at full-release shapes (e.g.
    H&M's 1.37 M x 105 k): each user draws Poisson(``clicks_mean``) items, most from the
    items of its taste cluster, the rest uniformly; no k-core pass. Every user keeps at least
    three distinct items, so each split has one; items nobody drew are dropped (ids remapped).
    Vectorised: O(interactions), no |U| x |I| work."""
    rng = rng or np.random.default_rng(SEED)
    user_cluster = rng.integers(N_CLUSTERS, size=n_users)
    item_cluster = rng.integers(N_CLUSTERS, size=n_items)
    by_cluster = np.argsort(item_cluster, kind="stable")
    sizes = np.bincount(item_cluster, minlength=N_CLUSTERS)
    starts = np.cumsum(sizes) - sizes
    n = np.maximum(rng.poisson(clicks_mean, size=n_users), 3)
    users = np.repeat(np.arange(n_users), n)
    from_cluster = rng.random(len(users)) >= NOISE_SHARE
    cluster = user_cluster[users]
    in_cluster = by_cluster[starts[cluster] + (rng.random(len(users)) * np.maximum(sizes[cluster], 1)).astype(np.int64)
                            .clip(max=np.maximum(sizes[cluster] - 1, 0))]
    items = np.where(from_cluster & (sizes[cluster] > 0), in_cluster, rng.integers(n_items, size=len(users)))
    keys = np.sort(users.astype(np.int64) * n_items + items)
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]  # distinct (user, item), sorted
    pairs = np.stack([keys // n_items, keys % n_items], axis=1)
    counts = np.bincount(pairs[:, 0], minlength=n_users)
    pairs = pairs[counts[pairs[:, 0]] >= 3]
    for column, size in ((0, n_users), (1, n_items)):  # ids of what is left, 0..n-1 in order
        seen = np.bincount(pairs[:, column], minlength=size) > 0
        pairs[:, column] = (np.cumsum(seen) - 1)[pairs[:, column]]
        if column == 1:
            kept_items = np.flatnonzero(seen)
    pairs = pairs[rng.permutation(len(pairs))]
    by_user = np.argsort(pairs[:, 0], kind="stable")
    counts = np.bincount(pairs[:, 0])
    rank = np.empty(len(pairs), dtype=np.int64)
    rank[by_user] = np.arange(len(pairs)) - np.repeat(np.cumsum(counts) - counts, counts)
    n_eval = np.maximum(1, np.round(0.1 * counts).astype(np.int64))[pairs[:, 0]]
    labels = np.where(rank < n_eval, 1, np.where(rank < 2 * n_eval, 2, 0)).astype(np.int64)
    order = np.argsort((pairs[:, 0] * 3 + labels) * (pairs[:, 1].max() + 1) + pairs[:, 1])
    df = pd.DataFrame({"userID": pairs[order, 0], "itemID": pairs[order, 1], "x_label": labels[order]})
    centers = rng.normal(size=(N_CLUSTERS, N_FACTORS))
    item_f = centers[item_cluster[kept_items]] + 0.6 * rng.normal(size=(len(kept_items), N_FACTORS))
    features = {name: (item_f @ (rng.normal(size=(N_FACTORS, dim)) / np.sqrt(N_FACTORS))
                       + 0.5 * rng.normal(size=(len(kept_items), dim))).astype(np.float32)
                for name, dim in FEATURE_DIMS.items()}
    return df, features


def _check_slot(folder: Path) -> None:
    """``folder`` is absent, an empty folder, or the dataset; anything else is the user's and kept."""
    if os.path.lexists(folder) and (folder.is_symlink() or not folder.is_dir()):
        raise DataError(f"{folder}: exists and is not a folder; move it away to generate the synthetic dataset")
    if folder.is_dir() and not (folder / INTER_FILE).is_file() and any(folder.iterdir()):
        raise DataError(f"{folder}: exists without {INTER_FILE}; move it away to regenerate")


def ensure_synthetic(folder: str | os.PathLike) -> Path:
    """Write the dataset into ``folder`` unless it is already there; atomic (temp + rename).

    Safe when several processes create it at once (two first runs, parallel sweeps): each
    writes a folder of its own and renames it into place; one whose rename loses the race
    finds the winner's complete folder and uses it (the data are deterministic, so the same)."""
    folder = Path(folder)
    if (folder / INTER_FILE).is_file():
        return folder
    _check_slot(folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=folder.parent))
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the synthetic dataset here ({exc.strerror or exc})") from None
    try:
        df, features = generate()
        df.to_csv(tmp / INTER_FILE, sep="\t", index=False)
        for name, arr in features.items():
            np.save(tmp / name, arr)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the dataset from other users
        try:
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                folder.rmdir()  # an empty folder (ours, or made for us) is replaced
        except OSError:
            pass  # another writer got there first: decided below
        try:
            os.replace(tmp, folder)
        except OSError as exc:
            if (folder / INTER_FILE).is_file():  # another process won the race: its folder is complete
                return folder
            _check_slot(folder)
            raise DataError(f"{folder}: cannot write the synthetic dataset ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
