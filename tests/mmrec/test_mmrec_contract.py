"""Contract tests against a real MMRec: the checkout MMREC_ROOT names, else the upstream
snapshot ``../shared/mmrec/MMRec-e775373.bundle`` (a git bundle) where it exists, so that CI
checks parity, install / uninstall and the baselines on every landing.

The checkout itself is never touched: each test session clones it into a temporary folder.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmrec_ld4mrec.engine.config import YAML_LOADER

from ..conftest import SHARED
from ..hostile import tamper_snapshot

BUNDLE = SHARED / "mmrec" / "MMRec-e775373.bundle"
MMREC_ROOT = os.environ.get("MMREC_ROOT") or (str(BUNDLE) if BUNDLE.is_file() else None)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not MMREC_ROOT, reason=f"MMREC_ROOT is not set and {BUNDLE} is absent")]
BASELINES = ["BPR", "LightGCN", "VBPR", "LATTICE", "SLMRec", "BM3", "MGCN", "FREEDOM"]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmrec_ld4mrec.cli", *args], capture_output=True, text=True)


def _assert_same_run(resumed: dict, whole: dict) -> None:
    """The same epochs and MMRec's accuracy figures (rounded by MMRec to 4 digits); our
    beyond-accuracy figures are not rounded, and two runs of one MMRec model on this CPU may
    swap two near-tied items at rank 50, so they agree to 1e-3."""
    assert (resumed["best_epoch"], resumed["epochs_run"]) == (whole["best_epoch"], whole["epochs_run"])
    for split in ("valid", "test"):
        accuracy = {k for k in whole[split] if k.split("@")[0] in ("Recall", "NDCG", "Precision", "MAP")}
        assert {k: resumed[split][k] for k in accuracy} == {k: whole[split][k] for k in accuracy}
        assert resumed[split] == pytest.approx(whole[split], rel=1e-3)


def _logged_metrics(log: str, label: str) -> dict[str, float]:
    """The last ``label`` line MMRec's quick_start logged (``best valid result:`` / ``test result:``)."""
    lines = [line for line in log.splitlines() if label in line]
    assert lines, f"no {label!r} line in the log"
    pairs = re.findall(r"([a-z]+@\d+): ([0-9.]+)", lines[-1])
    return {name: float(value) for name, value in pairs}


def _assert_sane_result(log: str, trained_well: bool = False) -> None:
    valid, test = _logged_metrics(log, "best valid result:"), _logged_metrics(log, "test result:")
    assert {"recall@20", "ndcg@20"} <= set(valid) and set(test) == set(valid)
    assert all(0.0 <= v <= 1.0 for v in (*valid.values(), *test.values())), (valid, test)
    if trained_well:  # on `synthetic` a trained model is far above Pop's 0.13 Recall@20
        assert valid["recall@20"] > 0.2 and test["recall@20"] > 0.2, (valid, test)


def _quick_start(root: Path, model: str, config: dict) -> subprocess.CompletedProcess:
    """MMRec's own quick_start, as main.py calls it, with a config_dict."""
    code = ("from utils.quick_start import quick_start\n"
            f"quick_start(model={model!r}, dataset='synthetic', config_dict={config!r}, save_model=False)\n")
    env = {k: v for k, v in os.environ.items() if k != "MMREC_LD4MREC_STANDALONE"}
    return subprocess.run([sys.executable, "-c", code], cwd=root / "src", capture_output=True, text=True, env=env,
                          timeout=900)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mmrec") / "MMRec"
    subprocess.run(["git", "clone", "--quiet", MMREC_ROOT, str(root)], check=True)
    assert _git(root, "status", "--porcelain") == ""
    proc = _cli("install", "--mmrec-root", str(root))
    assert proc.returncode == 0, proc.stderr
    return root


def test_install_shows_only_added_files(checkout):
    lines = _git(checkout, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert lines and all(line.startswith("?? ") for line in lines), lines
    assert "?? src/models/ld4mrec.py" in lines and "?? src/utils/__init__.py" in lines


@pytest.mark.parametrize("model, config", [("LD4MRec", {"epochs": 2}),
                                           ("LD4MRecPaper", {"epochs": 2, "soft_prob": [0.01], "smooth": [0.01]})])
def test_ld4mrec_trains_through_mmrec_quick_start(checkout, model, config):
    proc = _quick_start(checkout, model, config)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "epoch 1 evaluating" in log and "recall@20" in log and "BEST" in log
    _assert_sane_result(log, trained_well=True)


@pytest.mark.parametrize("model", BASELINES)
def test_baseline_trains_one_epoch(checkout, model):
    declared = yaml.load((checkout / "src" / "configs" / "model" / f"{model}.yaml").read_text(), Loader=YAML_LOADER)
    config = {"epochs": 1}
    for key in declared.get("hyper_parameters") or []:
        value = declared[key]
        config[key] = [value[0] if isinstance(value, list) else value]
    proc = _quick_start(checkout, model, config)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "epoch 0 training" in log and "valid_score" in log
    _assert_sane_result(log)


PLUGIN_MODELS = {"Pop": {}, "EASE": {"reg_weight": [100.0]}, "SimGCL": {},
                 "DiffRec": {"steps": 5, "dims": [64], "noise_scale": 0.01, "noise_min": 0.001, "noise_max": 0.01},
                 "MMSSL": {"train_batch_size": 4096, "cl_rate": [0.03], "G_rate": [0.0018]},
                 "DiffMM": {"dims": [64], "train_batch_size": 4096, "ssl_reg": [0.01], "e_loss": [0.1]}}


@pytest.mark.parametrize("model", PLUGIN_MODELS)
def test_plugin_model_trains_one_epoch_through_mmrec(checkout, model):
    proc = _quick_start(checkout, model, {"epochs": 1, **PLUGIN_MODELS[model]})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "epoch 0 training" in log and "valid_score" in log
    _assert_sane_result(log)


def test_standalone_and_mmrec_give_the_same_metrics(checkout, tmp_path):
    settings = ["--set", "epochs=4", "embedding_size=64", "hidden_size=32", "svd_rank=16", "soft_prob=0.05",
                "smooth=0.05"]
    outs = {}
    for engine in ("standalone", "mmrec"):
        out = tmp_path / f"{engine}.json"
        extra = (["--engine", "mmrec", "--mmrec-root", str(checkout)] if engine == "mmrec"
                 else ["--data-path", str(checkout / "data")])
        proc = _cli("run", "-m", "LD4MRec", "-d", "synthetic", *extra, *settings, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[engine] = json.loads(out.read_text())
    assert outs["standalone"]["best_epoch"] == outs["mmrec"]["best_epoch"]
    for name in ("Recall@10", "Recall@20", "NDCG@10", "NDCG@20", "Precision@20", "MAP@20"):
        for split in ("valid", "test"):
            assert outs["standalone"][split][name] == pytest.approx(outs["mmrec"][split][name], abs=1e-4), name
    # the beyond-accuracy figures and segments: from the lists MMRec's evaluator ranked, not from its logs
    beyond = [f"{m}@{k}" for m in ("ItemCoverage", "GiniIndex", "AveragePopularity", "TailPercentage")
              for k in (10, 20, 50)]
    for split in ("valid", "test"):
        assert {k: outs["mmrec"][split][k] for k in beyond} == pytest.approx(
            {k: outs["standalone"][split][k] for k in beyond}, rel=1e-6)
    flat = {engine: {(kind, name, key): value for kind, segments in out["segments"].items()
                     for name, row in segments.items() for key, value in row.items()} for engine, out in outs.items()}
    assert flat["mmrec"] == pytest.approx(flat["standalone"], rel=1e-6)
    assert len(outs["mmrec"]["segments"]["user activity"]) >= 2


def test_an_mmrec_checkpoint_serves_the_lists_mmrec_ranked(checkout, tmp_path):
    """``run --engine mmrec --save`` keeps the best epoch's weights (MMRec keeps none);
    ``recommend --engine mmrec`` serves them with MMRec's own model class: the test users get
    the top-50 lists MMRec's evaluator ranked at that epoch."""
    proc = _cli("run", "-m", "LightGCN", "-d", "synthetic", "--engine", "mmrec", "--mmrec-root", str(checkout),
                "--set", "epochs=8", "learning_rate=0.05", "n_layers=2", "reg_weight=0.001", "train_batch_size=8192",
                "stopping_step=100", "--save", str(tmp_path / "ck"), "--out", str(tmp_path / "run.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "run.json").read_text())
    # MMRec evaluates the test split after every validation: the lists kept are the best epoch's,
    # not the last one's, so the segments add up to the test Recall@20 MMRec reports
    assert result["best_epoch"] < result["epochs_run"] - 1
    bins = result["segments"]["user activity"].values()
    weighted = sum(b["users"] * b["Recall@20"] for b in bins) / sum(b["users"] for b in bins)
    assert weighted == pytest.approx(result["test"]["Recall@20"], abs=1e-4)
    ranked = pd.read_csv(next((tmp_path / "ck").glob("*.csv")), sep="\t")
    (tmp_path / "users.txt").write_text("\n".join(map(str, ranked["id"])) + "\n")
    proc = _cli("recommend", "--checkpoint", str(tmp_path / "ck"), "-d", "synthetic", "--engine", "mmrec",
                "--mmrec-root", str(checkout), "--users", str(tmp_path / "users.txt"), "-k", "50",
                "--out", str(tmp_path / "top.csv"), "--requests", "10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pd.read_csv(tmp_path / "top.csv", sep="\t").equals(ranked)
    assert "users/s" in proc.stdout and "over 10 requests" in proc.stdout
    proc = _cli("recommend", "--checkpoint", str(tmp_path / "ck"), "-d", "synthetic", "--out", str(tmp_path / "x.csv"),
                "--data-path", str(checkout / "data"))
    assert proc.returncode == 2 and "trained in MMRec's pipeline" in proc.stderr
    proc = _cli("recommend", "--checkpoint", str(tmp_path / "ck"), "-d", "tiktok", "--engine", "mmrec",
                "--mmrec-root", str(checkout), "--out", str(tmp_path / "x.csv"))
    assert proc.returncode == 2 and "trained on dataset 'synthetic', not 'tiktok'" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


def test_mmrec_runs_report_each_validation_and_stop_when_told(checkout):
    """What `tune` prunes MMRec trials with: each validation (not the test split's evaluation)
    reaches on_evaluation with its epoch, and an exception raised there stops MMRec's process."""
    from mmrec_ld4mrec.mmrec.driver import run_in_mmrec

    seen = []
    result = run_in_mmrec(checkout, "BPR", "synthetic", {"epochs": 4, "reg_weight": 0.001, "hyper_parameters": []},
                          on_evaluation=lambda epoch, valid: seen.append((epoch, valid["Recall@20"])))
    assert [epoch for epoch, _ in seen] == [0, 1, 2, 3]
    assert result["valid"]["Recall@20"] == pytest.approx(max(r for _, r in seen), abs=1e-4)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, valid):
        raise Stop(epoch)

    with pytest.raises(Stop) as stopped:
        run_in_mmrec(checkout, "BPR", "synthetic", {"epochs": 50, "reg_weight": 0.001, "hyper_parameters": []},
                     on_evaluation=stop_after_first)
    assert stopped.value.args == (0,)
    leftovers = subprocess.run(["pgrep", "-f", "mmrec_ld4mrec.mmrec.driver.*BPR.*\"epochs\": 50"],
                               capture_output=True, text=True).stdout
    assert leftovers == "", leftovers


@pytest.mark.parametrize("model, settings", [("LightGCN", {"n_layers": 2, "reg_weight": 0.001, "train_batch_size": 8192})])
def test_an_mmrec_run_stopped_between_epochs_resumes_with_the_digits_of_one_never_stopped(checkout, tmp_path, model,
                                                                                          settings):
    """A snapshot puts MMRec's Trainer (start_epoch, early stopping, optimizer, scheduler), the
    loader's orders and the random generators back (a plugin model's own training state, as
    MMSSL's, goes through the same hook as in tests/engine/test_snapshot.py)."""
    from mmrec_ld4mrec.mmrec.driver import run_in_mmrec

    class Stop(Exception):
        pass

    config = {"epochs": 3, "stopping_step": 100, "hyper_parameters": [], "seed": 3, **settings}
    whole = run_in_mmrec(checkout, model, "synthetic", config)
    file = tmp_path / "run.snapshot"

    def stop_at_1(epoch, valid):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        run_in_mmrec(checkout, model, "synthetic", config, on_evaluation=stop_at_1, snapshot=file, snapshot_every=0)
    assert file.is_file()
    seen = []
    resumed = run_in_mmrec(checkout, model, "synthetic", config, on_evaluation=lambda e, v: seen.append(e),
                           snapshot=file, snapshot_every=0)
    assert seen == [0, 1, 2]  # epoch 0's evaluation passed on again from the snapshot, then 1 and 2
    # the parent stops the child once it has read epoch 1's validation; by then the child may
    # have saved its snapshot before epoch 2 (an epoch here is a tenth of a second)
    assert resumed["resumed_from_epoch"] in (1, 2) and "resumed_from_epoch" not in whole
    _assert_same_run(resumed, whole)
    assert not file.exists()


@pytest.mark.parametrize("override, needle", [({"regg_weight": 0.1}, "unknown config key 'regg_weight'"),
                                             ({"learner": "nope"}, "config key 'learner'"),
                                             ({"learner": "adamw"}, "config key 'learner'")])
def test_a_key_or_optimizer_mmrec_would_ignore_is_refused_before_it_starts(checkout, override, needle):
    """MMRec's Config takes any key and its trainer falls back to Adam for an optimizer it does not
    build: both would run silently as something else."""
    from mmrec_ld4mrec.errors import ConfigError
    from mmrec_ld4mrec.mmrec.driver import checked_request

    with pytest.raises(ConfigError, match=needle):
        checked_request(checkout, "BPR", "synthetic", {"epochs": 1, **override})
    assert checked_request(checkout, "BPR", "synthetic", {"epochs": 1, "reg_weight": 0.1, "learner": "sgd"})


SCRIPTED_GRID = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from mmrec_ld4mrec.mmrec import driver

SCORES = {0.001: (0.30, 0.10), 0.0001: (0.20, 0.50)}  # reg_weight -> (validation, test) Recall@20
real = driver.recording_trainer


def scripted(base):
    class Scripted(real(base)):
        def _valid_epoch(self, data):  # MMRec scores validation and test through this one method
            valid, test = SCORES[self.config["reg_weight"]]
            score = valid if data is self.valid_data else test
            return score, {"recall@20": score, "ndcg@20": score}
    return Scripted


driver.recording_trainer = scripted
result = driver._child(json.loads(sys.argv[1]))
print(json.dumps({k: result[k] for k in ("hyper_parameters", "valid", "test", "grid")}))
"""


def test_the_mmrec_path_chooses_the_grid_point_on_validation_when_test_disagrees(checkout, tmp_path):
    """Two grid points whose validation and test orders are opposite: the driver keeps the one
    better on validation (MMRec's own summary would keep the other)."""
    from mmrec_ld4mrec.mmrec.driver import checked_request, child_environment

    config = checked_request(checkout, "BPR", "synthetic", {"epochs": 2, "reg_weight": [0.0001, 0.001],
                                                            "hyper_parameters": ["reg_weight"]})
    request = {"model": "BPR", "dataset": "synthetic", "config": config, "out": str(tmp_path / "out.json")}
    script = tmp_path / "scripted_grid.py"
    script.write_text(SCRIPTED_GRID)
    proc = subprocess.run([sys.executable, str(script), json.dumps(request)], cwd=checkout / "src",
                          env=child_environment(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [p["point"]["reg_weight"] for p in result["grid"]] == [0.0001, 0.001]
    assert result["hyper_parameters"]["reg_weight"] == 0.001
    assert result["valid"]["Recall@20"] == 0.30 and result["test"]["Recall@20"] == 0.10


@pytest.mark.parametrize("what", ["optimizer", "next_epoch", "cur_step", "best_topk"])
def test_an_mmrec_snapshot_that_cannot_be_this_runs_is_set_aside_and_the_run_starts_over(checkout, tmp_path, what):
    """MMRec's path checks what it puts back as the standalone one does: an optimizer state of
    another shape (a fused step would write out of bounds), an epoch beyond the run, a patience
    count out of range. The run starts from epoch 0 and ends as one never stopped."""
    import torch

    from mmrec_ld4mrec.mmrec.driver import run_in_mmrec

    class Stop(Exception):
        pass

    config = {"epochs": 3, "stopping_step": 100, "hyper_parameters": [], "seed": 3, "n_layers": 2,
              "reg_weight": 0.001, "train_batch_size": 8192}
    whole = run_in_mmrec(checkout, "LightGCN", "synthetic", config)
    file = tmp_path / "run.snapshot"

    def stop_at_1(epoch, valid):
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        run_in_mmrec(checkout, "LightGCN", "synthetic", config, on_evaluation=stop_at_1, snapshot=file,
                     snapshot_every=0)
    if what in ("optimizer", "next_epoch"):
        tamper_snapshot(file, {"optimizer": "optimizer of another shape", "next_epoch": "next_epoch far beyond"}[what])
    else:
        payload = torch.load(file, weights_only=True)
        if what == "best_topk":  # the best epoch's lists: items the model does not have
            payload["best_topk"]["valid"] = torch.full_like(payload["best_topk"]["valid"], 10 ** 6)
        else:
            payload["trainer"]["cur_step"] = -4
        torch.save(payload, file)
    resumed = run_in_mmrec(checkout, "LightGCN", "synthetic", config, snapshot=file, snapshot_every=0)
    assert "resumed_from_epoch" not in resumed
    _assert_same_run(resumed, whole)
    assert (tmp_path / "run.snapshot.unused").is_file() and not file.exists()


@pytest.mark.parametrize("model, settings", [("MMSSL", ["cl_rate=0.03", "G_rate=0.0018"]),
                                             ("DiffMM", ["dims=[64]", "ssl_reg=0.01", "e_loss=0.1"])])
def test_standalone_and_mmrec_agree_for_the_multimedia_peers(checkout, tmp_path, model, settings):
    """MMSSL and DiffMM train on MMRec's (user, positive, negative) batches and step their own
    optimizers (discriminator, denoisers) inside the epoch: the two engines still agree."""
    outs = {}
    for engine in ("standalone", "mmrec"):
        out = tmp_path / f"{engine}.json"
        extra = (["--engine", "mmrec", "--mmrec-root", str(checkout)] if engine == "mmrec"
                 else ["--data-path", str(checkout / "data")])
        proc = _cli("run", "-m", model, "-d", "synthetic", *extra, "--set", "epochs=2", "train_batch_size=4096",
                    "hyper_parameters=[]", *settings, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[engine] = json.loads(out.read_text())
    assert outs["standalone"]["best_epoch"] == outs["mmrec"]["best_epoch"]
    for name in ("Recall@20", "NDCG@20"):
        for split in ("valid", "test"):
            assert outs["standalone"][split][name] == pytest.approx(outs["mmrec"][split][name], abs=1e-4), name


def _cold_user_dataset(folder: Path) -> None:
    """A DiffMM-format split where users 3 and 4 have no training interactions (test only) and
    user 5 none either (validation only): MMRec's cold-user filter must drop them alike."""
    import pickle

    import numpy as np
    import scipy.sparse as sp

    from ..prepare_fixtures import N_ITEMS, N_USERS, split_pairs, write_diffmm

    write_diffmm(folder)
    train, valid, test = split_pairs()
    for user, target in ((3, "test"), (4, "test"), (5, "valid")):
        moved = train[train[:, 0] == user]
        train = train[train[:, 0] != user]
        if target == "test":
            test = np.concatenate([test, moved])
        else:
            valid = np.concatenate([valid, moved])
    for name, pairs in zip(("trnMat.pkl", "valMat.pkl", "tstMat.pkl"), (train, valid, test)):
        m = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(N_USERS, N_ITEMS))
        (folder / name).write_bytes(pickle.dumps(m))


def test_standalone_and_mmrec_agree_with_cold_users(checkout, tmp_path):
    _cold_user_dataset(tmp_path / "src")
    proc = _cli("prepare", "diffmm", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "data" / "cold"))
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "data" / "cold" / "stats.json").read_text())
    assert stats["users_without_training_interactions"]["test"] >= 2
    assert stats["users_without_training_interactions"]["validation"] >= 1
    settings = ["--set", "epochs=3", "embedding_size=32", "hidden_size=16", "svd_rank=8", "soft_prob=0.05",
                "smooth=0.05", "topk=[5,10]", "valid_metric=Recall@10", "--data-path", str(tmp_path / "data")]
    outs = {}
    for engine in ("standalone", "mmrec"):
        out = tmp_path / f"{engine}.json"
        extra = ["--engine", "mmrec", "--mmrec-root", str(checkout)] if engine == "mmrec" else []
        proc = _cli("run", "-m", "LD4MRec", "-d", "cold", *extra, *settings, "--out", str(out))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[engine] = json.loads(out.read_text())
    assert outs["standalone"]["dropped_cold_users"] == {"validation": stats["users_without_training_interactions"]["validation"],
                                                         "test": stats["users_without_training_interactions"]["test"]}
    assert outs["standalone"]["best_epoch"] == outs["mmrec"]["best_epoch"]
    for name in ("Recall@5", "Recall@10", "NDCG@5", "NDCG@10"):
        for split in ("valid", "test"):
            assert outs["standalone"][split][name] == pytest.approx(outs["mmrec"][split][name], abs=1e-4), (split, name)


@pytest.mark.parametrize("source, model", [("diffmm", "FREEDOM"), ("diffrec", "BPR")])
def test_a_prepared_dataset_runs_through_the_mmrec_engine(checkout, tmp_path, source, model):
    """The dataset YAML `prepare` writes beside the data reaches MMRec's Config (issue 13, defect 13);
    nothing is copied into the checkout."""
    from ..prepare_fixtures import write_diffmm, write_diffrec

    (write_diffmm if source == "diffmm" else write_diffrec)(tmp_path / "src")
    if source == "diffmm":
        (tmp_path / "src" / "image_feat.npy").unlink()  # one modality left
    proc = _cli("prepare", source, "--src", str(tmp_path / "src"), "--out", str(tmp_path / "data" / "mine"))
    assert proc.returncode == 0, proc.stderr
    before = _git(checkout, "status", "--porcelain", "--untracked-files=all")
    out = tmp_path / "result.json"
    proc = _cli("run", "--engine", "mmrec", "--mmrec-root", str(checkout), "-m", model, "-d", "mine",
                "--data-path", str(tmp_path / "data"), "--set", "epochs=1", "topk=[5,10]", "valid_metric=Recall@10",
                "--out", str(out))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    result = json.loads(out.read_text())
    assert result["engine"] == "mmrec" and result["config"]["inter_file_name"] == "mine.inter"
    assert 0.0 <= result["test"]["Recall@10"] <= 1.0
    assert _git(checkout, "status", "--porcelain", "--untracked-files=all") == before


def test_a_truncated_graph_cache_is_named_and_a_rebuilt_one_is_whole(checkout, tmp_path):
    """MGCN caches its kNN graphs beside the dataset: a file a stopped run left truncated is refused
    in one line naming it; deleted, the next run rebuilds it, written whole (`mmrec.cache_files`)."""
    import torch

    from ..prepare_fixtures import write_diffmm

    write_diffmm(tmp_path / "src")
    assert _cli("prepare", "diffmm", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "data" / "mine")
                ).returncode == 0
    cache = tmp_path / "data" / "mine" / "image_adj_10_True.pt"
    cache.write_bytes(b"PK\x03\x04")  # the start of a zip that a killed torch.save left behind
    run = ["run", "--engine", "mmrec", "--mmrec-root", str(checkout), "-m", "MGCN", "-d", "mine", "--data-path",
           str(tmp_path / "data"), "--set", "epochs=1", "knn_k=10", "cl_loss=0.001", "topk=[5,10]",
           "valid_metric=Recall@10", "--out", str(tmp_path / "result.json")]
    proc = _cli(*run)
    assert proc.returncode != 0
    named = [line for line in proc.stderr.splitlines() if line.startswith("error: ") and str(cache) in line]
    assert named and "delete it" in named[0], proc.stderr[-3000:]
    cache.unlink()
    proc = _cli(*run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert torch.load(cache).layout == torch.sparse_coo
    assert not [p.name for p in cache.parent.iterdir() if p.name.startswith(".")]  # no temporary left


# ---- bad values for --engine mmrec: refused in one line before MMRec starts (no child process) ----------------

MMREC_REFUSALS = {
    "unknown-model": (["-m", "Bogus"], ["'Bogus'", "src/models/bogus.py"]),
    "model-name-case": (["-m", "lightgcn"], ["'lightgcn'", "LightGCN"]),
    "epochs-abc": (["-m", "BPR", "--set", "epochs=abc"], ["'epochs'"]),
    "epochs-negative": (["-m", "BPR", "--set", "epochs=-5"], ["'epochs'"]),
    "learning-rate-nan": (["-m", "BPR", "--set", "epochs=1", "learning_rate=nan"], ["'learning_rate'"]),
    "topk-zero": (["-m", "BPR", "--set", "epochs=1", "topk=[0]"], ["'topk'"]),
    "duplicate-seeds": (["-m", "BPR", "--set", "epochs=1", "seed=[1,1]"], ["'seed'"]),
    "ld4mrec-soft-prob": (["-m", "LD4MRec", "--set", "epochs=1", "soft_prob=5"], ["'soft_prob'"]),
    "ld4mrec-removed-option": (["-m", "LD4MRec", "--set", "epochs=1", "ema_decay=0.99"], ["'ema_decay'", "removed"]),
    "ld4mrec-grid-point": (["-m", "LD4MRec", "--set", "epochs=1", "smooth=[0.1,2.0]", "hyper_parameters=[smooth]"],
                           ["'smooth'"]),
    "prepared-yaml-inter-file-list": (["-m", "BPR", "-d", "mine", "--set", "epochs=1"],
                                      ["mine.yaml", "'inter_file_name'"]),
    "compare-second-model": (["-m", "BPR,LD4MRec", "--set", "epochs=1", "soft_prob=5"], ["'soft_prob'"]),
}


@pytest.mark.parametrize("case", sorted(MMREC_REFUSALS))
def test_bad_values_are_refused_before_mmrec_starts(checkout, tmp_path, capsys, monkeypatch, case):
    from mmrec_ld4mrec.mmrec import driver

    from ..hostile import assert_clean_error, cli

    def started(*args, **kwargs):
        raise AssertionError("MMRec was started")

    monkeypatch.setattr(driver, "subprocess", type("NoChild", (), {"run": staticmethod(started)}))
    mine = tmp_path / "data" / "mine"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("USER_ID_FIELD: userID\nITEM_ID_FIELD: itemID\ninter_file_name: [1]\n")
    extra, fragments = MMREC_REFUSALS[case]
    command = "compare" if case.startswith("compare") else "run"
    if command == "compare":
        extra = ["--models" if a == "-m" else a for a in extra]
    dataset = [] if "-d" in extra else ["-d", "synthetic"]
    data_path = ["--data-path", str(tmp_path / "data")] if "mine" in extra else []
    before = _git(checkout, "status", "--porcelain", "--untracked-files=all")
    outcome = cli([command, "--engine", "mmrec", "--mmrec-root", checkout, *dataset, *data_path, *extra], capsys)
    assert_clean_error(outcome, *fragments)
    assert _git(checkout, "status", "--porcelain", "--untracked-files=all") == before


def test_every_model_and_dataset_of_the_checkout_passes_the_checks(checkout):
    """The checks know the engine's common keys and our models' own; MMRec's baselines keep the
    keys their YAMLs set (unknown to our checks) and their shipped values pass. A key none of
    the YAMLs sets is refused (test_a_key_or_optimizer_mmrec_would_ignore_is_refused...)."""
    from mmrec_ld4mrec.mmrec.driver import checked_request

    models = sorted(p.stem for p in (checkout / "src" / "configs" / "model").glob("*.yaml"))
    datasets = sorted(p.stem for p in (checkout / "src" / "configs" / "dataset").glob("*.yaml"))
    assert "BPR" in models and "LD4MRec" in models and "synthetic" in datasets
    for model in models:
        for dataset in datasets:
            checked_request(checkout, model, dataset, {})
    assert checked_request(checkout, "MGCN", "synthetic", {"cl_loss": 0.01, "knn_k": 5})


def test_uninstall_leaves_the_checkout_clean(checkout):
    proc = _cli("uninstall", "--mmrec-root", str(checkout))
    assert proc.returncode == 0, proc.stderr
    assert _git(checkout, "status", "--porcelain", "--untracked-files=all") == ""


MMREC_SEARCH_SPACES = ["BPR", "LightGCN", "VBPR", "LATTICE", "MGCN", "SLMRec", "BM3", "FREEDOM"]


@pytest.mark.parametrize("model", MMREC_SEARCH_SPACES)
def test_search_spaces_of_mmrec_baselines_name_real_keys_and_cover_their_grids(checkout, model):
    from mmrec_ld4mrec.study.tune import load_space, search_space_path

    searched = {d.name for d in load_space(search_space_path(model), model, "mmrec", checkout)}
    yaml_grid = yaml.load((checkout / "src" / "configs" / "model" / f"{model}.yaml").read_text(), Loader=YAML_LOADER)
    # a trial sets hyper_parameters: [], so every key MMRec lists as a grid must get a value
    assert set(yaml_grid.get("hyper_parameters", [])) - {"seed"} <= searched


def test_every_search_space_file_belongs_to_a_model_we_run():
    from mmrec_ld4mrec.study.tune import search_space_path

    folder = search_space_path("LD4MRec").parent
    ours = {p.stem for p in (folder.parent / "model").glob("*.yaml")} - {"Pop"}
    # MODEL.yaml, or MODEL-VARIANT.yaml: another space for the same model (LD4MRec-multimodal)
    assert {p.stem.split("-")[0] for p in folder.glob("*.yaml")} == ours | set(MMREC_SEARCH_SPACES)
