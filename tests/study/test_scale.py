"""bench --scale: sizes, the slope fit and the memory model (the measuring itself is bench's)."""

import math

import pytest

from mmrec_ld4mrec.data.synthetic import generate
from mmrec_ld4mrec.study.scale import fit_memory, fit_slope, predict_peak_mb, scale_report, scale_sizes


def test_sizes_grow_users_times_items_by_the_factor():
    sizes = scale_sizes(4000, 2000)
    assert [f for f, _, _ in sizes] == [1, 2, 4, 8]
    for f, u, i in sizes:
        assert u * i == pytest.approx(f * 4000 * 2000, rel=1e-3)


def test_slope_of_a_power_law_is_its_exponent():
    x = [1e9, 2e9, 4e9, 8e9]
    assert fit_slope(x, [3e-9 * v ** 0.9 for v in x]) == pytest.approx(0.9)


def _run(factor, users, items, peak, parameters, buffers):
    return {"factor": factor, "n_users": users, "n_items": items, "peak_rss_mb": peak, "parameters": parameters,
            "buffer_floats": buffers, "batch": 400, "eval_batch": 4096, "embedding_size": 1000,
            "train_seconds_per_epoch": 1e-10 * users * items * 1000, "inference_seconds": 2e-11 * users * items * 1000}


def test_memory_model_recovers_its_terms_and_predicts_the_other_sizes():
    r0, a = 400.0, 3.0
    runs = []
    for f, u, i in scale_sizes(4000, 2000):
        params, buffers = 2 * i * 1000 + 10 * u, 200 * u
        peak = r0 + (16 * params + 4 * buffers + a * 4 * 4096 * i) / 2 ** 20
        runs.append(_run(f, u, i, peak, params, buffers))
    model = fit_memory(runs)
    assert model["fitted_on"] == [1, 8]
    assert model["base_mb"] == pytest.approx(r0) and model["activation_tensors"] == pytest.approx(a)
    for r in runs:
        assert predict_peak_mb(model, r) == pytest.approx(r["peak_rss_mb"])
    report = scale_report(runs)
    assert report["slopes"]["train"] == pytest.approx(1.0) and "| 8 |" in report["markdown"]


def test_generator_takes_sizes_and_its_default_is_unchanged():
    small, _ = generate(n_users=300, n_items=150)
    assert small.userID.nunique() <= 300 and small.itemID.nunique() <= 150
    assert set(small.x_label.unique()) == {0, 1, 2}
    default, _ = generate()
    assert (default.userID.nunique(), default.itemID.nunique(), len(default)) == (1000, 492, 27719)
    assert not math.isnan(small.groupby("userID").size().mean())


@pytest.mark.parametrize("text", ["1", "2,1", "1,1,2", "0,1", "a,b", "1,,2"])
def test_bad_scale_factors_are_refused(text):
    from mmrec_ld4mrec.errors import UserInputError
    from mmrec_ld4mrec.study.scale import parse_factors

    with pytest.raises(UserInputError, match="--scale-factors"):
        parse_factors(text)


def test_large_generator_gives_contiguous_ids_and_every_split_per_user():
    from mmrec_ld4mrec.data.synthetic import generate_large

    df, features = generate_large(2000, 500)
    assert df.userID.max() + 1 == df.userID.nunique() and df.itemID.max() + 1 == df.itemID.nunique()
    assert not df.duplicated(["userID", "itemID"]).any()
    per_user = df.groupby("userID").x_label.nunique()
    assert (per_user == 3).all()  # at least three items: one each for training, validation and test
    assert all(f.shape[0] == df.itemID.nunique() for f in features.values())


@pytest.mark.parametrize("text", ["1371980", "x100", "100x", "5x100", "axb", "100x100x3"])
def test_bad_scale_shapes_are_refused(text):
    from mmrec_ld4mrec.errors import UserInputError
    from mmrec_ld4mrec.study.scale import parse_shape

    with pytest.raises(UserInputError, match="--scale-shape"):
        parse_shape(text)


def test_bench_model_specs_split_on_commas_outside_brackets():
    from mmrec_ld4mrec.study.bench import parse_spec, split_specs

    specs = split_specs("LD4MRec, DiffRec:steps=5:dims=[600,200],Pop")
    assert specs == ["LD4MRec", "DiffRec:steps=5:dims=[600,200]", "Pop"]
    assert parse_spec(specs[1]) == ("DiffRec", {"steps": 5, "dims": [600, 200]})
