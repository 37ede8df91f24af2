"""The inference study of Fig. 3 (``inference_study``): a run ranks its one trained state with
every inference strategy, and steps beyond T are refused before any training."""

from __future__ import annotations

import pytest


def test_inference_study_ranks_one_trained_state_with_every_strategy(data_path, small_ld4mrec):
    from mmrec_ld4mrec.engine.quick_start import run

    result = run("LD4MRec", "synthetic", {"data_path": f"{data_path}/", **small_ld4mrec, "inference_study": [0, 2]})
    forward_free, two_step = result["inference_study"]
    assert (forward_free["inference_steps"], two_step["inference_steps"]) == (0, 2)
    # the forward-free strategy re-ranks the very state the run reports (its best epoch)
    assert forward_free["test"] == result["test"] and forward_free["valid"] == result["valid"]
    assert two_step["test"]["Recall@20"] != result["test"]["Recall@20"]


@pytest.mark.parametrize("study", [[0, 9], [1, 1], "2"])
def test_inference_study_steps_beyond_t_are_refused_before_training(data_path, small_ld4mrec, monkeypatch, study):
    from mmrec_ld4mrec.engine import quick_start
    from mmrec_ld4mrec.errors import ConfigError

    monkeypatch.setattr(quick_start.Trainer, "fit", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(ConfigError, match="inference_study"):
        quick_start.run("LD4MRec", "synthetic", {"data_path": f"{data_path}/", **small_ld4mrec, "steps": 5,
                                                 "inference_study": study})
