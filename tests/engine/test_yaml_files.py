"""YAML files are read as a person reads them: a key given twice, a key that is not text, an
alias (the "billion laughs" multiplier), a date or a tagged binary are refused naming the file
and the line, before anything runs or is written."""

from __future__ import annotations

import pytest

from ..hostile import assert_clean_error, cli, snapshot

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b]\n"

FILES = {
    "a profile with a key given twice": ("p.yaml", "model: EASE\nsettings: {reg_weight: 1.0}\nsettings: {reg_weight: 9.0}\n",
                                         "appears twice"),
    "a profile with a key that is not text": ("p.yaml", "model: EASE\nsettings: {1: 2}\n", "keys must be text"),
    "a profile that multiplies itself": ("p.yaml", "model: EASE\nsettings: {reg_weight: 1.0}\n" + LAUGHS, "aliases"),
    "an experiment with a key that is not text": ("exp.yaml", "datasets: [synthetic]\nseeds: [1]\nbase: {1: 2}\n"
                                                  "models: {Pop: {}}\n", "keys must be text"),
    "an experiment with a key given twice": ("exp.yaml", "datasets: [synthetic]\nseeds: [1]\nseeds: [2]\n"
                                             "models: {Pop: {}}\n", "appears twice"),
    "a search space that multiplies itself": ("space.yaml", "reg_weight: {type: categorical, choices: [1.0]}\n" + LAUGHS,
                                              "aliases"),
    "a search space with binary choices": ("space.yaml", "reg_weight: {type: categorical, choices: [!!binary aGk=]}\n",
                                           "binary"),
}


def _argv(name: str, folder, data_path) -> list[str]:
    if name == "p.yaml":
        return ["run", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--profile", folder / name]
    if name == "exp.yaml":
        return ["reproduce", folder / name, "--results", folder / "r", "--data-path", data_path]
    return ["tune", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--trials", "1", "--results",
            folder / "R", "--space", folder / name]


@pytest.mark.parametrize("case", sorted(FILES))
def test_a_yaml_file_read_otherwise_than_it_reads_is_refused(case, tmp_path, data_path, capsys):
    name, text, needle = FILES[case]
    (tmp_path / name).write_text(text)
    before = snapshot(tmp_path)
    assert_clean_error(cli(_argv(name, tmp_path, data_path), capsys), name, needle)
    assert snapshot(tmp_path) == before


def test_a_date_stays_text():
    import yaml

    from mmrec_ld4mrec.engine.config import YAML_LOADER

    assert yaml.load("when: 2024-01-01\nrate: 1e-4\n", Loader=YAML_LOADER) == {"when": "2024-01-01", "rate": 1e-4}


def test_a_set_value_that_multiplies_itself_is_read_as_text_and_refused_by_its_key(data_path, capsys):
    laughs = "[&a [x, x, x, x, x, x, x, x], &b [*a, *a, *a, *a, *a, *a, *a, *a], [*b, *b, *b, *b, *b, *b, *b]]"
    outcome = cli(["run", "-m", "EASE", "-d", "synthetic", "--data-path", data_path, "--set", f"reg_weight={laughs}"],
                  capsys)
    assert_clean_error(outcome, "reg_weight")
