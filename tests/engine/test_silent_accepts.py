"""Values that used to run to a meaningless exit 0 or end in a traceback: each is refused in
one line naming its key, before training."""

from __future__ import annotations

import pytest

from ..hostile import assert_clean_error, cli

CASES = {
    "SimGCL eps NaN": ("SimGCL", ["eps=.nan"], "eps"),
    "SimGCL cl_rate infinite": ("SimGCL", ["cl_rate=.inf"], "cl_rate"),
    "EASE reg_weight infinite": ("EASE", ["reg_weight=.inf"], "reg_weight"),
    "EASE an empty grid": ("EASE", ["reg_weight=[]", "hyper_parameters=[reg_weight]"], "reg_weight"),
    "DiffMM noise_min above noise_max": ("DiffMM", ["noise_min=0.05", "noise_max=0.01"], "noise_min"),
    "DiffRec noise_max above 1": ("DiffRec", ["noise_max=2", "noise_scale=0.1"], "noise_max"),
    "DiffRec a negative noise_scale": ("DiffRec", ["noise_scale=-1"], "noise_scale"),
    "DiffRec dims not a list": ("DiffRec", ["dims=1000"], "dims"),
    "DiffRec reweight not a flag": ("DiffRec", ["reweight=maybe"], "reweight"),
    "DiffRec no loss history": ("DiffRec", ["history_num_per_term=0"], "history_num_per_term"),
    "an unknown optimizer": ("EASE", ["learner=nope"], "learner"),
    "LD4MRec an item graph weight that overflows": ("LD4MRec", ["item_graph_weight=1e308"], "item_graph_weight"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_meaningless_value_is_refused_naming_its_key(case, data_path, capsys):
    model, settings, key = CASES[case]
    outcome = cli(["run", "-m", model, "-d", "synthetic", "--data-path", data_path, "--set", "epochs=1", *settings],
                  capsys)
    assert_clean_error(outcome, key)
