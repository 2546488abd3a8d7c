"""Regression metrics with patient-level bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from ehrpredict.evaluation import MetricInputError
from ehrpredict.evaluation.regression import regression_report


def test_point_estimates_match_their_definitions() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    p = np.array([1.5, 2.0, 2.0, 5.0, 8.0])
    r = regression_report(y, p, groups=[1, 2, 3, 4, 5], n_boot=50)
    errors = p - y
    assert r.mae.value == pytest.approx(np.abs(errors).mean())
    assert r.rmse.value == pytest.approx(np.sqrt((errors**2).mean()))
    assert r.r2.value == pytest.approx(1 - (errors**2).sum() / ((y - y.mean()) ** 2).sum())
    assert (r.n, r.n_patients, r.mean) == (5, 5, pytest.approx(4.0))


def test_intervals_hold_the_point_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    p = y + rng.normal(0, 0.5, 300)
    groups = np.repeat(np.arange(100), 3)
    a = regression_report(y, p, groups, n_boot=200, seed=1)
    b = regression_report(y, p, groups, n_boot=200, seed=1)
    assert a == b
    for estimate in (a.mae, a.rmse, a.r2):
        assert estimate.ci_low <= estimate.value <= estimate.ci_high


def test_patients_not_rows_are_resampled() -> None:
    """Rows of one patient move together: with 3 identical rows per patient the interval is as wide
    as with one row per patient, not narrower."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    p = y + rng.normal(0, 1, 60)
    single = regression_report(y, p, np.arange(60), n_boot=400, seed=0)
    tripled = regression_report(np.repeat(y, 3), np.repeat(p, 3), np.repeat(np.arange(60), 3), n_boot=400, seed=0)
    width = single.mae.ci_high - single.mae.ci_low
    assert tripled.mae.ci_high - tripled.mae.ci_low == pytest.approx(width, rel=0.25)


def test_constant_truth_has_no_r2_and_bad_input_is_named() -> None:
    r = regression_report([2.0, 2.0, 2.0], [1.0, 2.0, 3.0], [1, 2, 3], n_boot=20)
    assert np.isnan(r.r2.value)
    with pytest.raises(MetricInputError, match="one length"):
        regression_report([1.0, 2.0], [1.0], [1, 2])
    with pytest.raises(MetricInputError, match="finite"):
        regression_report([1.0, float("nan")], [1.0, 2.0], [1, 2])
