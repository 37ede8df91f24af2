"""Write a dataset in MMRec's layout, all or nothing.

``<out>/<name>.inter`` (userID, itemID, x_label), feature ``.npy`` files, the id mappings,
``<name>.yaml`` (the dataset config) and ``stats.json``. Everything is written to a hidden
temporary folder beside ``out`` and renamed into place at the end; an existing ``out`` is
only replaced with ``overwrite``, and then only after the new folder is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..errors import UserInputError
from ..files import check_output_folder


def dataset_stats(inter: pd.DataFrame) -> dict:
    n_users, n_items, n = inter["userID"].nunique(), inter["itemID"].nunique(), len(inter)
    counts = inter["x_label"].value_counts()
    train_users = set(inter.loc[inter["x_label"] == 0, "userID"])
    cold = {name: int(inter.loc[(inter["x_label"] == label) & ~inter["userID"].isin(train_users), "userID"].nunique())
            for label, name in ((1, "validation"), (2, "test"))}
    return {"users": int(n_users), "items": int(n_items), "interactions": int(n),
            "density": n / (n_users * n_items) if n_users and n_items else 0.0,
            "train": int(counts.get(0, 0)), "validation": int(counts.get(1, 0)), "test": int(counts.get(2, 0)),
            "users_without_training_interactions": cold}


PREPARED_MARK = "# written by mmrec-ld4mrec prepare"


def written_by_prepare(folder: Path) -> bool:
    """Whether ``folder`` is a dataset ``prepare`` wrote: its ``NAME.yaml`` starts with our mark
    and ``stats.json`` sits beside it."""
    config = folder / f"{folder.name}.yaml"
    try:
        with open(config, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    return first.startswith(PREPARED_MARK) and (folder / "stats.json").is_file()


MAPPING_FILES = ("user_id_mapping.tsv", "item_id_mapping.tsv")
DERIVED_CACHE_SUFFIX = ".pt"  # MMRec's caches beside the data (MGCN, LATTICE, FREEDOM, ...)


def _prepared_names(folder: Path) -> set[str]:
    """The names ``prepare`` writes into ``folder``: the fixed files and the feature files its
    ``NAME.yaml`` names (a YAML that cannot be read names none)."""
    name = folder.name
    names = {f"{name}.inter", f"{name}.yaml", "stats.json", *MAPPING_FILES}
    try:
        config = yaml.safe_load((folder / f"{name}.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError):
        config = None
    if isinstance(config, dict):
        extra = config.get("extra_feature_files")
        slots = [config.get("vision_feature_file"), config.get("text_feature_file"),
                 *(extra if isinstance(extra, list) else [])]
        names.update(s for s in slots if isinstance(s, str) and s)
    return names


def foreign_entry(folder: Path) -> str | None:
    """The first entry (by name) of a prepared ``folder`` that ``prepare`` did not write and that
    is not one of MMRec's derived caches (a ``*.pt`` file); None when there is none. Only regular
    files count as prepare's or as caches: a folder or a link is always the user's."""
    own = _prepared_names(folder)
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        regular = entry.is_file(follow_symlinks=False)
        if not regular or (entry.name not in own and not entry.name.endswith(DERIVED_CACHE_SUFFIX)):
            return entry.name
    return None


def check_output(out: Path, overwrite: bool, source: Path | None = None) -> Path:
    """Refuse, before anything is read, an output folder ``prepare`` must not write: one that
    exists without ``--overwrite``, one that is not a dataset ``prepare`` wrote (``--overwrite``
    never deletes anything else), the source folder itself or a folder holding it, or a path
    that cannot be written. Returns the absolute, normalised path."""
    out = Path(os.path.abspath(Path(out).expanduser()))
    if not out.name or out.name.startswith("."):
        raise UserInputError(f"--out {out}: the dataset folder needs a plain name (it names the dataset)")
    check_output_folder(out, "--out")
    if source is not None:
        src = Path(source).expanduser().resolve()
        if out.resolve() == src or out.resolve() in src.parents:
            raise UserInputError(f"--out {out}: is the source folder {source} or holds it; write the dataset elsewhere")
    if out.exists() and not overwrite:
        raise UserInputError(f"{out}: already exists; pass --overwrite to replace it")
    if out.exists() and not written_by_prepare(out):
        raise UserInputError(f"{out}: --overwrite replaces only a dataset folder that `prepare` wrote "
                             f"(with its {out.name}.yaml and stats.json); this one is not, so it was left alone")
    if out.exists():
        try:
            foreign = foreign_entry(out)
        except OSError as exc:
            raise UserInputError(f"{out}: cannot list the folder ({exc.strerror or exc}); it was left alone") from None
        if foreign is not None:
            kind = ("link" if (out / foreign).is_symlink() else "folder" if (out / foreign).is_dir()
                    else "file" if (out / foreign).is_file() else "entry")
            raise UserInputError(f"{out}: --overwrite replaces only what `prepare` wrote (and MMRec's *.pt caches), "
                                 f"but the folder also holds the {kind} {foreign!r}; move it out first "
                                 "(nothing was changed)")
    return out


def write_dataset(out: Path, inter: pd.DataFrame, features: dict[str, np.ndarray], overwrite: bool = False,
                  mappings: dict[str, pd.DataFrame] | None = None, extra: dict | None = None,
                  source: str = "", extra_stats: dict | None = None) -> dict:
    """Write the dataset named ``out.name`` into ``out``; returns its statistics."""
    out = check_output(out, overwrite)
    name = out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset folder should not be
    try:
        inter = inter[["userID", "itemID", "x_label"]].astype(np.int64)
        inter.to_csv(tmp / f"{name}.inter", sep="\t", index=False)
        config = {"USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID", "inter_file_name": f"{name}.inter",
                  "field_separator": "\t", "filter_out_cod_start_users": True}
        slots = list(features)
        for fname, arr in features.items():
            np.save(tmp / fname, np.ascontiguousarray(arr, dtype=np.float32))
        # MMRec joins both names onto the folder, so an absent slot is "" (no such file), not null
        config["vision_feature_file"] = slots[0] if len(slots) > 0 else ""
        config["text_feature_file"] = slots[1] if len(slots) > 1 else ""
        if len(slots) > 2:
            config["extra_feature_files"] = slots[2:]
        if not slots:
            config["is_multimodal_model"] = False
        config.update(extra or {})
        for kind, mapping in (mappings or {}).items():
            mapping.to_csv(tmp / f"{kind}_id_mapping.tsv", sep="\t", index=False)
        stats = {"dataset": name, "source": source, **dataset_stats(inter), **(extra_stats or {})}
        (tmp / f"{name}.yaml").write_text(f"{PREPARED_MARK} ({source})\n"
                                          + yaml.safe_dump(config, sort_keys=False))
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2))
        backup = None
        if out.exists():
            backup = out.parent / f".{name}-replaced-{os.getpid()}"
            os.replace(out, backup)
        os.replace(tmp, out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        return stats
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
