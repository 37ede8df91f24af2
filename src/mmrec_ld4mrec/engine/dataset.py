"""MMRec's dataset layout: ``<data_path><dataset>/<inter_file_name>``, one row per
interaction, with ``x_label`` 0 (train), 1 (validation), 2 (test). Ids are 0-based ints."""

from __future__ import annotations

import logging
import os
import re

import numpy as np
import pandas as pd

from ..errors import DataError

log = logging.getLogger(__name__)
SPLIT_NAMES = ("training", "validation", "test")
MAX_ID = 2**53  # larger ids cannot even be read exactly (they arrive as floats)


def _shown(value) -> str:
    """A cell as the file shows it: text quoted, numbers plain (``inf``, ``1e+30``)."""
    return repr(value[:60]) if isinstance(value, str) else str(value)


class RecDataset:
    def __init__(self, config, df: pd.DataFrame | None = None):
        self.config = config
        self.dataset_name = config["dataset"]
        self.dataset_path = os.path.abspath(str(config["data_path"]) + self.dataset_name)
        self.uid_field = config["USER_ID_FIELD"]
        self.iid_field = config["ITEM_ID_FIELD"]
        self.splitting_label = config["inter_splitting_label"]
        self.dropped_cold_users = {"validation": 0, "test": 0}
        if df is not None:
            self.df = df
            return
        self.path = os.path.join(self.dataset_path, str(config["inter_file_name"]))
        self.df = self._load(self.path)
        self.user_num = int(self.df[self.uid_field].max()) + 1
        self.item_num = int(self.df[self.iid_field].max()) + 1

    def _load(self, path: str) -> pd.DataFrame:
        if not os.path.isfile(path):
            raise DataError(f"{path}: interaction file not found (data_path={self.config['data_path']!r}, "
                            f"dataset={self.dataset_name!r}, inter_file_name={self.config['inter_file_name']!r})")
        cols = [self.uid_field, self.iid_field, self.splitting_label]
        sep = self.config["field_separator"]
        try:
            header = pd.read_csv(path, sep=sep, nrows=0).columns
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
            raise DataError(f"{path}: cannot parse the header ({str(exc).splitlines()[0] if str(exc) else exc!r})") from None
        missing = [c for c in cols if c not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {list(header)}")
        try:
            # every column, so that a row with more fields than the header is an error, not ignored
            df = pd.read_csv(path, sep=sep)
        except pd.errors.ParserError as exc:
            found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if found:
                raise DataError(f"{path}: line {found.group(2)} has {found.group(3)} fields but the header has "
                                f"{found.group(1)}") from None
            raise DataError(f"{path}: cannot parse ({str(exc).splitlines()[0]})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: cannot parse ({str(exc).splitlines()[0]})") from None
        if not isinstance(df.index, pd.RangeIndex):
            raise DataError(f"{path}: the rows have more fields than the header ({len(header)} columns); "
                            "every row must have one field per header column")
        df = df[cols].copy()
        if df.empty:
            raise DataError(f"{path}: holds no interactions")
        self._check_labels(path, df[self.splitting_label])
        for c in cols:
            df[c] = self._integer_column(path, df[c], c)
        for c in (self.uid_field, self.iid_field):
            n_distinct, top = df[c].nunique(), int(df[c].max())
            if top + 1 > 50 * n_distinct + 1000:
                raise DataError(f"{path}: column '{c}' has id {top} but only {n_distinct} distinct ids; "
                                "ids must be remapped to 0..n-1")
        self._check_pairs(path, df)
        return df

    def _check_labels(self, path: str, column: pd.Series) -> None:
        """The split label is 0 (train), 1 (validation) or 2 (test): any other value, also a
        negative or a huge one, is named as a bad label (not as a bad id)."""
        values = pd.to_numeric(column, errors="coerce")
        bad = ~values.isin([0, 1, 2])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column '{self.splitting_label}' must be 0, 1 or 2 (train, validation, test); "
                            f"data row {row + 1} has {_shown(column.iloc[row])}")

    @staticmethod
    def _integer_column(path: str, column: pd.Series, name: str) -> pd.Series:
        """The column as int64: every value a whole number within an id's range, none negative."""
        values = pd.to_numeric(column, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(np.float64)) | (values != np.floor(values))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column '{name}' must hold integers; data row {row + 1} has {_shown(column.iloc[row])}")
        huge = values.astype(np.float64).abs() > MAX_ID
        if huge.any():
            row = int(np.flatnonzero(huge.to_numpy())[0])
            raise DataError(f"{path}: column '{name}': data row {row + 1} has {_shown(column.iloc[row])}, out of range for "
                            f"an id (ids are 0-based, at most {MAX_ID})")
        values = values.astype(np.int64)
        if (values < 0).any():
            raise DataError(f"{path}: column '{name}' has negative value {int(values.min())}; ids must be 0-based")
        return values

    def _check_pairs(self, path: str, df: pd.DataFrame) -> None:
        """Each (user, item) pair occurs once: a repeated row would count twice in training and
        in the held-out items, and a pair in two splits is a held-out item the user already has
        (masked at evaluation, it can never count as a hit)."""
        pairs = [self.uid_field, self.iid_field]
        repeated = df.duplicated(pairs, keep=False).to_numpy()
        if not repeated.any():
            return
        first = int(np.flatnonzero(repeated)[0])
        u, i = int(df[self.uid_field].iloc[first]), int(df[self.iid_field].iloc[first])
        rows = np.flatnonzero(repeated & (df[self.uid_field].to_numpy() == u) & (df[self.iid_field].to_numpy() == i))
        labels = df[self.splitting_label].to_numpy()[rows]
        n_extra = int(df.duplicated(pairs, keep="first").sum())
        where = f"(user {u}, item {i}) is on data rows {rows[0] + 1} and {rows[1] + 1}"
        if labels[0] == labels[1]:
            raise DataError(f"{path}: duplicate interactions: {where}, both in the {SPLIT_NAMES[labels[0]]} split "
                            f"({n_extra} repeated row(s) in all); each (user, item) pair must appear once")
        raise DataError(f"{path}: {where}, in both the {SPLIT_NAMES[labels[0]]} and the {SPLIT_NAMES[labels[1]]} split "
                        f"({n_extra} repeated pair(s) in all); a pair must sit in one split only")

    def split(self) -> list[RecDataset]:
        """Train / validation / test, dropping validation/test users unseen in training
        when ``filter_out_cod_start_users`` (MMRec's cold-user filter)."""
        parts = [self.df[self.df[self.splitting_label] == i].drop(columns=self.splitting_label) for i in range(3)]
        where = getattr(self, "path", self.dataset_path)
        if parts[0].empty:
            raise DataError(f"{where}: the training split (x_label=0) is empty")
        train_users = set(parts[0][self.uid_field].unique().tolist())
        dropped = {}
        for i in (1, 2):
            cold = ~parts[i][self.uid_field].isin(train_users)
            if cold.any():
                n_cold = parts[i].loc[cold, self.uid_field].nunique()
                if not self.config["filter_out_cod_start_users"]:
                    raise DataError(f"{where}: {n_cold} user(s) in the {SPLIT_NAMES[i]} split have no training "
                                    "interactions; set filter_out_cod_start_users: True to drop them")
                dropped[SPLIT_NAMES[i]] = int(n_cold)
                parts[i] = parts[i][~cold]
            if parts[i].empty:
                raise DataError(f"{where}: the {SPLIT_NAMES[i]} split (x_label={i}) is empty"
                                + (" after dropping users without training interactions" if cold.any() else ""))
        if dropped:
            log.info("cold-user filter dropped users without training interactions: %s", dropped)
        out = []
        for p in parts:
            ds = RecDataset(self.config, p.reset_index(drop=True))
            ds.user_num, ds.item_num = self.user_num, self.item_num
            ds.dropped_cold_users = {**self.dropped_cold_users, **dropped}
            out.append(ds)
        return out

    def get_user_num(self) -> int:
        return self.user_num

    def get_item_num(self) -> int:
        return self.item_num

    def __len__(self) -> int:
        return len(self.df)


def inject_false_positives(train: RecDataset, ratio: float, seed: int) -> RecDataset:
    """Training split plus ``round(ratio * len(train))`` random (user, item) pairs it did not
    hold: the false-positive noise of the robustness study (Fig. 4). Users are drawn from
    those with training interactions, items uniformly; validation and test are untouched."""
    if ratio == 0:
        return train
    uid, iid = train.uid_field, train.iid_field
    users = np.unique(train.df[uid].to_numpy())
    n_new = int(round(ratio * len(train)))
    seen = set((train.df[uid].to_numpy() * train.item_num + train.df[iid].to_numpy()).tolist())
    if n_new > len(users) * train.item_num - len(seen):
        raise DataError(f"config key 'train_noise_ratio': {ratio} asks for {n_new} new interactions, "
                        "more than the unobserved (user, item) pairs")
    rng = np.random.default_rng(seed)
    added: set[int] = set()
    while len(added) < n_new:
        codes = rng.choice(users, n_new) * train.item_num + rng.integers(0, train.item_num, n_new)
        for code in codes.tolist():
            if code not in seen and code not in added:
                added.add(code)
                if len(added) == n_new:
                    break
    codes = np.fromiter(sorted(added), dtype=np.int64, count=n_new)
    noise = pd.DataFrame({uid: codes // train.item_num, iid: codes % train.item_num})
    noisy = RecDataset(train.config, pd.concat([train.df, noise], ignore_index=True))
    noisy.user_num, noisy.item_num = train.user_num, train.item_num
    noisy.dropped_cold_users = train.dropped_cold_users
    return noisy
