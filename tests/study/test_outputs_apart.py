"""No command writes over what it reads: an output path that is (or lies inside) one of the
command's inputs, stores or its dataset's folder is refused before any work, in one line naming
both, and everything stays byte for byte as it was."""

from __future__ import annotations

import shutil

import pytest

from mmrec_ld4mrec.study.registry import Registry

from ..hostile import FAST, assert_clean_error, cli, snapshot

POP = "name: pop\ndatasets: [synthetic]\nseeds: [1]\nmodels: {Pop: {}}\n"


@pytest.fixture
def world(tmp_path, data_path):
    """A copy of the synthetic data, a profile, a search space, a journal, a registry and an experiment."""
    shutil.copytree(data_path / "synthetic", tmp_path / "data" / "synthetic")
    (tmp_path / "p.yaml").write_text("model: EASE\nsettings: {reg_weight: 100.0}\n")
    (tmp_path / "space.yaml").write_text("reg_weight: {type: log_float, low: 1.0, high: 100.0}\n")
    (tmp_path / "R").mkdir()
    (tmp_path / "R" / "optuna.db").write_bytes(b"")  # where a study's default storage would be
    (tmp_path / "shared.journal").write_text("")
    (tmp_path / "exp.yaml").write_text(POP)
    with Registry(tmp_path / "results"):  # a registry on disk
        pass
    return tmp_path


CASES = {
    "tune --export onto its own storage": (
        ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", "{w}/data", "--trials", "1", "--results", "{w}/R",
         "--export", "{w}/R/optuna.db"], "the study's storage"),
    "tune --export onto the shared journal": (
        ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", "{w}/data", "--trials", "1", "--results", "{w}/R",
         "--storage", "journal:{w}/shared.journal", "--export", "{w}/shared.journal"], "the study's storage"),
    "tune --export onto its --space file": (
        ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", "{w}/data", "--trials", "1", "--results", "{w}/R",
         "--space", "{w}/space.yaml", "--export", "{w}/space.yaml"], "the --space file"),
    "reproduce --report inside the registry": (
        ["reproduce", "{w}/exp.yaml", "--results", "{w}/results", "--report-only", "--data-path", "{w}/data",
         "--report", "{w}/results/registry.lmdb/data.md"], "the registry"),
    "reproduce --report onto the experiment file": (
        ["reproduce", "{w}/exp.yaml", "--results", "{w}/results", "--report-only", "--data-path", "{w}/data",
         "--report", "{w}/exp.yaml"], "the experiment file"),
    "results export --out into the registry": (
        ["results", "export", "--results", "{w}/results", "--out", "{w}/results/registry.lmdb/data.mdb"],
        "the registry"),
    "run --out into the dataset": (
        ["run", "-m", "Pop", "-d", "synthetic", "--data-path", "{w}/data", "--out", "{w}/data/synthetic/synthetic.inter"],
        "the dataset's folder"),
    "run --out onto its --profile": (
        ["run", "-m", "EASE", "-d", "synthetic", "--data-path", "{w}/data", "--profile", "{w}/p.yaml",
         "--out", "{w}/p.yaml"], "the --profile file"),
    "run --save into the dataset": (
        ["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", "{w}/data", "--set", *FAST,
         "--save", "{w}/data/synthetic"], "the dataset's folder"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_output_over_an_input_is_refused_before_any_work(case, world, capsys):
    argv, named = CASES[case]
    argv = [a.format(w=world) for a in argv]
    before = snapshot(world)
    outcome = cli(argv, capsys)
    assert_clean_error(outcome, named, "which this command reads")
    assert snapshot(world) == before
