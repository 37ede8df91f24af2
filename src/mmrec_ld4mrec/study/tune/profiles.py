"""Exported profiles: a study's best complete trial as run settings, with the study's budget,
written as YAML for ``run --profile`` and experiment files, and read back checked."""

from __future__ import annotations

from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from ...engine.config import read_yaml
from ...errors import ConfigError, UserInputError
from ...files import atomic_write
from .request import TuneRequest, trial_settings


def budget_row(study: optuna.Study) -> dict:
    """Trials, pruned, failed and wall time of a study (the report's budget table)."""
    trials = study.get_trials(deepcopy=False)
    return {"complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "wall_seconds": sum(float(t.user_attrs.get("wall_seconds", 0.0)) for t in trials)}


def best_profile(study: optuna.Study, request: TuneRequest) -> dict:
    """The best complete trial (on validation) as run settings: ``--set`` values plus its parameters."""
    best = study.best_trial
    settings = trial_settings(request, best.params, request.seeds[0])
    for key in ("seed", "hyper_parameters", "data_path"):  # seeds are the reproduction's; the path is this machine's
        settings.pop(key, None)
    return {"model": request.model, "dataset": request.dataset, "study": request.study_name,
            "trial": best.number, "valid_" + request.settings.get("valid_metric", "Recall@20"): best.value,
            "budget": {"trials": request.trials, **budget_row(study)}, "settings": settings}


def write_profile(path: Path, profile: dict) -> None:
    """``profile`` as a YAML file, atomically, with a header naming its trial and study."""
    header = (f"# best trial {profile['trial']} of study {profile['study']} ({profile['model']} on {profile['dataset']}),\n"
              "# selected on validation only; written by mmrec-ld4mrec tune\n")
    text = header + yaml.safe_dump(profile, sort_keys=False)
    atomic_write(Path(path), lambda p: Path(p).write_text(text, encoding="utf-8"))


MACHINE_KEYS = ("data_path", "device", "gpu_id", "use_gpu")


def read_profile(path: Path) -> dict:
    """A profile ``tune`` exported: a mapping with ``model`` and a ``settings`` mapping."""
    if not Path(path).is_file():
        raise UserInputError(f"{path}: profile not found")
    data = read_yaml(Path(path))
    if not isinstance(data.get("model"), str) or not isinstance(data.get("settings"), dict):
        shown = {k: type(data[k]).__name__ for k in ("model", "settings") if k in data}
        raise ConfigError(f"{path}: expected a profile written by `tune`: 'model' (a name) and 'settings' (a mapping "
                          f"of config keys), got {shown or 'neither'}")
    where = [k for k in MACHINE_KEYS if k in data["settings"]]
    if where:  # a run's data and device are its own: a profile naming them would redirect it silently
        raise ConfigError(f"{path}: settings.{where[0]}: a profile holds a model's settings, not where a run's data "
                          "or device is; give it with --data-path / --set instead")
    budget = data.get("budget")
    if budget is not None and not (isinstance(budget, dict) and all(
            isinstance(budget.get(k), int) and not isinstance(budget.get(k), bool) and budget[k] >= 0
            for k in ("trials", "complete", "pruned"))):
        raise ConfigError(f"{path}: 'budget' must hold whole numbers trials, complete and pruned (as `tune` writes "
                          f"it), got {budget!r:.80}")
    return data
