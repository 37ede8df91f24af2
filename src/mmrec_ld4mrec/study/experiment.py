"""An experiment file: datasets x models x seeds x config overrides, and the paper's studies.

::
    name: tiny
    datasets: [synthetic]            # names under data_path (prepared on demand, see `prepare`)
    seeds: [1, 2]
    base: {epochs: 3}                # config overrides for every run
    ours: LD4MRec                    # the model the tables measure against the baselines
    ours_variants: [LD4MRecPaper]    # other rows of ours: shown, never taken as "best baseline"
    models:                          # model -> its own overrides; every model is a table row
      LD4MRec: {}
      EASE: {}
      MGCN: {engine: mmrec}          # one of MMRec's models, run in its checkout (--mmrec-root)
      DiffRec: {profile: tuned/DiffRec-tiktok.best.yaml}  # the settings `tune` exported (relative to this file)
      LD4MRec-defaults: {model: LD4MRec, note: as shipped}  # another row of a model; a note under the table
    tuning:                          # optional: the studies behind the profiles, for the report
      journal: tuned/studies.journal # the studies' Optuna journal (relative to this file)
      trials: 10                     # the budget each study is run to
    title: TikTok                    # optional: the report's title and its opening text (Markdown)
    about: DiffMM's split ...
    prepare:                         # optional: how to build a dataset missing from data_path
      tiktok: {source: diffmm, src: ../../shared/data/tiktok}   # relative to this file
    studies:                         # optional, each one a figure
      inference: {steps: [1, 2, 5, T]}               # Fig. 3; forward-free is the main run
      robustness: {ratios: [0.1, 0.2, 0.3]}          # Fig. 4, every model (or `models:`); 0 is the main run
      ablation: {variants: {w/o PG: {use_pg: false}}} # Fig. 5; the full model is the main run
      heatmap: {soft_prob: [0.01, 0.1], smooth: [0.01, 0.1]}  # p x gamma, on ``ours``

Each study runs on every dataset, with ``seeds`` (default: the first main seed). A run is
identified by (dataset, model, seed, overrides); runs that coincide across studies are one run.
``name`` (default: the file's stem) is the results folder's name under ``results/``, so it is
a plain folder name. With ``tuning``, a model whose profile is missing or comes from an
unfinished study is *pending*: it keeps its table row, which says how far its study is
("study pending: 3 of 10 trials"), and has no runs until its study exports the profile.
Every run's configuration is checked by the engine (:func:`check_runs`) before a sweep
starts, and an error names the file and the key that set the value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..engine.config import Config, configs_root, plain_name_problem, read_yaml
from ..engine.quick_start import checked_config
from ..errors import ConfigError, UserInputError
from ..models import MODELS, get_model
from .inference_study import split_inference_study
from .tune import read_profile
from .tune.storage import study_progress

STUDIES = ("inference", "robustness", "ablation", "heatmap")
ENGINES = ("standalone", "mmrec")
PREPARE_SOURCES = ("diffmm", "diffrec")


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: str
    seed: int
    overrides: dict = field(default_factory=dict)
    note: str = field(default="", compare=False)  # what a study changed, for labels only

    @property
    def key(self) -> str:
        text = json.dumps([self.dataset, self.model, self.seed, self.overrides], sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        return f"{self.model}@{self.dataset} seed {self.seed}" + (f" [{self.note}]" if self.note else "")

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "model": self.model, "seed": self.seed, "overrides": self.overrides}


@dataclass(frozen=True)
class Experiment:
    path: Path
    name: str
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    base: dict
    models: dict[str, dict]
    ours: str
    ours_variants: tuple[str, ...]
    prepare: dict[str, dict]
    studies: dict[str, dict]
    data_path: str | None = None
    profiles: dict[str, dict] = field(default_factory=dict)  # model -> the `tune` profile it runs (with its path)
    model_of: dict[str, str] = field(default_factory=dict)  # a row named otherwise -> the model class it runs
    notes: dict[str, str] = field(default_factory=dict)  # row -> the line the report prints under Table 2
    pending: dict[str, str] = field(default_factory=dict)  # row -> how far its study is ("3 of 10 trials")
    tuning: dict = field(default_factory=dict)  # {journal: resolved path, trials: N}
    title: str = ""
    about: str = ""

    def mmrec_models(self) -> list[str]:
        """Models run through an MMRec checkout (``engine: mmrec``), pending ones aside."""
        return [m for m, o in self.models.items() if o.get("engine") == "mmrec" and m not in self.pending]

    def model_class(self, row: str) -> str:
        """The model a row runs: its ``model`` key, else the row's own name."""
        return self.model_of.get(row, row)

    def baselines(self) -> list[str]:
        return [m for m in self.models if m != self.ours and m not in self.ours_variants]

    def study_seeds(self, study: str) -> tuple[int, ...]:
        return tuple(self.studies[study].get("seeds") or self.seeds[:1])

    def spec(self, dataset: str, model: str, seed: int, **extra) -> RunSpec:
        note = ",".join(f"{k}={v}" for k, v in extra.items() if k != "hyper_parameters")
        return RunSpec(dataset, self.model_class(model), seed, {**self.base, **self.models.get(model, {}), **extra},
                       note)

    # ---- which runs each table and figure reads ------------------------------------------
    def study_models(self, study: str) -> list[str]:
        """The models a study runs on: its ``models`` (inference, ablation, robustness), else
        ours (every model for robustness)."""
        default = list(self.models) if study == "robustness" else [self.ours]
        return [m for m in self.studies.get(study, {}).get("models") or default if m not in self.pending]

    def main_spec(self, dataset: str, model: str, seed: int) -> RunSpec:
        """A model's main run. Under the inference study it also ranks its trained best state
        with each strategy of Fig. 3 (``inference_study``), so the figure compares strategies
        of one trained model at no extra training."""
        extra = {}
        if "inference" in self.studies and model in self.study_models("inference"):
            extra["inference_study"] = self.inference_strategies(dataset, model)
        return self.spec(dataset, model, seed, **extra)

    def main_runs(self, dataset: str, model: str) -> list[RunSpec]:
        """A row's runs, one per seed; none while its study is pending."""
        return [] if model in self.pending else [self.main_spec(dataset, model, s) for s in self.seeds]

    def inference_strategies(self, dataset: str, model: str) -> list[int]:
        """Fig. 3's strategies for ``model``: 0 (forward-free) and each k of ``steps`` (``T`` is
        the model's own number of diffusion steps)."""
        steps = self.model_steps(dataset, model)
        return [0] + sorted({steps if k == "T" else int(k) for k in self.studies["inference"]["steps"]})

    def inference_runs(self, dataset: str) -> dict[str, list[RunSpec]]:
        """Fig. 3: model -> its runs, each holding every strategy's metrics (``inference_study``)."""
        seeds = self.study_seeds("inference")
        return {m: [self.main_spec(dataset, m, s) for s in seeds] for m in self.study_models("inference")}

    def robustness_runs(self, dataset: str) -> dict[tuple[str, float], list[RunSpec]]:
        """Fig. 4: (model, noise ratio) -> runs; ratio 0 is the model's main configuration."""
        seeds = self.study_seeds("robustness")
        out = {}
        for model in self.study_models("robustness"):
            out[(model, 0.0)] = [self.main_spec(dataset, model, s) for s in seeds]
            for r in self.studies["robustness"]["ratios"]:
                if r:
                    out[(model, float(r))] = [self.spec(dataset, model, s, train_noise_ratio=r) for s in seeds]
        return out

    def ablation_runs(self, dataset: str) -> dict[str, list[RunSpec]]:
        """Fig. 5: label -> runs; with several ``models`` each label starts with its model."""
        seeds = self.study_seeds("ablation")
        models = self.study_models("ablation")
        out = {}
        for model in models:
            prefix = f"{model} " if len(models) > 1 else ""
            out[model] = [self.main_spec(dataset, model, s) for s in seeds]
            for name, overrides in self.studies["ablation"]["variants"].items():
                out[prefix + name] = [self.spec(dataset, model, s, **overrides) for s in seeds]
        return out

    def heatmap_runs(self, dataset: str) -> dict[tuple[float, float], list[RunSpec]]:
        study = self.studies["heatmap"]
        model = study.get("model", self.ours)
        seeds = self.study_seeds("heatmap")
        return {(p, g): [self.spec(dataset, model, s, soft_prob=p, smooth=g, hyper_parameters=[]) for s in seeds]
                for p in study["soft_prob"] for g in study["smooth"]}

    def model_steps(self, dataset: str, model: str) -> int:
        """T of ``model``: the file's (or its profile's) ``steps``, else its YAML's. The file's
        other keys are checked where runs are built (``check_runs``), not here: a report rebuilt
        from a registry reads T alone."""
        overrides = {**self.base, **self.models[model]}
        if "steps" in overrides:
            return int(overrides["steps"])
        if self.data_path:
            overrides["data_path"] = self.data_path
        try:
            return int(Config(self.model_class(model), dataset, overrides)["steps"])
        except ConfigError as exc:
            raise ConfigError(f"{self.path}: models.{model}: {exc}", key=exc.key) from None

    def all_runs(self) -> list[RunSpec]:
        """Every run the experiment needs, once each, main runs first."""
        runs: dict[str, RunSpec] = {}
        for d in self.datasets:
            groups = [[self.main_runs(d, m) for m in self.models]]
            if "inference" in self.studies:
                groups.append(list(self.inference_runs(d).values()))
            if "ablation" in self.studies:
                groups.append(list(self.ablation_runs(d).values()))
            if "robustness" in self.studies:
                groups.append(list(self.robustness_runs(d).values()))
            if "heatmap" in self.studies:
                groups.append(list(self.heatmap_runs(d).values()))
            for group in groups:
                for specs in group:
                    for spec in specs:
                        runs.setdefault(spec.key, spec)
        return list(runs.values())


def _plain(path: Path, key: str, name: str) -> str:
    problem = plain_name_problem(name)
    if problem:
        raise ConfigError(f"{path}: key '{key}' names a folder, {name!r:.80}: {problem}")
    return name


def _names(path: Path, key: str, value, required: bool = True) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: key '{key}' must be a non-empty list of names, got {value!r}")
    return tuple(value)


def _seeds(path: Path, key: str, value) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in value):
        raise ConfigError(f"{path}: key '{key}' must be a non-empty list of integer seeds, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{path}: key '{key}' repeats a seed: {value}")
    return tuple(value)


def _mapping(path: Path, key: str, value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: key '{key}' must be a mapping, got {value!r}")
    return dict(value)


def _numbers(path: Path, key: str, value, allow_t: bool = False) -> list:
    ok = isinstance(value, list) and value and all(
        (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0) or (allow_t and v == "T") for v in value)
    if not ok:
        what = "non-negative numbers" + (" or T" if allow_t else "")
        raise ConfigError(f"{path}: key '{key}' must be a non-empty list of {what}, got {value!r}")
    return list(value)


def _check_studies(path: Path, studies: dict) -> dict:
    unknown = set(studies) - set(STUDIES)
    if unknown:
        raise ConfigError(f"{path}: unknown study {sorted(unknown)} under 'studies'; known: {', '.join(STUDIES)}")
    out = {}
    for name, raw in studies.items():
        study = _mapping(path, f"studies.{name}", raw)
        if "seeds" in study:
            study["seeds"] = list(_seeds(path, f"studies.{name}.seeds", study["seeds"]))
        if name == "inference":
            study["steps"] = _numbers(path, "studies.inference.steps", study.get("steps"), allow_t=True)
            if any(isinstance(k, float) or k == 0 for k in study["steps"]):
                raise ConfigError(f"{path}: key 'studies.inference.steps' takes whole steps >= 1 or T "
                                  f"(forward-free is always compared), got {study['steps']!r}")
        elif name == "robustness":
            study["ratios"] = [float(r) for r in _numbers(path, "studies.robustness.ratios", study.get("ratios"))]
        elif name == "ablation":
            variants = _mapping(path, "studies.ablation.variants", study.get("variants"))
            if not variants or not all(isinstance(v, dict) and v for v in variants.values()):
                raise ConfigError(f"{path}: key 'studies.ablation.variants' must map each variant name to its "
                                  "config overrides, e.g. {w/o PG: {use_pg: false}}")
            study["variants"] = {str(k): dict(v) for k, v in variants.items()}
        if name in ("inference", "ablation", "robustness") and "models" in study:
            study["models"] = list(_names(path, f"studies.{name}.models", study["models"]))
        if name == "heatmap":
            for axis in ("soft_prob", "smooth"):
                study[axis] = [float(v) for v in _numbers(path, f"studies.heatmap.{axis}", study.get(axis))]
        out[name] = study
    return out


def _tuning(path: Path, value) -> dict:
    """The ``tuning`` key: {journal: the studies' journal, resolved; trials: the budget}."""
    tuning = _mapping(path, "tuning", value)
    if not tuning:
        return {}
    if set(tuning) != {"journal", "trials"} or not isinstance(tuning["journal"], str) or not tuning["journal"] \
            or not isinstance(tuning["trials"], int) or isinstance(tuning["trials"], bool) or tuning["trials"] < 1:
        raise ConfigError(f"{path}: key 'tuning' must be {{journal: PATH, trials: N >= 1}}, got {tuning!r:.120}")
    return {"journal": (path.parent / tuning["journal"]).resolve(), "trials": tuning["trials"]}


def _unfinished(budget: dict | None) -> bool:
    """Whether a profile's budget (checked by ``read_profile``) is short of its trials."""
    return budget is not None and budget["complete"] + budget["pruned"] < budget["trials"]


def _pending(path: Path, profile: object, tuning: dict) -> str | None:
    """With ``tuning``: how far the study behind a missing or unfinished profile is, e.g.
    "3 of 10 trials" (the study is the profile's name less ``.best.yaml``);
    None where the profile is there and finished, or without ``tuning``."""
    if not tuning or not isinstance(profile, str) or not profile.endswith(".best.yaml"):
        return None
    profile_path = (path.parent / profile).resolve()
    if profile_path.is_file() and not _unfinished(read_profile(profile_path).get("budget")):
        return None
    study = profile_path.name[:-len(".best.yaml")]
    finished, _ = study_progress(tuning["journal"], study)
    return f"{finished} of {tuning['trials']} trials"


def _with_profile(path: Path, name: str, model: str, overrides: dict, datasets: tuple[str, ...]) -> tuple[dict, dict]:
    """A model entry's ``profile:`` (a file ``tune`` exported, relative to the experiment file)
    expanded: (its settings with the entry's own keys on top, the profile with its ``path``)."""

    where = f"{path}: models.{name}.profile"
    value = overrides["profile"]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected the path of a profile written by `tune`, got {value!r}")
    profile_path = (Path(path).parent / value).resolve()
    try:
        profile = read_profile(profile_path)
    except UserInputError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if profile["model"] != model:
        raise ConfigError(f"{where}: {profile_path} is {profile['model']}'s profile, not {model}'s")
    if profile.get("dataset") is not None and str(profile["dataset"]) not in datasets:
        raise ConfigError(f"{where}: {profile_path} was tuned on {profile['dataset']}, which is not among this "
                          f"experiment's datasets ({', '.join(datasets)})")
    budget = profile.get("budget")
    if _unfinished(budget):
        raise ConfigError(f"{where}: {profile_path} comes from an unfinished study ({budget['complete'] + budget['pruned']}"
                          f" of {budget['trials']} trials finished): finish it (run its `tune` command again)")
    settings = {**profile["settings"], **{k: v for k, v in overrides.items() if k != "profile"}}
    return settings, {**profile, "path": value}


def load_experiment(path: Path) -> Experiment:
    """Read and check an experiment file; every error names the file and the key."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the experiment file ({exc.strerror})") from None
    known = {"name", "datasets", "seeds", "base", "ours", "ours_variants", "models", "prepare", "studies", "data_path",
             "tuning", "title", "about"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(map(str, unknown))}; expected some of {sorted(known)}")
    if "name" in data and not isinstance(data["name"], (str, int)):
        raise ConfigError(f"{path}: key 'name' must be a folder name, got {data['name']!r:.80}")
    exp_name = _plain(path, "name", str(data.get("name", path.stem)))
    datasets = tuple(_plain(path, "datasets", d) for d in _names(path, "datasets", data.get("datasets")))
    models = _mapping(path, "models", data.get("models"))
    if not models:
        raise ConfigError(f"{path}: key 'models' must map at least one model name to its overrides")
    for name, overrides in models.items():
        if overrides is not None and not isinstance(overrides, dict):
            raise ConfigError(f"{path}: models.{name}: expected a mapping of config keys, got {overrides!r}")
    models = {_plain(path, "models", str(k)): dict(v or {}) for k, v in models.items()}
    tuning = _tuning(path, data.get("tuning"))
    profiles, model_of, notes, pending = {}, {}, {}, {}
    for name, overrides in models.items():
        for key, into in (("model", model_of), ("note", notes)):  # the row's, not config keys
            if key in overrides:
                value = overrides.pop(key)
                if not isinstance(value, str) or not value.strip():
                    raise ConfigError(f"{path}: models.{name}.{key}: expected a name or a line of text, got {value!r:.80}")
                into[name] = value
        if "profile" in overrides:
            how_far = _pending(path, overrides["profile"], tuning)
            if how_far:
                pending[name] = how_far
                del overrides["profile"]
            else:
                models[name], profiles[name] = _with_profile(path, name, model_of.get(name, name), overrides, datasets)

    for name, overrides in models.items():
        engine = overrides.get("engine", "standalone")
        model = model_of.get(name, name)
        if engine not in ENGINES:
            raise ConfigError(f"{path}: models.{name}.engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
        if engine == "standalone" and model not in MODELS:
            raise ConfigError(f"{path}: models.{name}: unknown model; known: {', '.join(sorted(MODELS))} "
                              "(or set engine: mmrec to run one of MMRec's models in an MMRec checkout)")
    ours = data.get("ours", next(iter(models)))
    if ours not in models:
        raise ConfigError(f"{path}: key 'ours' names '{ours}', which is not under 'models'")
    variants = _names(path, "ours_variants", data.get("ours_variants"), required=False)
    for v in variants:
        if v not in models or v == ours:
            raise ConfigError(f"{path}: ours_variants: '{v}' must be another model under 'models'")
    studies = _check_studies(path, _mapping(path, "studies", data.get("studies")))

    for name in ("inference", "ablation"):  # LD4MRec's own studies: its models only
        for model in studies.get(name, {}).get("models", []):
            cls = model_of.get(model, model)
            if model not in models or cls not in MODELS or not hasattr(get_model(cls), "inference_strategy"):
                raise ConfigError(f"{path}: studies.{name}.models: '{model}' must be an LD4MRec model under 'models'")
    if "robustness" in studies:
        for model in studies["robustness"].get("models") or models:
            if model not in models:
                raise ConfigError(f"{path}: studies.robustness.models: '{model}' is not under 'models'")
            if models[model].get("engine") == "mmrec":
                raise ConfigError(f"{path}: studies.robustness: '{model}' runs in MMRec, which cannot inject noise "
                                  "(train_noise_ratio is the standalone engine's); list the others under "
                                  "studies.robustness.models")
    prepare = _mapping(path, "prepare", data.get("prepare"))
    for name, how in prepare.items():
        if not isinstance(how, dict) or how.get("source") not in PREPARE_SOURCES or not isinstance(how.get("src"), str):
            raise ConfigError(f"{path}: prepare.{name}: expected {{source: {'|'.join(PREPARE_SOURCES)}, src: FOLDER}}")
        prepare[name] = {"source": how["source"], "src": str((path.parent / how["src"]).resolve())}
    data_path = data.get("data_path")
    if data_path is not None and not isinstance(data_path, str):
        raise ConfigError(f"{path}: key 'data_path' must be a folder, got {data_path!r}")
    base = _mapping(path, "base", data.get("base"))
    if "seed" in base or any("seed" in o for o in models.values()):
        raise ConfigError(f"{path}: set seeds with the key 'seeds', not as a config override")
    return Experiment(
        path=path, name=exp_name, datasets=datasets,
        seeds=_seeds(path, "seeds", data.get("seeds")), base=base, models=models, ours=ours,
        ours_variants=variants, prepare=prepare,
        studies=studies, data_path=data_path, profiles=profiles, model_of=model_of, notes=notes, pending=pending,
        tuning=tuning, title=_text(path, "title", data.get("title")), about=_text(path, "about", data.get("about")))


def _text(path: Path, key: str, value) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{path}: key '{key}' must be text, got {value!r:.80}")
    return value.strip()


# ---- every run's configuration, checked before a sweep starts ---------------------------------------

def dataset_config_known(exp: Experiment, dataset: str) -> bool:
    """The dataset's config file is there to check runs against (``configs/dataset/`` or the
    one ``prepare`` wrote beside the data); a dataset the sweep still has to prepare is not."""
    own = configs_root() / "dataset" / f"{dataset}.yaml"
    return own.is_file() or (Path(f"{exp.data_path or ''}{dataset}") / f"{dataset}.yaml").is_file()


def _origin(exp: Experiment, spec: RunSpec, key: str) -> str | None:
    """Where in the experiment file ``key`` of ``spec`` was set."""
    own = {**exp.base, **exp.models.get(spec.model, {})}
    if key in spec.overrides and (key not in own or own[key] != spec.overrides[key]):  # set by a study
        if key == "inference_steps":
            return "studies.inference.steps"
        if key == "train_noise_ratio":
            return "studies.robustness.ratios"
        if key in ("soft_prob", "smooth") and "heatmap" in exp.studies:
            return f"studies.heatmap.{key}"
        for name, overrides in exp.studies.get("ablation", {}).get("variants", {}).items():
            if key in overrides and overrides[key] == spec.overrides[key]:
                return f"studies.ablation.variants.{name}.{key}"
    if key in exp.models.get(spec.model, {}):
        return f"models.{spec.model}.{key}"
    if key in exp.base:
        return f"base.{key}"
    return None


def _refuse(exp: Experiment, spec: RunSpec | None, exc: ConfigError) -> ConfigError:
    """``exc`` of one run (or of the experiment's ``ours`` config, ``spec`` None), naming the file and key."""
    key, where = exc.key, None
    if key and spec is not None:
        where = _origin(exp, spec, key)
    elif key:
        where = next((f"models.{m}.{key}" for m, o in exp.models.items() if key in o),
                     f"base.{key}" if key in exp.base else None)
    run = f" ({spec.label})" if spec is not None else ""
    if where:
        return ConfigError(f"{exp.path}: key '{where}'{run}: {exc}", key=key)
    return ConfigError(f"{exp.path}:{run}: {exc}" if run else f"{exp.path}: {exc}", key=key)


def check_runs(exp: Experiment, datasets: list[str] | None = None) -> None:
    """Build every run's configuration as the engine will (each key known, each value of the
    right type and range, the model's own checks at every grid point) for ``datasets`` (all by
    default), before anything runs; an error names the experiment file and the key. Models run
    in an MMRec checkout (``engine: mmrec``) are checked there, not here."""

    for dataset in exp.datasets if datasets is None else datasets:
        one = replace(exp, datasets=(dataset,))
        try:
            specs = one.all_runs()
        except ConfigError as exc:  # the model's steps, read for the inference study
            raise _refuse(exp, None, exc) from None
        for spec in specs:
            overrides = dict(spec.overrides)
            if overrides.pop("engine", "standalone") != "standalone":
                continue
            config = {**overrides, "seed": spec.seed, **({"data_path": exp.data_path} if exp.data_path else {})}
            try:
                config, _ = split_inference_study(config)
                checked_config(spec.model, spec.dataset, config)
            except ConfigError as exc:
                raise _refuse(exp, spec, exc) from None
