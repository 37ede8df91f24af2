"""The inference study of Fig. 3 (``inference_study``, study/inference_study.py): a run ranks its
one trained state with every inference strategy, and steps beyond T are refused before any
training."""

from __future__ import annotations

import json

import pytest

from mmrec_ld4mrec.engine import quick_start
from mmrec_ld4mrec.errors import ConfigError
from mmrec_ld4mrec.study.inference_study import split_inference_study


def run_with_study(config: dict) -> dict:
    config, study = split_inference_study(config)
    return quick_start.run("LD4MRec", "synthetic", config, after_fit=study)


def test_inference_study_ranks_one_trained_state_with_every_strategy(data_path, small_ld4mrec):
    result = run_with_study({"data_path": f"{data_path}/", **small_ld4mrec, "inference_study": [0, 2]})
    forward_free, two_step = result["inference_study"]
    assert (forward_free["inference_steps"], two_step["inference_steps"]) == (0, 2)
    # the forward-free strategy re-ranks the very state the run reports (its best epoch)
    assert forward_free["test"] == result["test"] and forward_free["valid"] == result["valid"]
    assert two_step["test"]["Recall@20"] != result["test"]["Recall@20"]
    assert "inference_study" not in result["config"]  # a study of the run, not a setting of the model


@pytest.mark.parametrize("study", [[0, 9], [1, 1], "2"])
def test_inference_study_steps_beyond_t_are_refused_before_training(data_path, small_ld4mrec, monkeypatch, study):
    monkeypatch.setattr(quick_start.Trainer, "fit", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(ConfigError, match="inference_study"):
        run_with_study({"data_path": f"{data_path}/", **small_ld4mrec, "steps": 5, "inference_study": study})


def test_the_cli_and_the_sweep_take_the_study_out_of_the_config(data_path, small_ld4mrec, tmp_path):
    from mmrec_ld4mrec.cli import main

    out = tmp_path / "r.json"
    args = ["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", str(data_path), "--out", str(out), "--set",
            "embedding_size=64", "hidden_size=32", "svd_rank=16", "epochs=2", "inference_study=[0,1]"]
    assert main(args) == 0
    assert [s["inference_steps"] for s in json.loads(out.read_text())["inference_study"]] == [0, 1]
