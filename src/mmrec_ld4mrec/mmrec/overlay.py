"""``mmrec-ld4mrec install|uninstall --mmrec-root PATH``: add this project's files to an
MMRec checkout, and take exactly those away again.

Only new files are written; MMRec's own files are never edited. What is added:
``patches/overlay/`` (model modules and the shim hook), our model and dataset YAMLs, and the
generated ``synthetic`` dataset. A manifest in the checkout records each file and its hash,
so uninstall removes only what install wrote and still holds the content it wrote, and never
a file install does not write, whatever a hand-edited manifest lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.synthetic import INTER_FILE, generate
from ..engine.config import configs_root
from ..errors import UserInputError
from ..files import atomic_write
from ..resources import resource_dir

MANIFEST = ".mmrec-ld4mrec-manifest.json"
SYNTHETIC_DIR = "data/synthetic"
CHECKOUT_MARKERS = ("src/main.py", "src/utils/quick_start.py", "src/common/abstract_recommender.py",
                    "src/configs/overall.yaml")
# MMRec ships a compatible YAML for these; ours is not installed over it.
MMREC_OWN_DATASETS = {"microlens"}


@dataclass(frozen=True)
class PlannedFile:
    target: str  # relative to the checkout root
    content: bytes
    why: str


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _synthetic_files() -> list[PlannedFile]:
    df, features = generate()
    files = [PlannedFile(f"{SYNTHETIC_DIR}/{INTER_FILE}", df.to_csv(sep="\t", index=False).encode(),
                         "the embedded synthetic dataset")]
    for name, arr in features.items():
        buf = io.BytesIO()
        np.save(buf, arr)
        files.append(PlannedFile(f"{SYNTHETIC_DIR}/{name}", buf.getvalue(), "synthetic item features"))
    return files


def planned_files() -> list[PlannedFile]:
    overlay = resource_dir("patches", "overlay") / "overlay"
    files = [PlannedFile(p.relative_to(overlay).as_posix(), p.read_bytes(), "overlay")
             for p in sorted(overlay.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    configs = configs_root()
    for p in sorted((configs / "model").glob("*.yaml")):
        files.append(PlannedFile(f"src/configs/model/{p.name}", p.read_bytes(), "model hyper-parameters"))
    for p in sorted((configs / "dataset").glob("*.yaml")):
        if p.stem not in MMREC_OWN_DATASETS:
            files.append(PlannedFile(f"src/configs/dataset/{p.name}", p.read_bytes(), "dataset config"))
    return files + _synthetic_files()


def check_checkout(root: Path) -> Path:
    root = Path(root).expanduser().resolve()
    missing = [m for m in CHECKOUT_MARKERS if not (root / m).is_file()]
    if missing:
        raise UserInputError(f"{root}: not an MMRec checkout (missing {', '.join(missing)})")
    return root


def _leaves(root: Path, rel: Path) -> bool:
    """Whether ``root / rel``, links on the way followed, is the checkout itself or outside it."""
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(root / rel))
    return real == real_root or real_root not in real.parents


def _inside(root: Path, target: object, where: str) -> Path:
    """``root / target`` for a manifest entry that is a plain relative path staying inside the
    checkout: no absolute path, no ``..``, and no link on the way that leads out of it."""
    if not isinstance(target, str) or not target or "\\" in target or "\0" in target:
        raise UserInputError(f"{root / MANIFEST}: {where} entry {target!r} is not a relative path; nothing was changed")
    rel = Path(target)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise UserInputError(f"{root / MANIFEST}: {where} entry {target!r} leaves the checkout; nothing was changed")
    if _leaves(root, rel):
        raise UserInputError(f"{root / MANIFEST}: {where} entry {target!r} leads out of the checkout through a link; "
                             "nothing was changed")
    return root / rel


def _read_manifest(root: Path) -> dict:
    """The manifest, checked whole before anything is touched: a JSON object with ``files``
    (relative path -> sha256 hex) and ``dirs`` (relative paths), every path inside ``root``."""
    path = root / MANIFEST
    if not path.is_file():
        return {"files": {}, "dirs": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise UserInputError(f"{path}: unreadable install manifest (not JSON); remove it by hand after checking") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or not isinstance(data.get("dirs"), list):
        raise UserInputError(f"{path}: expected a JSON object with 'files' (path -> sha256) and 'dirs' (list of paths)")
    for target, digest in data["files"].items():
        _inside(root, target, "'files'")
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UserInputError(f"{path}: 'files' entry {target!r} has no sha256 hex digest (got {digest!r})")
    for target in data["dirs"]:
        _inside(root, target, "'dirs'")
    return data


def _write_atomic(path: Path, content: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(content))


def install(mmrec_root: str | Path) -> dict:
    """Add our files; idempotent; refuses (changing nothing) to overwrite a file it did not write."""
    root = check_checkout(Path(mmrec_root))
    manifest = _read_manifest(root)
    plan, conflicts, unchanged = [], [], []
    planned = planned_files()
    # A folder of the checkout that is a link leading out of it: writing through it would put our
    # files elsewhere, and uninstall (which never follows such a link) could not take them back.
    escapes = [f.target for f in planned if _leaves(root, Path(f.target))]
    if escapes:
        more = f" and {len(escapes) - 3} more" if len(escapes) > 3 else ""
        raise UserInputError(f"{root}: would write outside the checkout through a link: {', '.join(escapes[:3])}{more}; "
                             "nothing was changed")
    for f in planned:
        path = root / f.target
        if path.is_file():
            current = _sha(path.read_bytes())
            if current == _sha(f.content):
                unchanged.append(f.target)
                continue
            if manifest["files"].get(f.target) != current:
                conflicts.append(f.target)
                continue
        elif path.exists():
            conflicts.append(f.target)
            continue
        plan.append(f)
    if conflicts:
        raise UserInputError(f"{root}: would overwrite files this tool did not write: {', '.join(conflicts)}; "
                             "nothing was changed")
    created_dirs, written = [], []
    try:
        for f in plan:
            path = root / f.target
            missing_dirs = [d for d in reversed(path.parents) if not d.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            created_dirs += [d.relative_to(root).as_posix() for d in missing_dirs]
            _write_atomic(path, f.content)
            written.append(f)
        # A file that was already there with our content is the user's: it never enters the
        # manifest, so uninstall leaves it alone.
        files = {**manifest["files"], **{f.target: _sha(f.content) for f in written}}
        dirs = sorted(set(manifest["dirs"]) | set(created_dirs))
        _write_atomic(root / MANIFEST, json.dumps({"files": files, "dirs": dirs}, indent=1).encode())
    except OSError as exc:
        _undo(root, written, created_dirs)
        raise UserInputError(f"{root}: cannot write into the checkout ({exc.strerror or exc}: "
                             f"{exc.filename or ''}); nothing was changed") from None
    except BaseException:
        _undo(root, written, created_dirs)
        raise
    return {"root": str(root), "written": [f.target for f in written], "unchanged": unchanged}


def _undo(root: Path, written: list[PlannedFile], created_dirs: list[str]) -> None:
    for f in written:
        (root / f.target).unlink(missing_ok=True)
    for d in sorted(created_dirs, key=len, reverse=True):
        try:
            (root / d).rmdir()
        except OSError:
            pass


# MMRec writes these caches next to a dataset's files (MGCN, LATTICE, FREEDOM, ...). In the
# folder of the dataset install generated they derive from our data, so they go with it;
# nowhere else is anything removed that install did not write.
DERIVED_CACHE_SUFFIXES = (".pt",)


def uninstall(mmrec_root: str | Path) -> dict:
    """Remove what install wrote (and still holds install's content); report what was kept."""
    root = check_checkout(Path(mmrec_root))
    if not (root / MANIFEST).is_file():
        raise UserInputError(f"{root}: nothing to uninstall (no {MANIFEST})")
    manifest = _read_manifest(root)
    removed, kept = [], []
    ours = {f.target for f in planned_files()}  # whatever the manifest claims, nothing else is ever removed
    for target, digest in manifest["files"].items():
        path = root / target
        if not path.is_file():
            continue
        if target in ours and _sha(path.read_bytes()) == digest:
            path.unlink()
            removed.append(target)
        else:
            kept.append(target)
    for target in manifest["files"]:
        pycache = (root / target).parent / "__pycache__"
        stem = Path(target).stem
        for pyc in pycache.glob(f"{stem}.*.pyc") if target.endswith(".py") else []:
            pyc.unlink()
    for d in sorted(manifest["dirs"], key=len, reverse=True):
        path = root / d
        if path.is_dir() and not path.is_symlink():
            for cache in path.iterdir() if d == SYNTHETIC_DIR else ():
                if cache.is_file() and not cache.is_symlink() and cache.suffix in DERIVED_CACHE_SUFFIXES:
                    cache.unlink()
            pycache = path / "__pycache__"
            if pycache.is_dir() and not any(pycache.iterdir()):
                pycache.rmdir()
            try:
                path.rmdir()
            except OSError:
                kept.append(d + "/")
    if kept:
        _write_atomic(root / MANIFEST, json.dumps(
            {"files": {t: manifest["files"][t] for t in kept if t in manifest["files"]},
             "dirs": [d.rstrip("/") for d in kept if d.endswith("/")]}, indent=1).encode())
    else:
        (root / MANIFEST).unlink()
    return {"root": str(root), "removed": removed, "kept": kept}
