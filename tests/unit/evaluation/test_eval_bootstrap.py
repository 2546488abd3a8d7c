"""Patient-level bootstrap, paired AUROC comparison and Holm adjustment."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ehrpredict.evaluation import (
    MetricInputError,
    at_threshold,
    auprc,
    auroc,
    binary_report,
    brier,
    calibration_slope_intercept,
    ece,
    holm,
    paired_delta_auroc,
    resample_weights,
)
from ehrpredict.evaluation.bootstrap import _metric_rows, bootstrap_p_value


def synthetic(n: int, seed: int, rows_per_patient: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A calibrated, informative model: y ~ Bernoulli(p) with p spread over (0.02, 0.98)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, p, np.arange(n) // rows_per_patient


def width(ci_low: float, ci_high: float) -> float:
    return ci_high - ci_low


def test_ci_contains_point_estimate_and_narrows_with_n() -> None:
    small = binary_report(*synthetic(300, seed=1), threshold=0.5, n_boot=300, seed=0)
    large = binary_report(*synthetic(6000, seed=1), threshold=0.5, n_boot=300, seed=0)
    for name in ("auroc", "auprc", "brier", "ece", "calibration_slope", "sensitivity", "specificity", "ppv", "npv"):
        for report in (small, large):
            est = getattr(report, name)
            # ECE is biased upward and resampling adds to the bias: its percentile interval can sit
            # wholly above the estimate of a calibrated model (documented on BinaryMetrics).
            assert name == "ece" or est.ci_low <= est.value <= est.ci_high, (name, est)
        assert width(getattr(large, name).ci_low, getattr(large, name).ci_high) < 0.5 * width(
            getattr(small, name).ci_low, getattr(small, name).ci_high
        ), name
    assert (small.n, small.n_patients, small.n_boot_degenerate) == (300, 300, 0)


def test_point_estimates_match_the_point_metrics() -> None:
    y, p, g = synthetic(500, seed=3, rows_per_patient=5)
    report = binary_report(y, p, g, threshold=0.4, n_boot=20, seed=0)
    assert report.auroc.value == auroc(y, p)
    assert report.auprc.value == auprc(y, p)
    assert report.brier.value == pytest.approx(brier(y, p))
    assert report.ece.value == pytest.approx(ece(y, p))
    assert report.calibration_slope.value == pytest.approx(calibration_slope_intercept(y, p).slope)
    assert report.sensitivity.value == pytest.approx(at_threshold(y, p, 0.4).sensitivity)
    assert (report.n_patients, report.prevalence) == (100, pytest.approx(y.mean()))


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    data = synthetic(400, seed=2, rows_per_patient=4)
    first = binary_report(*data, threshold=0.5, n_boot=200, seed=11)
    assert binary_report(*data, threshold=0.5, n_boot=200, seed=11) == first
    assert binary_report(*data, threshold=0.5, n_boot=200, seed=12).auroc != first.auroc


def test_resamples_keep_a_patients_rows_together() -> None:
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    weights = np.concatenate(list(resample_weights(groups, 4, n_boot=500, seed=0)))
    assert weights.shape == (500, 10)
    for patient in range(4):
        rows = weights[:, groups == patient]
        assert np.all(rows == rows[:, :1])
    # Each resample draws exactly 4 patients.
    per_patient = weights[:, [0, 3, 4, 6]]
    assert np.all(per_patient.sum(axis=1) == 4)


def test_weighted_resample_equals_metrics_on_the_materialised_resample() -> None:
    y, p, g = synthetic(60, seed=4, rows_per_patient=3)
    p = np.round(p, 1)  # ties
    w = next(resample_weights(g, 20, n_boot=5, seed=9))
    rows = _metric_rows(y.astype(float), p, w, threshold=0.5)
    for b in range(w.shape[0]):
        idx = np.repeat(np.arange(y.size), w[b].astype(int))
        yb, pb = y[idx], p[idx]
        assert rows["auroc"][b] == pytest.approx(auroc(yb, pb))
        assert rows["auprc"][b] == pytest.approx(auprc(yb, pb))
        assert rows["brier"][b] == pytest.approx(brier(yb, pb))
        assert rows["ece"][b] == pytest.approx(ece(yb, pb))
        assert rows["calibration_slope"][b] == pytest.approx(calibration_slope_intercept(yb, pb).slope, nan_ok=True)
        assert rows["ppv"][b] == pytest.approx(at_threshold(yb, pb, 0.5).ppv, nan_ok=True)


def test_patient_level_interval_is_wider_than_row_level_for_clustered_rows() -> None:
    # 40 patients with 50 identical rows each: the information is 40 observations, not 2,000.
    y_pat, p_pat, _ = synthetic(40, seed=5)
    y, p = np.repeat(y_pat, 50), np.repeat(p_pat, 50)
    patients = np.repeat(np.arange(40), 50)
    by_patient = binary_report(y, p, patients, threshold=0.5, n_boot=300, seed=0).auroc
    by_row = binary_report(y, p, np.arange(y.size), threshold=0.5, n_boot=300, seed=0).auroc
    assert by_patient.value == by_row.value
    # Expected ratio ≈ √50 ≈ 7.
    assert width(by_patient.ci_low, by_patient.ci_high) > 4 * width(by_row.ci_low, by_row.ci_high)


def test_single_class_report_is_nan_without_warnings() -> None:
    report = binary_report([0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4], threshold=0.25, n_boot=50)
    assert math.isnan(report.auroc.value) and math.isnan(report.auroc.ci_low)
    assert report.n_boot_degenerate == 50
    assert report.specificity.value == 0.5


def test_rare_positive_patient_gives_degenerate_resamples_left_out_of_the_interval() -> None:
    y = [1, 1, 0, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    report = binary_report(y, p, [1, 1, 2, 3, 4, 5, 6, 7], threshold=0.5, n_boot=400, seed=0)
    assert 0 < report.n_boot_degenerate < 400
    assert report.auroc.ci_low == report.auroc.ci_high == 1.0


def test_report_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="one group id per row"):
        binary_report([0, 1], [0.2, 0.3], [1], threshold=0.5)
    with pytest.raises(ValueError, match="threshold in"):
        binary_report([0, 1], [0.2, 0.3], [1, 2], threshold=1.5)
    with pytest.raises(MetricInputError, match="n_boot"):
        binary_report([0, 1], [0.2, 0.3], [1, 2], threshold=0.5, n_boot=0)


def test_paired_delta_of_identical_models_is_zero_with_p_one() -> None:
    y, p, g = synthetic(300, seed=6, rows_per_patient=3)
    assert paired_delta_auroc(y, p, p, g, n_boot=100, seed=0) == (0.0, 0.0, 0.0, 1.0, 100)


def test_paired_delta_detects_a_better_model_and_is_antisymmetric() -> None:
    y, p, g = synthetic(2000, seed=7, rows_per_patient=4)
    noise = np.random.default_rng(0).uniform(0, 1, y.size)
    worse = 0.5 * p + 0.5 * noise
    delta, low, high, p_value, n_boot = paired_delta_auroc(y, p, worse, g, n_boot=500, seed=0)
    assert delta == pytest.approx(auroc(y, p) - auroc(y, worse))
    assert 0 < low <= delta <= high
    assert n_boot == 500
    assert p_value == 2 / 501  # no resample crosses zero: the floor, never 0
    swapped = paired_delta_auroc(y, worse, p, g, n_boot=500, seed=0)
    assert swapped == pytest.approx((-delta, -high, -low, 2 / 501, 500))


def test_paired_resamples_make_the_interval_much_narrower_than_either_auroc_interval() -> None:
    y, p, g = synthetic(1000, seed=8, rows_per_patient=2)
    nudged = np.clip(p + np.random.default_rng(1).normal(0, 0.02, p.size), 0, 1)
    _, low, high, p_value, _ = paired_delta_auroc(y, p, nudged, g, n_boot=400, seed=0)
    single = binary_report(y, p, g, threshold=0.5, n_boot=400, seed=0).auroc
    assert width(low, high) < 0.25 * width(single.ci_low, single.ci_high)
    assert 2 / 401 <= p_value <= 1.0


def test_bootstrap_p_value_hand_computed() -> None:
    # min(1, 2(k+1)/(B+1)), k = resamples on the far side of zero, a resample of exactly 0 included
    assert bootstrap_p_value(0.1, np.full(199, 0.05)) == 0.01  # k = 0, B = 199: 2·1/200
    assert bootstrap_p_value(0.1, np.array([0.05] * 17 + [-0.01, 0.0])) == 0.3  # k = 2, B = 19: 2·3/20
    assert bootstrap_p_value(-0.1, np.array([-0.05] * 18 + [0.0])) == 0.2  # k = 1 (the tie), B = 19: 2·2/20
    assert bootstrap_p_value(-0.1, np.array([0.05] * 9 + [-0.05])) == 1.0  # k = 9, B = 10: 2·10/11, capped
    assert bootstrap_p_value(0.0, np.full(50, 0.02)) == 1.0  # no observed difference


def test_paired_p_value_drops_single_class_resamples_from_b() -> None:
    # 4 patients, 1 positive: resamples that miss it have one class and no AUROC
    y, g = [1, 0, 0, 0], [1, 2, 3, 4]
    result = paired_delta_auroc(y, [0.9, 0.1, 0.2, 0.3], [0.05, 0.1, 0.3, 0.4], g, n_boot=200, seed=0)
    assert 0 < result.n_boot < 200
    # a ranks the positive first, b last, in every resample with both classes: ΔAUROC is always 1
    assert result.delta == result.ci_low == result.ci_high == 1.0
    assert result.p_value == 2 / (result.n_boot + 1)


def test_holm_hand_computed() -> None:
    # Sorted: .005·4 = .02, .01·3 = .03, .03·2 = .06, .04·1 = .04 → monotone max → .06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([0.02]) == [0.02]
    assert holm([]) == []


def test_holm_is_monotone_in_the_raw_p_values() -> None:
    raw = np.random.default_rng(3).uniform(0, 0.2, 30)
    adjusted = np.array(holm(list(raw)))
    order = np.argsort(raw)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= raw)


def test_holm_rejects_values_outside_unit_interval() -> None:
    with pytest.raises(ValueError, match=r"p-values in \[0, 1\], got 1.2 at index 1"):
        holm([0.1, 1.2])
