"""What makes a study's trials comparable: the protocol, the search space and the settings its
trials run with beyond their parameters, recorded when a study starts and checked when it is
resumed."""

from __future__ import annotations

import json
import logging

import optuna

from ...errors import UserInputError
from ..drift import changed_settings, plain, settings_now
from .request import TuneRequest
from .space import Dimension
from .storage import finished_states

log = logging.getLogger(__name__)

MACHINE_KEYS = ("data_path", "gpu_id", "use_gpu", "cuda_graphs")  # where a trial runs, not what it computes


def protocol(request: TuneRequest) -> dict:
    """What makes one study's trials comparable, recorded in the study and checked on resume, in
    the JSON form every storage returns (so a resume compares like with like)."""
    record = {"engine": request.engine, "seeds": list(request.seeds), "sampler_seed": request.sampler_seed,
              "pruner": {"kind": "median", "startup_trials": request.startup_trials,
                         "warmup_epochs": request.warmup_epochs},
              "settings": {k: v for k, v in sorted(request.settings.items()) if k not in MACHINE_KEYS}}
    try:
        return json.loads(json.dumps(record, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"--set: every fixed value must be a plain number, string, boolean or list to be "
                             f"recorded in the study ({exc})") from None


def space_record(space: list[Dimension]) -> dict:
    """A search space as the study stores it (JSON types, as any storage returns them)."""
    return json.loads(json.dumps({d.name: [d.kind, d.low, d.high, list(d.choices or [])] for d in space}))


def check_protocol(study: optuna.Study, request: TuneRequest) -> None:
    """Record the protocol in a new study; refuse to resume one started under another, or with
    another search space."""
    recorded, wanted = study.user_attrs.get("protocol"), protocol(request)
    if recorded is None and study.get_trials(deepcopy=False):
        raise UserInputError(f"study '{request.study_name}' in {request.storage} was started before studies "
                             "recorded their protocol (seeds, pruner, settings): its trials are not comparable "
                             "with new ones; start a new study (--study NAME or another --storage)")
    space, wanted_space = study.user_attrs.get("space"), space_record(request.space)
    if space is not None and space != wanted_space:
        changed = sorted(k for k in set(space) | set(wanted_space) if space.get(k) != wanted_space.get(k))
        raise UserInputError(f"study '{request.study_name}' in {request.storage} was started with another search "
                             f"space (keys that differ: {', '.join(changed)}); resume it with that space (--space "
                             "FILE) or start a new study (--study NAME)")
    if recorded is None:
        study.set_user_attr("protocol", wanted)
        return
    differs = sorted(k for k in wanted if recorded.get(k) != wanted[k])
    if differs:
        detail = "; ".join(f"{k}: study has {recorded.get(k)!r}, this call {wanted[k]!r}" for k in differs)
        raise UserInputError(f"study '{request.study_name}' in {request.storage} was started under another protocol "
                             f"({detail}); resume it with the same options or start a new study (--study NAME)")


def base_settings(request: TuneRequest) -> dict | None:
    """What every trial runs with beyond its parameters, as today's config files give it (the
    standalone engine; None for MMRec's, or where the dataset's config is not found here)."""
    if request.engine != "standalone":
        return None
    overrides = {k: v for k, v in request.settings.items() if k != "data_path"}
    now = settings_now(request.model, request.dataset, request.seeds[0], overrides, request.settings.get("data_path"))
    if now is None:
        return None
    space = {d.name for d in request.space}
    return {k: v for k, v in plain(now).items() if k not in space}


def check_base_settings(study: optuna.Study, request: TuneRequest) -> None:
    """Record what a new study's trials run with beyond their parameters; refuse to resume one
    whose config files have changed since (its finished trials ran another configuration). A
    study from before this record is stamped now, with the trial number the check starts at
    (``base_settings_from_trial``): what its earlier trials ran with is not known. A study whose
    budget is spent runs nothing more: a change is then a warning, and its profile is exported."""
    now = base_settings(request)
    if now is None:
        return
    recorded = study.user_attrs.get("base_settings")
    trials = study.get_trials(deepcopy=False)
    if recorded is None:
        study.set_user_attr("base_settings", now)
        if trials:
            study.set_user_attr("base_settings_from_trial", len(trials))
            log.info("%s: from before studies recorded their settings; checked from trial %d on",
                     request.study_name, len(trials))
        return
    changed = changed_settings(recorded, now, request.model)
    if not changed:
        return
    detail = ", ".join(f"{key} {old!r} → {new!r}" for key, (old, new) in changed.items())
    if sum(t.state in finished_states() for t in trials) >= request.trials:
        log.warning("%s: its trials ran with settings that today's config files no longer give (%s); its budget "
                    "is spent, so nothing runs and its profile is exported as it stands", request.study_name, detail)
        return
    raise UserInputError(f"study '{request.study_name}' in {request.storage}: its trials ran with settings that "
                         f"today's config files no longer give ({detail}); put the config file back, or start "
                         "a new study (--study NAME)")
