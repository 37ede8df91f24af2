"""Importers for the raw releases the paper uses (Table 1).

Each reader returns one row per interaction with raw ``user``, ``item`` and ``timestamp``
(seconds). Then, for every release alike: duplicate (user, item) pairs keep their earliest
time; with ``--features``, items without a feature row are dropped; iterated k-core
filtering (``--core``, the paper's 10 by default); 0-based ids (mapping files kept);
per-user chronological 8:1:1 split.

* ``tmall`` (Tianchi dataset 140281): ``Tianchi_2014002_Rec_Tmall_Log*`` with columns
  item_id, user_id, action, vtime (``yyyy-mm-dd hh:mm:ss``), comma- or tab-separated, with
  or without a header row; all four actions (click, collect, cart, alipay) count.
* ``microlens`` (MicroLens-50k): ``MicroLens-50k_pairs.csv`` with columns user, item,
  timestamp (milliseconds).
* ``hm`` (H&M Personalized Fashion Recommendations): ``transactions_train.csv`` with columns
  t_dat (``yyyy-mm-dd``), customer_id, article_id, price, sales_channel_id.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, UserInputError
from .features import load_feature_file
from .filtering import chronological_split, k_core, remap_ids
from .layout import check_output, write_dataset

K_CORE = 10  # the paper's
SLOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.npy")
TMALL_COLUMNS = ["item_id", "user_id", "action", "vtime"]
TMALL_ACTIONS = {"click", "collect", "cart", "alipay"}


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: cannot parse ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _require(df: pd.DataFrame, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    if df.empty:
        raise DataError(f"{path}: holds no rows")
    for c in columns:
        blank = df[c].str.strip() == ""
        if blank.any():
            raise DataError(f"{path}: column '{c}' is empty in data row {int(np.flatnonzero(blank)[0]) + 1}")


MAX_EPOCH_SECONDS = 253402300799  # 9999-12-31 23:59:59 UTC


def _times(values: pd.Series, path: Path, column: str, fmt: str | None = None, unit: str | None = None) -> np.ndarray:
    if unit:
        parsed = pd.to_numeric(values, errors="coerce")
        limit = MAX_EPOCH_SECONDS * (1000 if unit == "ms" else 1)  # inf and 1e30 are no time (int64 wraps)
        bad = parsed.isna() | (parsed < 0) | ~(parsed <= limit)
        seconds = (parsed // (1000 if unit == "ms" else 1)).astype("float64")
    else:
        stamp = pd.to_datetime(values, format=fmt, errors="coerce")
        bad = stamp.isna()
        seconds = (stamp - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        expected = f"{unit} since the epoch, before the year 10000" if unit else f"a date as {fmt}"
        raise DataError(f"{path}: column '{column}' data row {row + 1} is {values.iloc[row]!r}, expected {expected}")
    return np.asarray(seconds, dtype=np.int64)


def read_tmall(raw: Path) -> pd.DataFrame:
    files = sorted(p for p in raw.glob("Tianchi_2014002_Rec_Tmall_Log*") if p.is_file() and not p.name.endswith(".gz")
                   and ".tar" not in p.name)
    if not files:
        raise DataError(f"{raw}: no Tianchi_2014002_Rec_Tmall_Log* file (unpack the release's log archive there)")
    frames = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.readline()
        sep = "\t" if "\t" in head else ","
        has_header = head.strip().lower().split(sep)[:1] == ["item_id"]
        df = _read_csv(path, sep=sep, header=0 if has_header else None, quoting=csv.QUOTE_NONE)
        if not has_header:
            if df.shape[1] != 4:
                raise DataError(f"{path}: expected 4 columns {TMALL_COLUMNS}, found {df.shape[1]}")
            df.columns = TMALL_COLUMNS
        df.columns = [c.strip().lower() for c in df.columns]
        _require(df, TMALL_COLUMNS, path)
        unknown = set(df["action"].str.strip()) - TMALL_ACTIONS
        if unknown:
            raise DataError(f"{path}: column 'action' has unknown value(s) {sorted(unknown)[:3]}; "
                            f"expected {sorted(TMALL_ACTIONS)}")
        frames.append(pd.DataFrame({"user": df["user_id"].str.strip(), "item": df["item_id"].str.strip(),
                                    "timestamp": _times(df["vtime"].str.strip(), path, "vtime", "%Y-%m-%d %H:%M:%S")}))
    return pd.concat(frames, ignore_index=True)


def read_microlens(raw: Path) -> pd.DataFrame:
    path = raw / "MicroLens-50k_pairs.csv"
    df = _read_csv(path)
    df.columns = [c.strip().lower() for c in df.columns]
    _require(df, ["user", "item", "timestamp"], path)
    return pd.DataFrame({"user": df["user"].str.strip(), "item": df["item"].str.strip(),
                         "timestamp": _times(df["timestamp"], path, "timestamp", unit="ms")})


def read_hm(raw: Path) -> pd.DataFrame:
    path = raw / "transactions_train.csv"
    df = _read_csv(path)
    _require(df, ["t_dat", "customer_id", "article_id"], path)
    article = df["article_id"].str.strip().str.lstrip("0").replace("", "0")  # '0108775015' -> '108775015'
    return pd.DataFrame({"user": df["customer_id"].str.strip(), "item": article,
                         "timestamp": _times(df["t_dat"].str.strip(), path, "t_dat", "%Y-%m-%d")})


READERS = {"tmall": read_tmall, "microlens": read_microlens, "hm": read_hm}


def load_features(spec: str) -> tuple[str, dict[str, np.ndarray]]:
    """``NAME=FEATURES.npy,IDS.txt``: row r of FEATURES.npy belongs to the raw item id on
    line r of IDS.txt. Returns (slot file name, raw id -> vector)."""
    name, sep, files = spec.partition("=")
    feat_path, comma, ids_path = files.partition(",")
    if not sep or not comma or not name.endswith(".npy"):
        raise UserInputError(f"--features expects NAME.npy=FEATURES.npy,IDS.txt, got {spec!r}")
    if not SLOT_NAME.fullmatch(name):
        raise UserInputError(f"--features {spec!r}: the slot {name!r} must be a plain file name (letters, digits, "
                             "'_', '-', '.'; no folder, not hidden), e.g. image_feat.npy")
    ids = [line.strip() for line in Path(ids_path).read_text(encoding="utf-8").splitlines()] \
        if Path(ids_path).is_file() else None
    if ids is None:
        raise DataError(f"{ids_path}: file not found")
    arr = load_feature_file(feat_path, len(ids))
    if len(set(ids)) != len(ids):
        raise DataError(f"{ids_path}: lists an item id twice")
    return name, dict(zip(ids, arr))


def prepare_release(release: str, raw: Path, out: Path, overwrite: bool = False, features: list[str] = (),
                    core: int = K_CORE) -> dict:
    """A raw release to MMRec's layout: ``core``-core filtering (the paper's 10 by default),
    0-based ids, per-user chronological 8:1:1 split."""
    raw, out = Path(raw), Path(out)
    if isinstance(core, bool) or not isinstance(core, int) or core < 1:
        raise UserInputError(f"--core expects a whole number >= 1, got {core!r}")
    check_output(out, overwrite, source=raw)
    if not raw.is_dir():
        raise DataError(f"{raw}: raw release folder not found")
    loaded = [load_features(spec) for spec in features]
    slots = [name for name, _ in loaded]
    if len(set(slots)) != len(slots):
        raise UserInputError(f"--features: slot names repeat ({', '.join(slots)}); give each modality its own file name")
    df = READERS[release](raw)
    df = df.sort_values(["user", "item", "timestamp"]).drop_duplicates(["user", "item"], keep="first")
    dropped_for_features = 0
    for _, table in loaded:
        keep = df["item"].isin(table.keys())
        dropped_for_features += int(df.loc[~keep, "item"].nunique())
        df = df[keep]
    df = k_core(df, core)
    if df.empty:
        raise DataError(f"{raw}: nothing is left after {core}-core filtering")
    users, user_map = remap_ids(df, "user")
    items, item_map = remap_ids(df, "item")
    frame = df.assign(user=users.to_numpy(), item=items.to_numpy())
    inter = pd.DataFrame({"userID": frame["user"].to_numpy(), "itemID": frame["item"].to_numpy(),
                          "x_label": chronological_split(frame)})
    feats = {name: np.stack([table[raw_id] for raw_id in item_map["raw_id"]]) for name, table in loaded}
    stats = write_dataset(out, inter.sort_values(["userID", "x_label", "itemID"]), feats, overwrite,
                          mappings={"user": user_map, "item": item_map},
                          source=f"{release} raw release at {raw.resolve()}, {core}-core, chronological 8:1:1",
                          extra_stats={"items_dropped_without_features": dropped_for_features})
    return stats
