"""Equal-budget hyper-parameter search on Optuna: ``mmrec-ld4mrec tune``.

Every model is searched the same way: a TPE sampler with a fixed seed over the model's search
space (``configs/search/MODEL.yaml``), ``--trials`` finished trials per study, each trial a
normal run of the engine (MMRec's protocol, early stopping on validation) whose objective is
the best validation metric (``valid_metric``, Recall@20 by default; the mean over ``--seeds``
seeds). Test metrics are stored beside each trial and never consulted. Trials of both engines
report their validation metric after every evaluation to a median pruner, which stops a
trial that trails the earlier trials at the same epoch, once its warm-up has passed: by default
as many epochs as early stopping's patience (``stopping_step`` x ``eval_step``), so no trial is
pruned in its first ``stopping_step`` evaluations and a slow starter (a small learning rate, a
deep graph) is not cut at its first evaluations. Trials run on tuning seeds (1001, 1002, ...)
kept apart from the seeds a reproduction reports (1-10).

A study records this protocol (engine, seeds, sampler seed, pruner, fixed settings) and its
search space when it starts; resuming it under others is refused, naming what differs.

The study lives in an Optuna storage: a SQLite file by default, so a killed study resumes
where it stopped; any storage URL or a journal file (``journal:PATH``) lets several workers
share one study. Workers on one machine (or on a file system with working ``fcntl`` locks)
take trials under a lock beside the storage file, so N finished trials are N in total. A
worker that dies leaves its trial running with a heartbeat that stops: any worker that finds
the heartbeat older than the grace period marks the trial failed and queues its parameters
again, so no finished trial is lost or repeated and no claimed trial is dropped.

The package, one module per job: ``space`` (search spaces), ``storage`` (storages, the claim
lock, heartbeats, the re-queueing of stopped trials), ``request`` (what a study is asked to
do), ``protocol`` (what a study records and checks on resume), ``loop`` (the optimisation
loop) and ``profiles`` (the exported best profile). The names other code uses are re-exported
here.
"""

from __future__ import annotations

from .loop import default_run, objective_value, tune
from .profiles import best_profile, budget_row, read_profile, write_profile
from .request import TuneRequest, patience_epochs, trial_settings, tuning_seeds
from .space import Dimension, default_config, load_space, search_space_path
from .storage import open_storage

__all__ = [
    "Dimension",
    "TuneRequest",
    "best_profile",
    "budget_row",
    "default_config",
    "default_run",
    "load_space",
    "objective_value",
    "open_storage",
    "patience_epochs",
    "read_profile",
    "search_space_path",
    "trial_settings",
    "tune",
    "tuning_seeds",
    "write_profile",
]
