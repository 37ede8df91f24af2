"""``precision``: fp32 by default, bf16 under autocast for training and inference, checked values."""

import torch

from mmrec_ld4mrec.engine.precision import precision_context, precision_of
from mmrec_ld4mrec.engine.quick_start import run

from ..hostile import FAST, assert_clean_error, cli


def test_bf16_autocasts_matrix_products_and_fp32_does_not():
    with precision_context({"precision": "bf16", "device": torch.device("cpu")}):
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16
    with precision_context({"precision": "fp32", "device": torch.device("cpu")}):
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32
    assert precision_of({}) == "fp32"  # an MMRec config without the key


def test_a_bf16_run_trains_and_ranks(data_path, small_ld4mrec):
    result = run("LD4MRec", "synthetic", {"data_path": f"{data_path}/", **small_ld4mrec, "precision": "bf16"})
    assert result["config"]["precision"] == "bf16"
    assert 0.0 < result["test"]["Recall@20"] <= 1.0


def test_an_unknown_precision_is_refused(data_path, capsys):
    outcome = cli(["run", "-m", "LD4MRec", "-d", "synthetic", "--data-path", data_path, "--set", *FAST,
                   "precision=fp16"], capsys)
    assert_clean_error(outcome, "precision", "fp32, bf16, tf32")
