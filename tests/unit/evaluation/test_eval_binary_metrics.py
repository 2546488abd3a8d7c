"""Point metrics: agreement with scikit-learn and brute force, hand-checkable cases, bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ehrpredict.evaluation import (
    MetricInputError,
    at_threshold,
    auprc,
    auroc,
    brier,
    calibration_slope_intercept,
    choose_threshold,
    ece,
)

# Scores drawn from a small grid so that ties (within and across classes) are common.
rows = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 8)), min_size=2, max_size=40)


def _split(data: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    y = np.array([r[0] for r in data])
    p = np.array([r[1] for r in data]) / 8.0
    return y, p


def brute_force_auroc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    score = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return score / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(rows)
def test_auroc_and_auprc_agree_with_sklearn_including_ties(data: list[tuple[int, int]]) -> None:
    y, p = _split(data)
    if y.min() == y.max():
        assert math.isnan(auroc(y, p)) and math.isnan(auprc(y, p))
        return
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auroc(y, p) == pytest.approx(brute_force_auroc(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(rows)
def test_brier_agrees_with_sklearn(data: list[tuple[int, int]]) -> None:
    y, p = _split(data)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p, labels=[0, 1]), abs=1e-12)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ([0.1, 0.2, 0.8, 0.9], 1.0),  # perfect ranking
        ([0.9, 0.8, 0.2, 0.1], 0.0),  # reversed
        ([0.5, 0.5, 0.5, 0.5], 0.5),  # all equal
        ([0.1, 0.6, 0.4, 0.9], 0.75),  # one discordant pair of four
    ],
)
def test_auroc_hand_cases(p: list[float], expected: float) -> None:
    assert auroc([0, 0, 1, 1], p) == expected


def test_auprc_hand_case() -> None:
    # Ranked: + (P=1, R=½), -, + (P=⅔, R=1) → ½·1 + ½·⅔.
    assert auprc([0, 1, 1], [0.2, 0.9, 0.1]) == pytest.approx(5 / 6)


def test_ece_hand_case() -> None:
    # Bin [0, .5): p=.25,.25, y=0,1 → |.5 − .25| = .25; bin [.5, 1]: p=1.0, y=1 → 0. Weighted: 2/3·.25.
    assert ece([0, 1, 1], [0.25, 0.25, 1.0], n_bins=2) == pytest.approx(0.25 * 2 / 3)
    assert ece([0, 1], [0.0, 1.0]) == 0.0


def test_single_class_gives_nan_not_exception() -> None:
    y, p = [1, 1, 1], [0.2, 0.5, 0.9]
    assert math.isnan(auroc(y, p))
    assert math.isnan(auprc(y, p))
    cal = calibration_slope_intercept(y, p)
    assert math.isnan(cal.slope) and math.isnan(cal.intercept)
    metrics = at_threshold(y, p, 0.5)
    assert metrics.sensitivity == pytest.approx(2 / 3)
    assert math.isnan(metrics.specificity)  # no negatives
    assert (metrics.ppv, metrics.npv) == (1.0, 0.0)  # the one predicted negative is a positive
    assert brier(y, p) == pytest.approx(((0.8**2) + 0.5**2 + 0.1**2) / 3)


def test_calibrated_sample_has_slope_one_intercept_zero() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(0.02, 0.98, 100_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    cal = calibration_slope_intercept(y, p)
    assert cal.slope == pytest.approx(1.0, abs=0.04)
    assert cal.intercept == pytest.approx(0.0, abs=0.04)
    # Over-confident predictions, logit doubled, must show slope ≈ ½ — the test can fail.
    over = calibration_slope_intercept(y, expit(2 * logit(p)))
    assert over.slope == pytest.approx(0.5, abs=0.03)
    shifted = calibration_slope_intercept(y, expit(logit(p) - 1.0))
    assert shifted.slope == pytest.approx(1.0, abs=0.04)
    assert shifted.intercept == pytest.approx(1.0, abs=0.05)


def test_calibration_separation_and_constant_p_give_nan() -> None:
    assert math.isnan(calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]).slope)
    assert math.isnan(calibration_slope_intercept([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]).slope)


def test_at_threshold_counts() -> None:
    # p >= .5 → predicted positive: rows 1,3. tp=1 (row 3), fp=1 (row 1), tn=1, fn=1.
    assert tuple(at_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)) == (0.5, 0.5, 0.5, 0.5)
    assert tuple(at_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.4)) == (1.0, 0.5, 2 / 3, 1.0)


def test_choose_threshold_rules() -> None:
    y = [0, 0, 0, 1, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert choose_threshold(y, p) == 0.4  # sens 1, spec ¾ — the unique Youden maximum
    assert choose_threshold(y, p, "sensitivity", target=0.6) == 0.6
    assert choose_threshold(y, p, "specificity", target=1.0) == 0.6
    assert choose_threshold(y, p, "specificity", target=0.5) == 0.3


def test_choose_threshold_rejects_bad_requests() -> None:
    with pytest.raises(MetricInputError, match="both classes"):
        choose_threshold([1, 1], [0.2, 0.3])
    with pytest.raises(MetricInputError, match="target"):
        choose_threshold([0, 1], [0.2, 0.3], "sensitivity")
    with pytest.raises(MetricInputError, match="rule"):
        choose_threshold([0, 1], [0.2, 0.3], "f1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 1, 1], [0.2, 0.3], "equal length, got 3 and 2"),
        ([0, 1], [0.2, 1.3], r"in \[0, 1\] in p, got 1.3"),
        ([0, 1], [0.2, float("nan")], r"in \[0, 1\] in p, got nan"),
        ([0, 2], [0.2, 0.3], "0/1 labels in y, got 2.0"),
        ([], [], "at least one row"),
    ],
)
def test_bad_input_raises_value_error(y: list[float], p: list[float], message: str) -> None:
    for metric in (auroc, auprc, brier, ece):
        with pytest.raises(ValueError, match=message):
            metric(y, p)
