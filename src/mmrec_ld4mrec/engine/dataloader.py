"""Data loaders with MMRec's batch formats.

* Training, ``use_full_sampling: True``: a 1-D LongTensor of (shuffled) user ids.
* Training otherwise: ``[users, positive items, one sampled negative]`` stacked, shape [3, B].

Both draw from the generators MMRec's ``TrainDataLoader`` draws from, in the same order
(numpy's for the shuffles, Python's ``random`` for the negatives), so that a seed gives the
same batches in either engine and the two engines' metrics agree.
* Evaluation: ``[users, (rows, items) of their training items to mask]``.
"""

from __future__ import annotations

import random

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import DataError
from .beyond_accuracy import training_context
from .dataset import RecDataset
from .snapshot import loader_orders, reordered


def interaction_matrix(ds: RecDataset, form: str = "coo"):
    """A split's (user, item) pairs as a 0/1 matrix [users, items]; ``ds`` may be MMRec's
    ``RecDataset`` too (the same fields)."""
    df = ds.df
    m = sp.coo_matrix((np.ones(len(df), dtype=np.float32), (df[ds.uid_field].to_numpy(), df[ds.iid_field].to_numpy())),
                      shape=(ds.get_user_num(), ds.get_item_num()))
    m = m.tocsr()
    m.sum_duplicates()
    m.data[:] = 1.0
    if form == "coo":
        return m.tocoo()
    if form == "csr":
        return m
    raise ValueError(f"sparse matrix format {form!r} is not supported (coo or csr)")


class TrainDataLoader:
    def __init__(self, config, dataset: RecDataset, batch_size: int, shuffle: bool = True):
        self.config, self.dataset, self.batch_size, self.shuffle = config, dataset, batch_size, shuffle
        self.device = config["device"]
        self.use_full_sampling = bool(config["use_full_sampling"])
        self._csr = interaction_matrix(dataset, "csr")
        self._original_df = dataset.df
        self.all_uids = np.unique(dataset.df[dataset.uid_field].to_numpy())
        # negatives come from the items seen in training, as in MMRec
        self.all_items = np.unique(dataset.df[dataset.iid_field].to_numpy()).tolist()
        self._history: list[set[int]] | None = None

    def pretrain_setup(self) -> None:
        """Reset the interaction order, the user order and the negative pool's order at the
        start of a grid point, drawing what MMRec draws there."""
        self.dataset.df = self._original_df
        self.all_items.sort()
        self.all_uids.sort()
        random.shuffle(self.all_items)

    def order_state(self) -> dict:
        """The orders the next epoch's batches depend on (for a snapshot): the shuffled frame,
        the users and the negative pool."""

        data = self.dataset
        return loader_orders(data.df, self._original_df, data.uid_field, data.iid_field, self.all_uids, self.all_items)

    def load_order_state(self, state: dict) -> None:
        self.dataset.df = reordered(self._original_df, state["frame"])
        self.all_uids = state["users"].numpy().astype(self.all_uids.dtype)
        self.all_items = state["items"].tolist()

    def inter_matrix(self, form: str = "coo", value_field=None):
        return interaction_matrix(self.dataset, form)

    def __len__(self) -> int:
        n = len(self.all_uids) if self.use_full_sampling else len(self.dataset)
        return (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        if self.use_full_sampling:
            if self.shuffle:
                # MMRec shuffles its interaction frame (drawing from numpy's global generator)
                # and then the user array in place; the same draws keep seeds comparable.
                self.dataset.df = self.dataset.df.sample(frac=1, replace=False).reset_index(drop=True)
                np.random.shuffle(self.all_uids)
            # one host-to-device copy per epoch; each batch is a slice of it on the device
            uids = torch.from_numpy(self.all_uids.astype(np.int64)).to(self.device)
            for start in range(0, len(uids), self.batch_size):
                yield uids[start:start + self.batch_size]
            return
        if self.shuffle:
            # replaces the frame (the split's own object is left as it was; pretrain_setup restores it)
            self.dataset.df = self.dataset.df.sample(frac=1, replace=False).reset_index(drop=True)
        df = self.dataset.df
        users = df[self.dataset.uid_field].to_numpy()
        items = df[self.dataset.iid_field].to_numpy()
        for start in range(0, len(users), self.batch_size):
            u, i = users[start:start + self.batch_size], items[start:start + self.batch_size]
            yield torch.from_numpy(np.stack([u, i, self._negatives(u)])).long().to(self.device)

    def _negatives(self, users: np.ndarray) -> np.ndarray:
        """One negative per user: a uniform draw from the training items (Python's ``random``,
        as MMRec draws it), redrawn while the user has the item in training."""
        if self._history is None:
            self._history = [set(self._csr.indices[a:b].tolist()) for a, b in zip(self._csr.indptr[:-1], self._csr.indptr[1:])]
            full = [u for u, seen in enumerate(self._history) if len(seen) >= len(self.all_items)]
            if full:
                raise DataError(f"{getattr(self.dataset, 'path', 'the training split')}: "
                                f"user {full[0]} has every training item in training, so no negative item "
                                f"can be drawn for it ({len(full)} such user(s)); remove them or use a model "
                                "trained on full rows (use_full_sampling: True)")
        pool, history = self.all_items, self._history
        neg = np.empty(len(users), dtype=np.int64)
        for k, u in enumerate(users.tolist()):
            seen = history[u]
            item = random.sample(pool, 1)[0]
            while item in seen:
                item = random.sample(pool, 1)[0]
            neg[k] = item
        return neg


class EvalDataLoader:
    """Users of an evaluation split, in id order, with their held-out items."""

    def __init__(self, config, eval_dataset: RecDataset, train_dataset: RecDataset, batch_size: int):
        self.device = config["device"]
        self.batch_size = batch_size
        df = eval_dataset.df.sort_values([eval_dataset.uid_field, eval_dataset.iid_field])
        users = df[eval_dataset.uid_field].to_numpy()
        self.eval_users, starts = np.unique(users, return_index=True)
        self.eval_items = np.split(df[eval_dataset.iid_field].to_numpy(), starts[1:])
        self._set_masks(interaction_matrix(train_dataset, "csr"))

    def _set_masks(self, train) -> None:
        """The training items of every evaluation user, once, on the device; a batch slices them."""
        sub = train[self.eval_users].tocsr()
        sub.sort_indices()
        # what the beyond-accuracy metrics and segments read
        self.train_items, self.item_popularity = training_context(train, self.eval_users)
        self._mask_ptr = sub.indptr.astype(np.int64)
        self._mask_rows = torch.from_numpy(np.repeat(np.arange(len(self.eval_users)), np.diff(sub.indptr))).to(self.device)
        self._mask_cols = torch.from_numpy(sub.indices.astype(np.int64)).to(self.device)
        self._users = torch.from_numpy(self.eval_users.astype(np.int64)).to(self.device)

    @classmethod
    def all_users(cls, config, train_dataset: RecDataset, batch_size: int) -> EvalDataLoader:
        """Every user, in id order (for timing one full ranking); no held-out items."""
        loader = cls.__new__(cls)
        loader.device, loader.batch_size = config["device"], batch_size
        loader.eval_users = np.arange(train_dataset.get_user_num())
        loader.eval_items = [np.empty(0, dtype=np.int64)] * len(loader.eval_users)
        loader._set_masks(interaction_matrix(train_dataset, "csr"))
        return loader

    def get_eval_users(self) -> np.ndarray:
        return self.eval_users

    def get_eval_items(self) -> list[np.ndarray]:
        return self.eval_items

    def get_eval_len_list(self) -> np.ndarray:
        return np.array([len(x) for x in self.eval_items])

    def __len__(self) -> int:
        return (len(self.eval_users) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for start in range(0, len(self.eval_users), self.batch_size):
            stop = min(start + self.batch_size, len(self.eval_users))
            lo, hi = int(self._mask_ptr[start]), int(self._mask_ptr[stop])
            mask_index = torch.stack([self._mask_rows[lo:hi] - start, self._mask_cols[lo:hi]])
            yield [self._users[start:stop], mask_index]
