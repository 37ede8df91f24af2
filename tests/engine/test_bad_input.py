"""Every bad input stops with a one-line message naming the file or key (exit code 2)."""

import shutil

import numpy as np
import pandas as pd
import pytest

from mmrec_ld4mrec.cli import main

FAST = ["--set", "epochs=1", "embedding_size=8", "hidden_size=4", "svd_rank=2", "soft_prob=0.01", "smooth=0.01"]


def _dataset(tmp_path, data_path, edit=None, features=None):
    """A copy of ``synthetic`` under tmp_path, its interactions and features edited."""
    root = tmp_path / "data"
    shutil.copytree(data_path / "synthetic", root / "synthetic")
    df = pd.read_csv(root / "synthetic" / "synthetic.inter", sep="\t")
    if edit is not None:
        df = edit(df)
        df.to_csv(root / "synthetic" / "synthetic.inter", sep="\t", index=False)
    for name, arr in (features or {}).items():
        np.save(root / "synthetic" / name, arr)
    return root


def _fails(capsys, args, *fragments):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _run(root):
    return ["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", str(root), *FAST]


def test_missing_interaction_file(tmp_path, capsys):
    (tmp_path / "synthetic").mkdir()
    (tmp_path / "synthetic" / "keep.txt").write_text("user file")
    _fails(capsys, _run(tmp_path), "synthetic", "exists without synthetic.inter")
    assert (tmp_path / "synthetic" / "keep.txt").read_text() == "user file"


def test_missing_column(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d.drop(columns="x_label"))
    _fails(capsys, _run(root), "synthetic.inter", "missing column", "x_label")


def test_non_integer_ids(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d.assign(itemID=d.itemID.astype(float) + 0.5))
    _fails(capsys, _run(root), "synthetic.inter", "'itemID' must hold integers")


def test_text_ids(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d.assign(userID=d.userID.astype(str).radd("u")))
    _fails(capsys, _run(root), "'userID' must hold integers")


def test_negative_ids(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d.assign(userID=d.userID.where(d.index != 3, -1)))
    _fails(capsys, _run(root), "'userID' has negative value")


def test_ids_out_of_range(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d.assign(itemID=d.itemID.where(d.index != 3, 10**9)))
    _fails(capsys, _run(root), "'itemID' has id 1000000000", "remapped")


def test_labels_out_of_range(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d.assign(x_label=d.x_label.where(d.index != 0, 3)))
    _fails(capsys, _run(root), "'x_label' must be 0, 1 or 2")


def test_empty_split(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, lambda d: d[d.x_label != 1])
    _fails(capsys, _run(root), "validation split (x_label=1) is empty")


def test_users_without_training_interactions(tmp_path, data_path, capsys):
    def cold(d):
        return d[~((d.userID == 0) & (d.x_label == 0))]

    root = _dataset(tmp_path, data_path, cold)
    _fails(capsys, _run(root) + ["filter_out_cod_start_users=False"], "1 user(s) in the validation split",
           "no training interactions")


def test_cold_users_are_dropped_and_reported_with_the_filter(tmp_path, data_path):
    from mmrec_ld4mrec.engine.quick_start import run

    root = _dataset(tmp_path, data_path, lambda d: d[~((d.userID == 0) & (d.x_label == 0))])
    result = run("Pop", "synthetic", {"data_path": f"{root}/"})
    assert result["dropped_cold_users"] == {"validation": 1, "test": 1}


def test_feature_rows_must_match_items(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path, features={"image_feat.npy": np.zeros((5, 3), np.float32)})
    _fails(capsys, _run(root), "image_feat.npy", "has 5 rows, expected one per item")


def test_features_with_nan(tmp_path, data_path, capsys):
    n_items = np.load(data_path / "synthetic" / "text_feat.npy").shape[0]
    bad = np.zeros((n_items, 4), np.float32)
    bad[2, 1] = np.nan
    root = _dataset(tmp_path, data_path, features={"text_feat.npy": bad})
    _fails(capsys, _run(root), "text_feat.npy", "NaN or infinite")


def test_feature_file_that_is_not_npy(tmp_path, data_path, capsys):
    root = _dataset(tmp_path, data_path)
    (root / "synthetic" / "image_feat.npy").write_bytes(b"not numpy")
    _fails(capsys, _run(root), "image_feat.npy", "not a .npy file")


def test_unknown_config_key(data_path, capsys):
    _fails(capsys, _run(data_path) + ["smoth=0.1"], "unknown config key 'smoth'", "did you mean smooth")


@pytest.mark.parametrize("setting,key", [
    ("soft_prob=1.0", "soft_prob"), ("soft_prob=-0.1", "soft_prob"), ("smooth=1.5", "smooth"),
    ("steps=1", "steps"), ("embedding_size=0", "embedding_size"), ("hidden_size=-3", "hidden_size"),
    ("svd_rank=0", "svd_rank"), ("noise_scale=0", "noise_scale"), ("activation=swish", "activation"),
    ("inference_steps=9", "inference_steps"), ("use_pg=maybe", "use_pg"),
])
def test_values_out_of_range(data_path, capsys, setting, key):
    _fails(capsys, _run(data_path) + [setting], f"'{key}'")


def test_malformed_set_and_unknown_names(data_path, capsys):
    _fails(capsys, _run(data_path) + ["smooth"], "--set expects key=value")
    _fails(capsys, ["run", "-m", "LD4MRec", "-d", "nowhere", "--data-path", str(data_path)], "nowhere.yaml")
    _fails(capsys, ["run", "-m", "NoSuchModel", "-d", "synthetic", "--data-path", str(data_path)], "NoSuchModel")
