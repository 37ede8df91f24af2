"""Hostile input to the standalone engine (`run`, `compare`): bad output paths, bad config
values, bad dataset YAML, bad interaction rows, bad names, bad feature files and foreign
checkpoints. Each ends in one `error:` line naming the key or file (exit code 2), before any
training, and leaves nothing changed outside the folder meant for outputs."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ..hostile import FAST, assert_clean_error, cli, snapshot

LONG = "x" * 300


def _run(root: Path, *extra: str, model: str = "LD4MRec", dataset: str = "synthetic") -> list[str]:
    return ["run", "-m", model, "-d", dataset, "--data-path", str(root), "--set", *FAST, *extra]


def _copy(tmp_path: Path, data_path: Path, name: str = "synthetic") -> Path:
    """``synthetic`` copied to ``tmp_path/data/<name>/`` (for a name other than synthetic, with
    its own ``<name>.yaml`` beside the data, as ``prepare`` writes it)."""
    root = tmp_path / "data"
    shutil.copytree(data_path / "synthetic", root / name)
    if name != "synthetic":
        (root / name / f"{name}.yaml").write_text(
            "USER_ID_FIELD: userID\nITEM_ID_FIELD: itemID\ninter_file_name: synthetic.inter\n"
            "vision_feature_file: image_feat.npy\ntext_feature_file: text_feat.npy\nfield_separator: \"\\t\"\n")
    return root


def _edit_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _trained(caplog) -> bool:
    return any("epoch" in record.getMessage() for record in caplog.records)


def _refused(capsys, caplog, argv: list[str], roots: list[Path], *fragments: str) -> str:
    """``argv`` ends in one clean error naming ``fragments``, without training, and leaves
    every folder in ``roots`` as it was."""
    caplog.set_level(logging.INFO)
    before = [snapshot(r) for r in roots]
    line = assert_clean_error(cli(argv, capsys), *fragments)
    assert not _trained(caplog), "the error came after training"
    assert [snapshot(r) for r in roots] == before
    return line


# ---- A. output paths are checked before any work ------------------------------------------

# A read-only location that root cannot write either (the tests run as root, for whom a
# chmod'ed folder stays writable): procfs refuses every new file.
UNWRITABLE = Path("/proc/hostile-ld4mrec")


def _skip_without_proc(case: str) -> None:
    if "unwritable" in case and not Path("/proc/self").is_dir():
        pytest.skip("no procfs here to stand for a folder nobody can write")


OUTPUT_CASES = {
    "out-unwritable-folder": (lambda t: ["--out", str(UNWRITABLE / "r.json")], ["--out", "cannot write"]),
    "out-onto-directory": (lambda t: ["--out", str(t / "outdir")], ["--out", "folder"]),
    "out-300-char-name": (lambda t: ["--out", str(t / f"{LONG}.json")], ["--out", "longer than"]),
    "save-onto-file": (lambda t: ["--save", str(t / "afile")], ["--save", "not a folder"]),
    "save-300-char-name": (lambda t: ["--save", str(t / LONG)], ["--save", "longer than"]),
    "save-unwritable-folder": (lambda t: ["--save", str(UNWRITABLE / "ckpt")], ["--save", "cannot write"]),
}


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_run_output_paths_are_checked_before_training(case, tmp_path, data_path, capsys, caplog):
    _skip_without_proc(case)
    (tmp_path / "outdir").mkdir()
    (tmp_path / "afile").write_text("keep me")
    extra, fragments = OUTPUT_CASES[case]
    _refused(capsys, caplog, _run(data_path, *extra(tmp_path)), [tmp_path, data_path], *fragments)


@pytest.mark.parametrize("case", ["out-onto-directory", "out-300-char-name", "out-unwritable-folder"])
def test_compare_output_path_is_checked_before_training(case, tmp_path, data_path, capsys, caplog):
    _skip_without_proc(case)
    (tmp_path / "outdir").mkdir()
    extra, fragments = OUTPUT_CASES[case]
    argv = ["compare", "-m", "Pop,LD4MRec", "-d", "synthetic", "--data-path", str(data_path), *extra(tmp_path),
            "--set", *FAST]
    _refused(capsys, caplog, argv, [tmp_path, data_path], *fragments)


EMPTY_PATHS = {
    "run-out": lambda d: _run(d, "--out="),
    "run-save": lambda d: _run(d, "--save="),
    "run-load": lambda d: _run(d, "--load="),
    "run-data-path": lambda d: ["run", "-m", "Pop", "-d", "absent", "--data-path=", "--set", "epochs=1"],
    "compare-out": lambda d: ["compare", "-m", "Pop,LD4MRec", "-d", "synthetic", "--data-path", str(d), "--out=",
                              "--set", *FAST],
    "summarize-out": lambda d: ["summarize", str(d / "missing.json"), "--out="],
}


@pytest.mark.parametrize("case", sorted(EMPTY_PATHS))
def test_an_empty_path_is_refused_not_ignored(case, tmp_path, data_path, capsys, caplog):
    """`--out=` used to be ignored (exit 0, nothing written): a path given empty is refused."""
    option = "--" + case.split("-", 1)[1]
    line = _refused(capsys, caplog, [*EMPTY_PATHS[case](data_path)], [tmp_path, data_path], option, "empty")
    assert len(line) < 200, line


def test_out_into_a_missing_folder_is_created(tmp_path, data_path, capsys):
    """Documented behaviour: a missing output folder is created (only at the end, atomically)."""
    out = tmp_path / "new" / "deeper" / "r.json"
    outcome = cli(_run(data_path, "--out", str(out)), capsys)
    assert outcome.code == 0, outcome.err
    assert "Traceback" not in outcome.err
    assert json.loads(out.read_text())["model"] == "LD4MRec"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deeper", "new", "r.json"]


# ---- B/C. config values: one line naming the key, before any data is read ---------------

BAD_SETTINGS = [
    ("epochs=abc", "epochs"), ("epochs=-5", "epochs"), ("epochs=0", "epochs"), ("epochs=1.5", "epochs"),
    ("seed=abc", "seed"), ("seed=[]", "seed"), ("seed=-1", "seed"), ("seed=[1,abc]", "seed"),
    ("learning_rate=nan", "learning_rate"), ("learning_rate=-0.1", "learning_rate"), ("learning_rate=abc", "learning_rate"),
    ("train_batch_size=0", "train_batch_size"), ("train_batch_size=abc", "train_batch_size"),
    ("eval_batch_size=-1", "eval_batch_size"), ("topk=[]", "topk"), ("topk=[0]", "topk"), ("topk=abc", "topk"),
    ("valid_metric=Bogus@20", "valid_metric"), ("valid_metric=Recall@7", "valid_metric"), ("valid_metric=Recall", "valid_metric"),
    ("metrics=[Bogus]", "metrics"), ("metrics=[]", "metrics"), ("stopping_step=-1", "stopping_step"),
    ("eval_step=0", "eval_step"), ("weight_decay=-1", "weight_decay"),
    ("learning_rate_scheduler=[1.0]", "learning_rate_scheduler"),
    ("clip_grad_norm=5", "clip_grad_norm"), ("filter_out_cod_start_users=maybe", "filter_out_cod_start_users"),
    ("use_full_sampling=1", "use_full_sampling"), ("is_multimodal_model=yes please", "is_multimodal_model"),
    ("field_separator=''", "field_separator"), ("vision_feature_file=[1,2]", "vision_feature_file"),
    ("extra_feature_files=abc", "extra_feature_files"), ("USER_ID_FIELD=[]", "USER_ID_FIELD"),
    ("train_noise_ratio=-1", "train_noise_ratio"),
    ("metrics=[recall,Recall]", "metrics"), ("topk=[5,5]", "topk"), ("seed=[1,1]", "seed"),
]


@pytest.mark.parametrize("setting,key", BAD_SETTINGS, ids=[s for s, _ in BAD_SETTINGS])
def test_bad_common_values_name_the_key(setting, key, tmp_path, data_path, capsys, caplog):
    line = _refused(capsys, caplog, _run(data_path, setting), [data_path], f"'{key}'")
    assert len(line) < 400, line


BEFORE_ANY_WORK = {
    "run-engine-key-without-data": (lambda t, d: _run(t / "empty", "epochs=abc"), ["'epochs'"]),
    "run-model-key-without-data": (lambda t, d: _run(t / "empty", "soft_prob=1.0"), ["'soft_prob'"]),
    "run-model-key-in-a-grid": (lambda t, d: _run(t / "empty", "soft_prob=[0.1,2.0]", "hyper_parameters=[soft_prob]"),
                                ["'soft_prob'"]),
    "compare-second-model-key": (lambda t, d: ["compare", "-m", "Pop,LD4MRec", "-d", "synthetic", "--data-path", str(d),
                                               "--set", *FAST[:-1], "smooth=1.5"], ["'smooth'"]),
    "compare-second-model-engine-key": (lambda t, d: ["compare", "-m", "Pop,LD4MRec", "-d", "synthetic", "--data-path",
                                                      str(d), "--set", *FAST, "learning_rate=0"], ["'learning_rate'"]),
}


@pytest.mark.parametrize("case", sorted(BEFORE_ANY_WORK))
def test_values_are_checked_before_any_work(case, tmp_path, data_path, capsys, caplog):
    """The config is checked when it is built: a bad value wins over a dataset that is absent
    (nothing is generated), and `compare` checks every model's values before the first trains."""
    (tmp_path / "empty").mkdir()
    argv, fragments = BEFORE_ANY_WORK[case]
    _refused(capsys, caplog, argv(tmp_path, data_path), [tmp_path, data_path], *fragments)


def test_valid_metric_case_and_scalar_topk_are_accepted(data_path, capsys):
    """Documented behaviour: MMRec lower-cases the metric names, and a single cut-off may be a scalar."""
    outcome = cli(_run(data_path, "valid_metric=recall@20", "topk=20", "metrics=[recall,ndcg]"), capsys)
    assert outcome.code == 0, outcome.err


# ---- B. dataset YAML (DATA/NAME/NAME.yaml) -------------------------------------------------

YAML_CASES = {
    "binary-garbage": (bytes(range(256)) * 8, ["hostile.yaml"]),
    "not-utf8-but-yaml-ish": (b"USER_ID_FIELD: \xff\xfe\n", ["hostile.yaml"]),
    "empty-field-separator": (None, ["'field_separator'"]),
    "vision-feature-file-list": (None, ["'vision_feature_file'"]),
    "a-folder-named-yaml": (None, ["hostile.yaml"]),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_bad_dataset_yaml(case, tmp_path, data_path, capsys, caplog):
    root = _copy(tmp_path, data_path, "hostile")
    path = root / "hostile" / "hostile.yaml"
    content, fragments = YAML_CASES[case]
    if content is not None:
        path.write_bytes(content)
    elif case == "empty-field-separator":
        path.write_text(path.read_text().replace('field_separator: "\\t"', "field_separator: ''"))
    elif case == "vision-feature-file-list":
        path.write_text(path.read_text().replace("vision_feature_file: image_feat.npy", "vision_feature_file: [1, 2]"))
    else:
        path.unlink()
        path.mkdir()
    _refused(capsys, caplog, _run(root, dataset="hostile"), [tmp_path], *fragments)


# ---- B/C/D. interaction rows ---------------------------------------------------------------

def _set_field(column: int, value: str, row: int = 3):
    """An edit of one .inter row: its ``column`` (0 user, 1 item, 2 x_label) set to ``value``."""
    def edit(lines):
        fields = lines[row].split("\t")
        fields[column] = value
        lines[row] = "\t".join(fields)
        return lines
    return edit


def _set_item(value: str):
    return _set_field(1, value)


def _set_label(value: str):
    return _set_field(2, value)


def _duplicate_row(lines):
    return lines + [lines[5]]


def _pair_in_train_and_test(lines):
    train = next(line for line in lines[1:] if line.endswith("\t0"))
    u, i, _ = train.split("\t")
    return lines + [f"{u}\t{i}\t2"]


def _extra_field(lines):
    lines[4] = lines[4] + "\t7"
    return lines


def _every_row_extra_field(lines):
    return [lines[0]] + [line + "\t7" for line in lines[1:]]


INTER_CASES = {
    "item-id-inf": (_set_item("inf"), ["synthetic.inter", "'itemID'"]),
    "item-id-minus-inf": (_set_item("-inf"), ["synthetic.inter", "'itemID'"]),
    "item-id-10e30": (_set_item("1" + "0" * 30), ["synthetic.inter", "'itemID'", "out of range"]),
    "item-id-1e30-float": (_set_item("1e30"), ["synthetic.inter", "'itemID'", "out of range"]),
    "duplicate-row": (_duplicate_row, ["synthetic.inter", "duplicate"]),
    "pair-in-training-and-test": (_pair_in_train_and_test, ["synthetic.inter", "training", "test"]),
    "row-with-extra-field": (_extra_field, ["synthetic.inter", "line 5"]),
    "every-row-with-extra-field": (_every_row_extra_field, ["synthetic.inter", "more fields than the header"]),
    "x-label-minus-one": (_set_label("-1"), ["synthetic.inter", "'x_label'", "must be 0, 1 or 2", "data row 3"]),
    "x-label-huge": (_set_label("1" + "0" * 30), ["synthetic.inter", "'x_label'", "must be 0, 1 or 2"]),
}


@pytest.mark.parametrize("case", sorted(INTER_CASES))
def test_bad_interaction_rows(case, tmp_path, data_path, capsys, caplog):
    root = _copy(tmp_path, data_path)
    edit, fragments = INTER_CASES[case]
    _edit_lines(root / "synthetic" / "synthetic.inter", edit)
    line = _refused(capsys, caplog, _run(root), [tmp_path], *fragments)
    assert "negative value" not in line


# ---- B/D. names and paths from the command line ----------------------------------------------

NAME_CASES = {
    "dataset-300-chars": (lambda t, d: _run(d, dataset=LONG), ["dataset name", "too long"]),
    "model-300-chars": (lambda t, d: _run(d, model=LONG), ["model name", "too long"]),
    "dataset-with-dot-dot": (lambda t, d: _run(d, dataset="../../etc"), ["dataset name '../../etc'", "plain name"]),
    "dataset-with-slash": (lambda t, d: _run(d, dataset="a/b"), ["dataset name 'a/b'", "plain name"]),
    "dataset-dot": (lambda t, d: _run(d, dataset="."), ["dataset name '.'", "plain name"]),
    "dataset-empty": (lambda t, d: _run(d, dataset=""), ["dataset name"]),
    "model-with-slash": (lambda t, d: _run(d, model="../LD4MRec"), ["model name '../LD4MRec'", "plain name"]),
    "data-path-is-a-file": (lambda t, d: _run(t / "afile"), ["data_path", "afile", "not a folder"]),
    "data-path-under-a-file": (lambda t, d: _run(t / "afile" / "sub"), ["data_path", "afile", "not a folder"]),
    "compare-dataset-300-chars": (lambda t, d: ["compare", "-m", "Pop,LD4MRec", "-d", LONG, "--data-path", str(d)],
                                  ["dataset name", "too long"]),
    "compare-data-path-is-a-file": (lambda t, d: ["compare", "-m", "Pop", "-d", "synthetic", "--data-path",
                                                  str(t / "afile")], ["data_path", "not a folder"]),
}


@pytest.mark.parametrize("case", sorted(NAME_CASES))
def test_bad_names_and_data_path(case, tmp_path, data_path, capsys, caplog):
    (tmp_path / "afile").write_text("keep me")
    argv, fragments = NAME_CASES[case]
    _refused(capsys, caplog, argv(tmp_path, data_path), [tmp_path, data_path], *fragments)


# ---- C. item-feature files -------------------------------------------------------------------

def _n_items(data_path: Path) -> int:
    return np.load(data_path / "synthetic" / "image_feat.npy").shape[0]


def _save(name: str, make):
    def edit(folder: Path, n: int) -> None:
        np.save(folder / name, make(n))
    return edit


def _folder_instead_of(name: str):
    def edit(folder: Path, n: int) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
    return edit


def _remove(name: str):
    def edit(folder: Path, n: int) -> None:
        (folder / name).unlink()
    return edit


FEATURE_CASES = {
    "complex-values": (_save("image_feat.npy", lambda n: np.ones((n, 4)) + 1j), ["image_feat.npy", "complex"]),
    "zero-columns": (_save("text_feat.npy", lambda n: np.zeros((n, 0), np.float32)), ["text_feat.npy", "no columns"]),
    "boolean-values": (_save("text_feat.npy", lambda n: np.ones((n, 3), bool)), ["text_feat.npy"]),
    "path-is-a-folder": (_folder_instead_of("image_feat.npy"), ["'vision_feature_file'", "image_feat.npy", "folder"]),
    "vision-file-missing": (_remove("image_feat.npy"), ["'vision_feature_file'", "image_feat.npy", "does not exist"]),
    "text-file-missing": (_remove("text_feat.npy"), ["'text_feature_file'", "text_feat.npy", "does not exist"]),
}


@pytest.mark.parametrize("case", sorted(FEATURE_CASES))
def test_bad_feature_files(case, tmp_path, data_path, capsys, caplog):
    root = _copy(tmp_path, data_path)
    edit, fragments = FEATURE_CASES[case]
    edit(root / "synthetic", _n_items(data_path))
    _refused(capsys, caplog, _run(root), [tmp_path], *fragments)


def test_a_modality_can_be_switched_off(tmp_path, data_path, capsys):
    """Documented behaviour: ``text_feature_file=''`` says "no text features"; the run goes on."""
    root = _copy(tmp_path, data_path)
    (root / "synthetic" / "text_feat.npy").unlink()
    outcome = cli(_run(root, "text_feature_file=''"), capsys)
    assert outcome.code == 0, outcome.err


# ---- B. --load of a foreign checkpoint ---------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, data_path) -> Path:
    """A checkpoint of LD4MRecPaper (FAST settings, one grid point) on ``synthetic``."""
    from mmrec_ld4mrec.engine.config import parse_overrides
    from mmrec_ld4mrec.engine.quick_start import run

    folder = tmp_path_factory.mktemp("ckpt") / "paper"
    run("LD4MRecPaper", "synthetic", {"data_path": f"{data_path}/", **parse_overrides(FAST)}, save_dir=str(folder))
    return folder / "model.pt"


def _tamper(edit):
    def make(src: Path, dst: Path) -> Path:
        payload = torch.load(src, map_location="cpu", weights_only=True)
        edit(payload)
        torch.save(payload, dst / "model.pt")
        return dst
    return make


def _copy_as_is(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst / "model.pt")
    return dst


LOAD_CASES = {
    "made-by-another-model": (_copy_as_is, "LD4MRec", ["model.pt", "LD4MRecPaper", "LD4MRec"]),
    "foreign-state-dict": (_tamper(lambda p: p.update(state_dict={"weight": torch.zeros(3, 3)})), "LD4MRecPaper",
                           ["model.pt", "do not fit", "LD4MRecPaper"]),
    "state-dict-wrong-shape": (_tamper(lambda p: p["state_dict"].update(
        {k: torch.zeros(2) for k in list(p["state_dict"])[:1]})), "LD4MRecPaper", ["model.pt", "do not fit"]),
    "state-dict-not-a-mapping": (_tamper(lambda p: p.update(state_dict=[1, 2])), "LD4MRecPaper", ["model.pt"]),
    "config-with-bad-value": (_tamper(lambda p: p["config"].update(topk=[0])), "LD4MRecPaper", ["model.pt", "'topk'"]),
    "no-model-name": (_tamper(lambda p: p.pop("model")), "LD4MRecPaper", ["model.pt", "model"]),
    "no-checkpoint-there": (lambda src, dst: dst, "LD4MRecPaper", ["model.pt", "not found"]),
    "trained-with-a-removed-option": (_tamper(lambda p: p["config"].update(collab_scale="standard")), "LD4MRecPaper",
                                      ["model.pt", "collab_scale='standard'", "removed", "findings.md"]),
}


@pytest.mark.parametrize("case", sorted(LOAD_CASES))
def test_load_foreign_checkpoint(case, checkpoint, tmp_path, data_path, capsys, caplog):
    make, model, fragments = LOAD_CASES[case]
    folder = tmp_path / "ckpt"
    folder.mkdir()
    folder = make(checkpoint, folder)
    line = _refused(capsys, caplog, _run(data_path, "--load", str(folder), model=model), [tmp_path, data_path], *fragments)
    assert len(line) < 600, line


def test_load_own_checkpoint_still_works(checkpoint, tmp_path, data_path, capsys):
    outcome = cli(_run(data_path, "--load", str(checkpoint.parent), model="LD4MRecPaper"), capsys)
    assert outcome.code == 0, outcome.err
    assert os.path.isfile(checkpoint)
