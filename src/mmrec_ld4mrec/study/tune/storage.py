"""The study's storage and its trial queue: Optuna storages opened from a URL, the claim lock
beside a storage file, the heartbeat of a running trial, and the re-queueing of a trial whose
worker stopped beating."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ...errors import UserInputError
from ...files import check_output_file

FILE_STORAGES = ("journal:", "sqlite:///")


def storage_file(url: str) -> tuple[str, str] | None:
    """(prefix, path) of a file storage (``journal:PATH``, ``sqlite:///PATH``); None for a server."""
    return next(((prefix, url[len(prefix):]) for prefix in FILE_STORAGES if url.startswith(prefix)), None)


def storage_lock_path(url: str) -> Path | None:
    """The lock file beside a file storage (``sqlite:///PATH``, ``journal:PATH``); None for a server."""
    stored = storage_file(url)
    if stored is not None:
        path = Path(stored[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.with_name(path.name + ".claim.lock")  # ".lock" is the journal backend's own
    if "://" not in url:
        raise UserInputError(f"--storage: expected sqlite:///PATH, journal:PATH or a database URL, got {url!r}")
    return None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage: ``journal:PATH`` (a journal file), else a database URL (``sqlite:///PATH``
    and any SQLAlchemy URL). Open it under :func:`claim_lock`: two processes creating one SQLite
    file's tables at once collide."""
    if url.startswith("journal:"):
        return optuna.storages.JournalStorage(JournalFileBackend(url[len("journal:"):]))
    if url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


@contextlib.contextmanager
def claim_lock(lock_path: Path | None) -> Iterator[None]:
    """Serialise trial claims among the workers that share a storage file."""
    if lock_path is None:
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Heartbeat:
    """Stamps a running trial's ``heartbeat`` user attribute every ``interval`` seconds."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: float):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # the trial may have just finished
                self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())

    def __enter__(self) -> Heartbeat:
        self.storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def requeue_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage, grace: float) -> list[int]:
    """Running trials whose heartbeat is older than ``grace`` seconds (their worker died) are
    marked failed and their parameters queued again; returns their numbers."""
    stale = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.user_attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else now)
        if now - float(beat) > grace:
            try:
                if trial.datetime_start is not None:  # the time it ran until its last heartbeat counts in the budget
                    storage.set_trial_user_attr(trial._trial_id, "wall_seconds",
                                                max(0.0, float(beat) - trial.datetime_start.timestamp()))
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            except Exception:  # another worker got there first
                continue
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
            stale.append(trial.number)
    return stale


def finished_states() -> tuple[TrialState, ...]:
    """The states that count towards a study's budget of trials."""
    return (TrialState.COMPLETE, TrialState.PRUNED)


@functools.lru_cache(maxsize=4)
def _read_journal(path: str, mtime_ns: int, size: int) -> optuna.storages.BaseStorage:
    """A journal replayed once per version of the file (a report reads every study of it)."""
    return optuna.storages.JournalStorage(JournalFileBackend(path))


def study_progress(journal: Path, study_name: str) -> tuple[int, dict | None]:
    """(finished trials, recorded protocol) of ``study_name`` in a journal file, read without
    writing: (0, None) where the journal or the study does not exist yet."""
    journal = Path(journal)
    if not journal.is_file():
        return 0, None
    stat = journal.stat()
    try:
        storage = _read_journal(str(journal.resolve()), stat.st_mtime_ns, stat.st_size)
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0, None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{journal}: cannot read it as an Optuna journal ({exc})") from None
    finished = sum(t.state in finished_states() for t in study.get_trials(deepcopy=False))
    return finished, study.user_attrs.get("protocol")


JOURNAL_OPERATIONS = range(11)  # optuna.storages.journal's operation codes, CREATE_STUDY .. DISCARD_TRIALS
SQLITE_HEADER = b"SQLite format 3\x00"


def check_storage(url: str) -> None:
    """Refuse, before anything is created or written, a ``--storage`` a study could not live in,
    naming it: a file path that is empty, a folder, a device or pipe, under a file or in a folder
    that cannot be written; a journal that is damaged (cut short mid-record, a line that is not a
    record, an unknown operation), since new records would be glued onto it; an SQLite file that
    is not a database, or a database of something else (Optuna would add its tables to it); an
    in-memory database (the study would vanish with the process); a database URL whose dialect or
    driver is not installed."""
    what = "--storage"
    stored = storage_file(url)
    if stored is not None:
        prefix, path = stored
        if not path or path == ":memory:" or path.startswith("file::memory:"):
            raise UserInputError(f"{what} {url!r}: names no file (an in-memory database would vanish with "
                                 "this process); give a file path")
        check_output_file(Path(path), f"{what} {prefix}")
        if Path(path).is_file():
            (_check_journal if prefix == "journal:" else _check_sqlite)(Path(path), url)
        return
    if "://" not in url:
        raise UserInputError(f"{what}: expected sqlite:///PATH, journal:PATH or a database URL, got {url!r}")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        dialect = make_url(url).get_dialect()
        dialect.import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UserInputError(f"{what} {url!r}: not a database URL SQLAlchemy knows ({exc})") from None
    except ImportError as exc:
        raise UserInputError(f"{what} {url!r}: its database driver is not installed ({exc.name or exc}); "
                             "install it, or use sqlite:///PATH or journal:PATH") from None


def _check_journal(path: Path, url: str) -> None:
    with open(path, "rb") as handle:
        data = handle.read()
    if data and not data.endswith(b"\n"):
        raise UserInputError(f"--storage {url!r}: the journal is cut short in its last record (a copy stopped "
                             "part-way?); restore it from a full copy before writing to it")
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("op_code") not in JOURNAL_OPERATIONS:
            raise UserInputError(f"--storage {url!r}: line {number} of the journal is not an Optuna journal "
                                 "record; restore it from a full copy before writing to it")


def _check_sqlite(path: Path, url: str) -> None:
    with open(path, "rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if not header:
        return  # an empty file: SQLite makes it a database
    if header != SQLITE_HEADER:
        raise UserInputError(f"--storage {url!r}: {path} is not an SQLite database")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as exc:
        raise UserInputError(f"--storage {url!r}: {path} is a damaged SQLite database ({exc})") from None
    if tables and "studies" not in tables:
        raise UserInputError(f"--storage {url!r}: {path} is a database of something else (tables "
                             f"{', '.join(sorted(tables)[:5])}); Optuna would add its tables to it: give another file")
