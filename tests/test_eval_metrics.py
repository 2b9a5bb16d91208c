"""R² equals the reference (sklearn and a hand computation); constant targets are NaN."""

import numpy as np
import pytest
from sklearn.metrics import r2_score

from rpnt.scoring.metrics import r2_per_axis, r2_report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_r2_equals_sklearn_on_random_data(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(500, 2)) * [3.0, 0.5] + [1.0, -2.0]
    pred = y + rng.normal(size=y.shape) * [2.0, 0.4]
    ours = r2_per_axis(y, pred)
    ref = r2_score(y, pred, multioutput="raw_values")
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    rep = r2_report(y, pred)
    assert rep["vx"] == pytest.approx(ref[0]) and rep["vy"] == pytest.approx(ref[1])
    # mean of the per-axis R² ("then averaged"), which sklearn calls uniform_average
    assert rep["mean"] == pytest.approx(r2_score(y, pred, multioutput="uniform_average"))


def test_r2_hand_computation_and_negative_values():
    y = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0], [4.0, 1.0]])
    pred = np.array([[1.5, 1.0], [2.0, 0.0], [2.5, 1.0], [4.0, 0.0]])
    # axis 0: SS_res = .25 + 0 + .25 + 0 = .5, SS_tot = 5 -> .9
    # axis 1: SS_res = 4, SS_tot = 1 -> -3
    np.testing.assert_allclose(r2_per_axis(y, pred), [0.9, -3.0])
    assert r2_report(y, pred)["mean"] == pytest.approx(-1.05)


def test_r2_constant_target_is_undefined_not_perfect():
    y = np.column_stack([np.full(10, 2.0), np.arange(10.0)])
    rep = r2_report(y, y.copy())
    assert np.isnan(rep["vx"]) and rep["vy"] == pytest.approx(1.0)
    assert np.isnan(rep["mean"])


def test_r2_rejects_bad_input():
    with pytest.raises(ValueError):
        r2_per_axis(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError):
        r2_per_axis(np.array([[np.nan, 1.0], [1.0, 2.0]]), np.zeros((2, 2)))
