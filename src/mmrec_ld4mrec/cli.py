"""``mmrec-ld4mrec``: run, compare and benchmark models under MMRec's protocol, prepare
datasets, and install the plugin into an MMRec checkout."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path

from .engine.config import parse_overrides, plain_name_problem, settings_per_model
from .errors import UserInputError
from .files import atomic_write, check_apart, check_output_file, check_output_folder, write_json
from .study.summarize import compare_table, load_results, markdown, metrics_table, summary_rows

# Each command imports the code it runs inside its function: `mmrec-ld4mrec --help` and the
# light commands take 1.7-2.2 s here, against 2.7-3.5 s with every command's modules (Optuna,
# the sweep, MMRec's driver, the dataset importers) imported up front.


def _profile_settings(path: str, model: str) -> dict:
    """The ``settings`` of a profile ``tune`` exported, checked to belong to ``model``."""
    from .study.tune import read_profile

    profile = read_profile(Path(path))
    if profile["model"] != model:
        raise UserInputError(f"{path}: this profile is {profile['model']}'s, not {model}'s (--profile)")
    return dict(profile["settings"])


def _run_one(args, model: str, config: dict | None = None) -> dict:
    if config is None:
        config = _profile_settings(args.profile, model) if getattr(args, "profile", None) else {}
        config.update(parse_overrides(args.set or []))  # --set wins over the profile
    config = dict(config)
    if args.data_path:
        config["data_path"] = str(Path(args.data_path).resolve()) + "/"
    if args.engine == "mmrec":
        from .mmrec.driver import run_in_mmrec

        if not args.mmrec_root:
            raise UserInputError("--engine mmrec needs --mmrec-root PATH (an MMRec checkout)")
        if getattr(args, "load", None):
            raise UserInputError("--load works with the standalone engine only (serve an MMRec checkpoint with "
                                 "`recommend --engine mmrec`)")
        return run_in_mmrec(args.mmrec_root, model, args.dataset, config, save_dir=getattr(args, "save", None))
    from .engine.quick_start import run
    from .study.inference_study import split_inference_study

    config, study = split_inference_study(config)
    return run(model, args.dataset, config, save_dir=getattr(args, "save", None), load_dir=getattr(args, "load", None),
               after_fit=study)


def _run_inputs(args) -> dict:
    """What ``run`` and ``compare`` read: the dataset's folder, the profile, the checkpoint."""
    return {"the dataset's folder": Path(args.data_path or "data") / args.dataset,
            "the --profile file": getattr(args, "profile", None), "the --load checkpoint": getattr(args, "load", None)}


def cmd_run(args) -> int:
    inputs = _run_inputs(args)
    if args.out:  # every output path is checked before any work, so a finished run cannot be lost
        check_output_file(args.out, "--out")
        check_apart(args.out, "--out", inputs)
    if args.save:
        check_output_folder(args.save, "--save")
        check_apart(args.save, "--save", inputs)
    result = _run_one(args, args.model)
    print(f"\n{args.model} on {args.dataset}: best epoch {result['best_epoch']} "
          f"({result['selection']}); {result['train_seconds_per_epoch']:.2f} s/epoch, "
          f"inference {result['inference_seconds']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB")
    print(metrics_table(result))
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    return 0


def cmd_compare(args) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UserInputError("-m/--models expects a comma-separated list of model names")
    if args.out:  # checked before any model trains, so a finished comparison cannot be lost
        check_output_file(args.out, "--out")
        check_apart(args.out, "--out", _run_inputs(args))
    settings = parse_overrides(args.set or [])
    per_model = {m: settings for m in models}
    if args.engine == "standalone":
        data_path = str(Path(args.data_path).resolve()) + "/" if args.data_path else None
        per_model = settings_per_model(models, args.dataset, settings, data_path)
        from .engine.quick_start import checked_config

        for model in models:  # every model's values are checked before the first one trains
            checked_config(model, args.dataset, {**per_model[model], **({"data_path": data_path} if data_path else {})})
    elif args.mmrec_root:  # likewise before MMRec starts the first model
        from .mmrec.driver import checked_request

        data_path = {"data_path": str(Path(args.data_path).resolve()) + "/"} if args.data_path else {}
        for model in models:
            checked_request(args.mmrec_root, model, args.dataset, {**settings, **data_path})
    results = []
    for model in models:
        print(f"== {model} on {args.dataset} ({args.engine} engine)", flush=True)
        results.append(_run_one(args, model, per_model[model]))
    table = compare_table(results)
    print(f"\nTest metrics at the best-validation epoch, {args.dataset}, grid points chosen on validation:\n")
    print(table)
    if args.out:
        write_json(args.out, {"dataset": args.dataset, "engine": args.engine, "table": table,
                               "results": [{k: v for k, v in r.items() if k != "history"} for r in results]})
        print(f"wrote {args.out}")
    return 0


def cmd_recommend(args) -> int:
    """``recommend``: top-K lists from a ``run --save`` checkpoint, with throughput and latency."""
    from .engine.recommend import check_output as check_lists_output

    out = Path(args.out)
    check_lists_output(out)
    check_output_file(out, "--out")
    data_path = str(Path(args.data_path).resolve()) + "/" if args.data_path else None
    check_apart(out, "--out", {"the dataset's folder": Path(args.data_path or "data") / args.dataset,
                               "the --checkpoint": args.checkpoint})
    for option, value in (("-k/--topk", args.topk), ("--batch-size", args.batch_size), ("--requests", args.requests)):
        if value < (0 if option == "--requests" else 1):
            raise UserInputError(f"{option}: expected an integer >= {0 if option == '--requests' else 1}, got {value}")
    if args.engine == "mmrec":
        from .mmrec.serving import recommend_in_mmrec

        if not args.mmrec_root:
            raise UserInputError("--engine mmrec needs --mmrec-root PATH (the MMRec checkout the model trained in)")
        summary = recommend_in_mmrec(args.mmrec_root, args.checkpoint, args.dataset, data_path, args.users, args.topk,
                                     args.batch_size, args.requests, out)
    else:
        from .engine.recommend import recommend_standalone

        summary = recommend_standalone(args.checkpoint, args.dataset, data_path, args.users, args.topk,
                                       args.batch_size, args.requests, out)
    print(f"wrote the top-{summary['k']} items of {summary['users']} user(s) to {out}")
    print(f"batch: {summary['users_per_second']:,.0f} users/s ({summary['users']} users in batches of "
          f"{summary['batch_size']}, {summary['batch_seconds']:.3f} s)")
    if summary["requests"]:
        print(f"single user: p50 {summary['latency_p50_ms']:.2f} ms, p99 {summary['latency_p99_ms']:.2f} ms "
              f"over {summary['requests']} requests")
    return 0


def cmd_install(args) -> int:
    from .mmrec.overlay import install

    report = install(args.mmrec_root)
    print(f"installed into {report['root']}: {len(report['written'])} file(s) written, "
          f"{len(report['unchanged'])} already in place")
    for target in report["written"]:
        print(f"  + {target}")
    print(f"now: cd {report['root']}/src && python main.py -m LD4MRec -d synthetic")
    return 0


def cmd_uninstall(args) -> int:
    from .mmrec.overlay import uninstall

    report = uninstall(args.mmrec_root)
    print(f"removed {len(report['removed'])} file(s) from {report['root']}")
    for target in report["kept"]:
        print(f"  kept (changed since install, or holds other files): {target}")
    return 0


def cmd_bench(args) -> int:
    from .study.bench import main as bench_main
    from .study.tune.loop import termination_as_exit

    with termination_as_exit():  # SIGTERM unwinds, so the generated data's temporary folder is removed
        return bench_main(args)


def cmd_prepare(args) -> int:
    from .data.published import prepare_diffmm, prepare_diffrec

    out = Path(args.out)
    needed = "src" if args.source in ("diffmm", "diffrec") else "raw"
    if not getattr(args, needed):
        raise UserInputError(f"prepare {args.source} needs --{needed} DIR")
    if args.source in ("diffmm", "diffrec") and (args.core is not None or args.features):
        raise UserInputError(f"prepare {args.source}: a published split is kept as published; "
                             "--core and --features apply to raw releases (tmall, microlens, hm)")
    if args.source == "diffmm":
        stats = prepare_diffmm(Path(args.src), out, args.overwrite)
    elif args.source == "diffrec":
        stats = prepare_diffrec(Path(args.src), out, args.overwrite)
    else:
        from .data.releases import K_CORE, prepare_release

        stats = prepare_release(args.source, Path(args.raw), out, args.overwrite, features=args.features or [],
                                core=K_CORE if args.core is None else args.core)
    print(f"wrote {out}: {stats['users']} users, {stats['items']} items, {stats['interactions']} interactions "
          f"(density {stats['density']:.4%}); x_label 0/1/2 = {stats['train']} / {stats['validation']} / "
          f"{stats['test']}")
    cold = stats["users_without_training_interactions"]
    if any(cold.values()):
        print(f"users without training interactions (MMRec's cold-user filter drops them from evaluation): "
              f"{cold['validation']} in validation, {cold['test']} in test")
    print(f"run it: mmrec-ld4mrec run -m LD4MRec -d {out.name} --data-path {out.parent}")
    return 0


def cmd_summarize(args) -> int:
    if args.out:
        check_output_file(args.out, "--out")
        check_apart(args.out, "--out", {f"the result file {p}": p for p in args.files})
    rows = summary_rows(load_results([Path(p) for p in args.files]))
    for split in ("valid", "test"):
        print(f"\n{split} metrics, mean ± std over seeds:\n")
        print(markdown(rows, split))
    if args.out:
        write_json(args.out, rows)
        print(f"wrote {args.out}")
    return 0


def cmd_reproduce(args) -> int:
    from .study.experiment import load_experiment
    from .study.registry import Registry
    from .study.report import check_report_path, write_report
    from .study.reproduce import reproduce, resolve_data_path

    if args.experiment is None and args.ray and Path(args.ray).suffix in (".yaml", ".yml"):
        args.experiment, args.ray = args.ray, ""  # `reproduce --ray EXP.yaml`: --ray took the file for its address
    if args.experiment is None:
        raise UserInputError("reproduce: give the experiment file (e.g. experiments/tiny.yaml)")
    exp = load_experiment(Path(args.experiment))
    if args.runs:
        return _report_from_runs(args, exp)
    results = Path(args.results or Path("results") / exp.name)
    if os.path.lexists(results) and not results.is_dir():
        raise UserInputError(f"--results {results}: exists and is not a folder (the results folder holds the registry)")
    report = check_report_path(Path(args.report or results / "report.md"))
    exp = resolve_data_path(exp, results, args.data_path)
    _check_report_apart(report, exp, {"the registry": results / "registry.lmdb", "the sweep's lock": results / ".lock"})
    counts = None
    ray = _ray_options(args)
    if args.report_only and ray:
        raise UserInputError("--ray runs the sweep's runs on a cluster; --report-only runs nothing: give one of them")
    if not args.report_only:
        only = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        if not args.snapshot_every >= 0:
            raise UserInputError(f"--snapshot-every expects seconds >= 0 (0: no snapshots), got {args.snapshot_every}")
        counts = reproduce(exp, results, jobs=1 if args.jobs is None else args.jobs, mmrec_root=args.mmrec_root, only_models=only,
                           rerun_changed=args.rerun_changed, snapshot_every=args.snapshot_every,
                           add_segments=_seed_list(args.add_segments, "--add-segments", exp), ray=ray)
    with Registry(results, readonly=True) as registry:  # reading only: another sweep may be running
        written = write_report(exp, registry, report, with_std=args.std, command=" ".join(["mmrec-ld4mrec", *sys.argv[1:]]))
    if counts:
        print(f"{counts['total']} runs: {counts['skipped']} already done, {counts['done']} finished now, "
              f"{counts['failed']} failed")
    print(f"wrote {report} and {len(written) - 1} table/figure file(s) in {report.with_suffix('')}/")
    return 1 if counts and counts["failed"] else 0


def _ray_options(args):
    """``--ray [ADDRESS]`` and what each run asks of the cluster; None for a local sweep."""
    if args.ray is None:
        for flag, value in (("--cpus-per-run", args.cpus_per_run), ("--gpus-per-run", args.gpus_per_run)):
            if value is not None:
                raise UserInputError(f"{flag} is what each run asks of a Ray cluster: give it with --ray")
        return None
    if args.jobs is not None:
        raise UserInputError("--jobs sets how many local processes run at once; with --ray the cluster places "
                             "the runs: give --cpus-per-run / --gpus-per-run instead")
    from .study.ray_runs import RayOptions

    return RayOptions(address=args.ray or None, cpus=1.0 if args.cpus_per_run is None else args.cpus_per_run,
                      gpus=args.gpus_per_run)


def _check_report_apart(report: Path, exp, stores: dict) -> None:
    """The report and its assets folder are none of what ``reproduce`` reads: the experiment
    file, its profiles and journal, the data folder, the registry or runs file."""
    inputs = {"the experiment file": exp.path, "the studies' journal": exp.tuning.get("journal"), **stores,
              **{f"{m}'s profile": (exp.path.parent / p["path"]) for m, p in exp.profiles.items()}}
    inputs.update({f"dataset {d}'s folder": Path(exp.data_path) / d for d in exp.datasets} if exp.data_path else {})
    check_apart(report, "--report", inputs)
    check_apart(report.with_suffix(""), f"--report {report}: its assets folder", inputs)


def _seed_list(text: str | None, flag: str, exp) -> list[int] | None:
    """``1,2`` as seeds of the experiment file; None when the flag is not given."""
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",")]
    if not parts or not all(t.isascii() and t.isdigit() and len(t) < 10 for t in parts):
        raise UserInputError(f"{flag}: expected comma-separated seeds such as 1 or 1,2, got {text!r:.60}")
    seeds = [int(t) for t in parts]
    unknown = [s for s in seeds if s not in exp.seeds]
    if unknown:
        raise UserInputError(f"{flag}: seed(s) {unknown} are not among the experiment's seeds {list(exp.seeds)}")
    return seeds


def _report_from_runs(args, exp) -> int:
    """``reproduce --report-only --runs FILE``: the report built from an exported runs file alone,
    through a registry that lives in a temporary folder for the call."""
    import tempfile

    from .study.registry import Registry
    from .study.report import check_report_path, write_report
    from .study.reproduce import resolve_data_path
    from .study.results_view import records_from_file

    if not args.report_only or args.results:
        raise UserInputError("--runs FILE builds the report from that file alone: give it with --report-only "
                             "and without --results")
    if not args.report:
        raise UserInputError("--runs FILE: give the report's path with --report")
    report = check_report_path(Path(args.report))
    _check_report_apart(report, exp, {"the --runs file": args.runs})
    records = records_from_file(Path(args.runs))
    with tempfile.TemporaryDirectory(prefix="ld4mrec-report-") as scratch:
        exp = resolve_data_path(exp, Path(scratch), args.data_path)
        with Registry(Path(scratch)) as registry:
            for record in records:
                registry.put_new(record)
        with Registry(Path(scratch), readonly=True) as registry:
            written = write_report(exp, registry, report, with_std=args.std, source=f"the runs file `{args.runs}`",
                                   command=" ".join(["mmrec-ld4mrec", *sys.argv[1:]]))
    print(f"wrote {report} and {len(written) - 1} table/figure file(s) in {report.with_suffix('')}/")
    return 0


def cmd_results(args) -> int:
    from .study.registry import Registry
    from .study.results_view import export_text, list_text, records_from_file

    if args.action == "import":
        if not args.key:
            raise UserInputError("results import needs the file `results export` wrote (.csv or .jsonl)")
        if args.cpus is not None and args.cpus < 1:
            raise UserInputError(f"--cpus must be a core count of 1 or more, got {args.cpus}")
        records = records_from_file(Path(args.key), cpus=args.cpus)
        left_out = [r for r in records if args.without_inference_runs and "inference_study" in r["spec"]["overrides"]]
        records = [r for r in records if r not in left_out]
        with Registry(Path(args.results)) as registry:
            added = sum(registry.put_new(r) for r in records)
        print(f"imported {added} run(s) from {args.key} into {registry.path}; "
              f"{len(records) - added} already there, kept as they were"
              + (f"; {len(left_out)} run(s) of Fig. 3's inference study left out, to run again" if left_out else ""))
        print("imported runs hold their metrics, not the settings they resolved to: `reproduce` reuses them by "
              "key without checking them against today's config files")
        return 0
    if args.out:
        check_output_file(args.out, "--out")
        check_apart(args.out, "--out", {"the registry": Path(args.results) / "registry.lmdb",
                                        "the results folder's lock": Path(args.results) / ".lock"})
    with Registry(Path(args.results), readonly=True) as registry:
        if args.action == "show":
            if not args.key:
                raise UserInputError("results show needs a run key (or its first characters); see `results list`")
            print(json.dumps(registry.find(args.key), indent=2, sort_keys=True))
            return 0
        records = [r for r in registry.records() if args.status in (None, r["status"])]
    if args.action == "list":
        print(list_text(records))
        return 0
    text = export_text(records, args.format)
    if args.out:
        atomic_write(Path(args.out), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        print(f"wrote {len(records)} run(s) to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_tune(args) -> int:
    from .study.tune import (
        TuneRequest,
        best_profile,
        budget_row,
        default_config,
        load_space,
        patience_epochs,
        search_space_path,
        tune,
        tuning_seeds,
        write_profile,
    )
    from .study.tune.storage import check_storage, storage_file

    if not 1 <= args.seeds <= 100:  # a trial runs its seeds one after another
        raise UserInputError(f"--seeds expects a number of tuning seeds from 1 to 100, got {args.seeds}")
    if args.trials < 1 or not 0 < args.heartbeat < math.inf or args.sampler_seed < 0:
        raise UserInputError(f"--trials expects an integer >= 1, --heartbeat finite seconds > 0 and --sampler-seed "
                             f"an integer >= 0, got {args.trials}, {args.heartbeat}, {args.sampler_seed}")
    if not args.snapshot_every >= 0:
        raise UserInputError(f"--snapshot-every expects seconds >= 0 (0: no snapshots), got {args.snapshot_every}")
    if args.engine == "mmrec" and not args.mmrec_root:
        raise UserInputError("--engine mmrec needs --mmrec-root PATH (an MMRec checkout)")
    out_dir = Path(args.results)
    storage = args.storage or f"sqlite:///{out_dir / 'optuna.db'}"
    study_name = args.study or f"{args.model}-{args.dataset}"
    problem = plain_name_problem(study_name)
    if problem:  # it names RESULTS/STUDY.best.yaml and RESULTS/snapshots/STUDY/
        raise UserInputError(f"--study {study_name!r:.80}: a study name must be a plain name ({problem}); it names "
                             "the exported profile and the trials' snapshot folder")
    check_storage(storage)
    export = Path(args.export) if args.export else out_dir / f"{study_name}.best.yaml"

    check_output_file(str(export), "--export")
    stored = (storage_file(storage) or (None, None))[1]
    check_apart(export, "--export", {
        "the study's storage": stored, "the storage's lock": stored and f"{stored}.lock",
        "the storage's claim lock": stored and f"{stored}.claim.lock", "the --space file": args.space,
        "the dataset's folder": Path(args.data_path or "data") / args.dataset,
        "the trials' snapshots": out_dir / "snapshots"})
    settings = parse_overrides(args.set or [])
    if args.data_path:
        settings["data_path"] = str(Path(args.data_path).resolve()) + "/"
    space = load_space(Path(args.space) if args.space else search_space_path(args.model), args.model, args.engine,
                       args.mmrec_root)
    warmup = args.warmup_epochs
    if warmup is None:
        warmup = patience_epochs(settings, default_config(args.model, args.engine, args.mmrec_root, args.dataset))
    elif warmup < 0:
        raise UserInputError(f"--warmup-epochs expects an integer >= 0, got {warmup}")
    request = TuneRequest(model=args.model, dataset=args.dataset, trials=args.trials, storage=storage,
                          study_name=study_name, settings=settings, seeds=tuning_seeds(args.seeds), space=space,
                          engine=args.engine, mmrec_root=args.mmrec_root, sampler_seed=args.sampler_seed,
                          warmup_epochs=warmup,
                          heartbeat_seconds=args.heartbeat, grace_seconds=4 * args.heartbeat,
                          snapshot_dir=str(out_dir / "snapshots") if args.snapshot_every else None,
                          snapshot_every=args.snapshot_every)
    study = tune(request)
    row = budget_row(study)
    print(f"{study_name}: {row['complete']} complete, {row['pruned']} pruned, {row['failed']} failed trial(s), "
          f"{row['wall_seconds']:.0f} s of trials in all ({storage})")
    if row["complete"] == 0:
        raise UserInputError(f"study '{study_name}' has no complete trial yet: nothing to export")
    profile = best_profile(study, request)
    write_profile(export, profile)
    finished = row["complete"] + row["pruned"]
    if finished < request.trials:
        print(f"{request.trials - finished} trial(s) still running in other workers: this profile is provisional "
              "(an experiment refuses it); the last worker to stop writes the final one")
    print(f"best trial {profile['trial']}: valid {request.settings.get('valid_metric', 'Recall@20')} "
          f"{study.best_value:.4f} with {study.best_trial.params}; wrote {export}")
    return 0


def _engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("standalone", "mmrec"), default="standalone",
                        help="standalone (no checkout needed) or mmrec (MMRec's own pipeline)")
    parser.add_argument("--mmrec-root", metavar="PATH", help="MMRec checkout for --engine mmrec")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmrec-ld4mrec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate one model on one dataset (grid over hyper_parameters)")
    run.add_argument("-m", "--model", required=True)
    run.add_argument("-d", "--dataset", required=True)
    run.add_argument("--data-path", help="folder holding <dataset>/ (default: data_path of overall.yaml)")
    run.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="override config keys")
    run.add_argument("--profile", metavar="FILE", help="settings of a profile `tune` exported (--set wins)")
    run.add_argument("--out", help="write the result as JSON")
    run.add_argument("--save", metavar="DIR", help="keep the best checkpoint and the test users' top-50 CSV")
    run.add_argument("--load", metavar="DIR", help="evaluate a saved checkpoint instead of training")
    _engine_args(run)
    run.set_defaults(func=cmd_run)
    rec = sub.add_parser("recommend", help="top-K items for users from a `run --save` checkpoint, with batch "
                                           "throughput and single-user latency")
    rec.add_argument("--checkpoint", required=True, metavar="DIR", help="a `run --save` folder (or its model.pt)")
    rec.add_argument("-d", "--dataset", required=True, help="the dataset it was trained on")
    rec.add_argument("--data-path", help="folder holding <dataset>/ (default: data_path of overall.yaml)")
    rec.add_argument("--users", metavar="IDS|FILE",
                     help="comma-separated user ids or a file of one per line (raw ids where `prepare` wrote id "
                          "mappings); default: every user")
    rec.add_argument("-k", "--topk", type=int, default=20, help="items per user (default 20)")
    rec.add_argument("--out", required=True, help="FILE.csv (MMRec's top-K layout) or FILE.parquet")
    rec.add_argument("--batch-size", type=int, default=4096, help="users ranked together (default 4096)")
    rec.add_argument("--requests", type=int, default=200,
                     help="single-user requests timed for the latency percentiles (default 200; 0: none)")
    _engine_args(rec)
    rec.set_defaults(func=cmd_recommend)
    compare = sub.add_parser("compare", help="run several models on the same split and seeds, one table")
    compare.add_argument("-d", "--dataset", required=True)
    compare.add_argument("-m", "--models", required=True, help="comma-separated, e.g. LD4MRec,MGCN,BM3")
    compare.add_argument("--data-path")
    compare.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE")
    compare.add_argument("--out", help="write the table and results as JSON")
    _engine_args(compare)
    compare.set_defaults(func=cmd_compare)
    prepare = sub.add_parser("prepare", help="build an MMRec-layout dataset from a raw release or published split")
    prepare.add_argument("source", choices=("diffmm", "diffrec", "tmall", "microlens", "hm"))
    prepare.add_argument("--src", help="folder of a published split (diffmm, diffrec)")
    prepare.add_argument("--raw", help="folder of a raw release (tmall, microlens, hm)")
    prepare.add_argument("--out", required=True, help="DATA_PATH/NAME: the dataset folder to create")
    prepare.add_argument("--features", nargs="+", action="extend", metavar="FILE.npy=IDS.txt",
                         help="precomputed item features for a raw release (see docs/datasets.md)")
    prepare.add_argument("--core", type=int, metavar="K",
                         help="raw releases: iterated K-core filtering (default 10, the paper's)")
    prepare.add_argument("--overwrite", action="store_true", help="replace a dataset folder an earlier prepare wrote")
    prepare.set_defaults(func=cmd_prepare)
    for name, func, text in (("install", cmd_install, "add LD4MRec, configs and shims to an MMRec checkout"),
                             ("uninstall", cmd_uninstall, "remove exactly what install added")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--mmrec-root", required=True, metavar="PATH")
        p.set_defaults(func=func)
    tun = sub.add_parser("tune", help="equal-budget hyper-parameter search (Optuna), selected on validation")
    tun.add_argument("-m", "--model", required=True)
    tun.add_argument("-d", "--dataset", required=True)
    tun.add_argument("--trials", type=int, required=True, help="finished trials the study should hold, all workers together")
    tun.add_argument("--results", default="results/tune", help="folder of the default storage and export (results/tune)")
    tun.add_argument("--storage", help="sqlite:///PATH (default RESULTS/optuna.db), journal:PATH or a database URL")
    tun.add_argument("--study", help="study name (default MODEL-DATASET)")
    tun.add_argument("--space", help="search-space YAML (default configs/search/MODEL.yaml)")
    tun.add_argument("--seeds", type=int, default=1,
                     help="tuning seeds 1001..1000+K per trial, apart from the reported 1-10; the objective is their "
                          "mean (default 1)")
    tun.add_argument("--warmup-epochs", type=int,
                     help="epochs before the pruner may stop a trial (default: early stopping's patience, "
                          "stopping_step x eval_step)")
    tun.add_argument("--sampler-seed", type=int, default=0, help="TPE's seed (default 0)")
    tun.add_argument("--heartbeat", type=float, default=30.0,
                     help="seconds between a running trial's heartbeats; a trial silent for 4x this is retried")
    tun.add_argument("--snapshot-every", type=float, default=120.0, metavar="SECONDS",
                     help="a running trial saves its training state under RESULTS/snapshots at most this often, "
                          "so a stopped trial resumes where it was (default 120; 0: trials restart from epoch 0)")
    tun.add_argument("--export", help="best trial as a YAML profile (default RESULTS/STUDY.best.yaml)")
    tun.add_argument("--data-path", help="folder holding <dataset>/")
    tun.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="fixed overrides for every trial")
    _engine_args(tun)
    tun.set_defaults(func=cmd_tune)
    summ = sub.add_parser("summarize", help="mean ± std over seeds of `run --out` JSON files")
    summ.add_argument("files", nargs="+")
    summ.add_argument("--out", help="write the rows as JSON")
    summ.set_defaults(func=cmd_summarize)
    bench = sub.add_parser("bench", help="training s/epoch, full inference s and peak memory, side by side")
    bench.add_argument("-d", "--dataset", default="tiktok")
    bench.add_argument("-m", "--models", default="LD4MRec,LD4MRecPaper",
                       help="comma-separated; the first is the reference; MODEL:key=value overrides one model")
    bench.add_argument("--data-path", help="folder holding <dataset>/ (default for tiktok: prepared from --src)")
    bench.add_argument("--src", default="../shared/data/tiktok", help="DiffMM-format TikTok folder")
    bench.add_argument("--epochs", type=int, default=3)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="overrides for every model")
    bench.add_argument("--out", help="write the measurements as JSON")
    bench.add_argument("--scale", action="store_true",
                       help="scale study: the first model on synthetic data at 1x, 2x, 4x, 8x |U|·|I| (docs/peers.md)")
    bench.add_argument("--scale-users", type=int, metavar="N", help="--scale: users at 1x (default 4000)")
    bench.add_argument("--scale-items", type=int, metavar="N", help="--scale: items at 1x (default 2000)")
    bench.add_argument("--scale-factors", metavar="F,F,..",
                       help="--scale: the multiples of |U|·|I| to measure (default 1,2,4,8)")
    bench.add_argument("--scale-shape", metavar="USERSxITEMS",
                       help="measure the first model once at this shape, e.g. 1371980x105542 (full H&M), fast generator")
    bench.set_defaults(func=cmd_bench)
    rep = sub.add_parser("reproduce", help="run an experiment file (resumable) and build its tables and figures")
    rep.add_argument("experiment", nargs="?", help="experiment YAML (see experiments/)")
    rep.add_argument("--results", help="results folder holding the registry (default: results/<name>)")
    rep.add_argument("--jobs", type=int, help="runs in parallel, each in its own process (default 1)")
    rep.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                     help="run each run as a task on a Ray cluster: HOST:PORT of its head, or none for $RAY_ADDRESS, "
                          "else the cluster `ray start` began here, else a new local one (docs/reproduce.md)")
    rep.add_argument("--cpus-per-run", type=float, metavar="N", help="with --ray: CPUs each run asks for (default 1)")
    rep.add_argument("--gpus-per-run", type=float, metavar="N",
                     help="with --ray: GPUs each run asks for (default 1 when the cluster has GPUs, else 0)")
    rep.add_argument("--data-path", help="folder holding <dataset>/ (default: the file's data_path, else RESULTS/data)")
    rep.add_argument("--report", help="report Markdown path (default: RESULTS/report.md; assets beside it)")
    rep.add_argument("--mmrec-root", metavar="PATH", help="MMRec checkout for models with engine: mmrec "
                     "(default: $MMREC_ROOT)")
    rep.add_argument("--models", help="comma-separated: run only these models' runs now (the report covers all)")
    rep.add_argument("--std", action="store_true", help="tables show mean ± std over seeds")
    rep.add_argument("--report-only", action="store_true", help="rebuild the report from the registry, run nothing")
    rep.add_argument("--runs", metavar="FILE", help="with --report-only: build the report from this `results export` "
                     "file (.jsonl or .csv) instead of a registry")
    rep.add_argument("--add-segments", metavar="SEEDS",
                     help="run only the finished main runs of these seeds (e.g. 1 or 1,2) whose records lack the "
                          "beyond-accuracy figures and segments; their new records replace them")
    rep.add_argument("--rerun-changed", action="store_true", help="run again the finished runs whose recorded "
                     "settings today's config files no longer give (refused otherwise)")
    rep.add_argument("--snapshot-every", type=float, default=120.0, metavar="SECONDS",
                     help="a running run saves its training state under RESULTS/snapshots at most this often, so a "
                          "stopped sweep's runs resume where they were (default 120; 0: they restart)")
    rep.set_defaults(func=cmd_reproduce)
    res = sub.add_parser("results", help="read a results registry: list, show KEY, export; import FILE (.csv or .jsonl)")
    res.add_argument("action", choices=("list", "show", "export", "import"))
    res.add_argument("key", nargs="?", metavar="KEY|FILE",
                     help="run key or its first characters (show); a file `results export` wrote (.csv or .jsonl) (import: its "
                          "runs join the registry, those already there are kept)")
    res.add_argument("--results", required=True, help="results folder holding registry.lmdb")
    res.add_argument("--status", choices=("done", "failed"), help="only runs with this status")
    res.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="export format")
    res.add_argument("--out", help="export to this file (default: standard output)")
    res.add_argument("--cpus", type=int, metavar="N",
                     help="import: the core count of the machine the file's CPU runs ran on, for rows that do not "
                          "record it (exports before the column), so that tables pair them with that machine's runs")
    res.add_argument("--without-inference-runs", action="store_true",
                     help="import: leave out the runs that hold Fig. 3's inference study (a CSV does not carry its "
                          "per-strategy metrics), so that `reproduce` runs them again and the figure comes back")
    res.set_defaults(func=cmd_results)
    return parser


PATH_OPTIONS = ("out", "save", "load", "data_path", "report", "results", "mmrec_root", "src", "raw", "checkpoint")


def check_paths_given(args) -> None:
    """A path option given empty (``--out=``) is refused, not taken for "not given"."""
    for name in PATH_OPTIONS:
        if getattr(args, name, None) == "":
            raise UserInputError(f"--{name.replace('_', '-')}: the path is empty; give a file or folder name, "
                                 "or leave the option out")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    try:
        check_paths_given(args)
        return args.func(args)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # Ctrl-C: what finished is kept (outputs are written atomically)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
