"""The study's storage and its trial queue: Optuna storages opened from a URL, the claim lock
beside a storage file, the heartbeat of a running trial, and the re-queueing of a trial whose
worker stopped beating."""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ...errors import UserInputError


def storage_lock_path(url: str) -> Path | None:
    """The lock file beside a file storage (``sqlite:///PATH``, ``journal:PATH``); None for a server."""
    for prefix in ("journal:", "sqlite:///"):
        if url.startswith(prefix):
            path = Path(url[len(prefix):])
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


def study_progress(journal: Path, study_name: str) -> tuple[int, dict | None]:
    """(finished trials, recorded protocol) of ``study_name`` in a journal file, read without
    writing: (0, None) where the journal or the study does not exist yet."""
    journal = Path(journal)
    if not journal.is_file():
        return 0, None
    try:
        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0, None
    except (OSError, ValueError) as exc:
        raise UserInputError(f"{journal}: cannot read it as an Optuna journal ({exc})") from None
    finished = sum(t.state in finished_states() for t in study.get_trials(deepcopy=False))
    return finished, study.user_attrs.get("protocol")
