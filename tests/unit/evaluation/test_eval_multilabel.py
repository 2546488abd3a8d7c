"""Multilabel metrics: scikit-learn agreement, absent labels out of macro averages, threshold tuning."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, f1_score

from ehrpredict.evaluation import multilabel_report, precision_at_k, tune_thresholds


@st.composite
def label_matrices(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    # k >= 2: scikit-learn reads an n×1 indicator matrix as a binary (two-class) target.
    n, k = draw(st.integers(2, 12)), draw(st.integers(2, 5))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n * k, max_size=n * k))).reshape(n, k)
    p = np.array(draw(st.lists(st.integers(0, 5), min_size=n * k, max_size=n * k))).reshape(n, k) / 5.0
    return y, p


@settings(max_examples=50, deadline=None)
@given(label_matrices(), st.integers(1, 4))
def test_f1_and_map_agree_with_sklearn_over_present_labels(data: tuple[np.ndarray, np.ndarray], t: int) -> None:
    y, p = data
    thresholds = np.full(y.shape[1], t / 5.0)
    report = multilabel_report(y, p, thresholds)
    pred = (p >= thresholds).astype(int)
    present = [j for j in range(y.shape[1]) if y[:, j].any()]
    assert report.labels_present == tuple(present)
    if not present:
        assert math.isnan(report.macro_f1) and math.isnan(report.mean_average_precision)
        return
    assert report.micro_f1 == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
    assert report.macro_f1 == pytest.approx(f1_score(y, pred, average="macro", labels=present))
    two_class = [j for j in present if not y[:, j].all()]
    if two_class:
        expected_map = np.mean([average_precision_score(y[:, j], p[:, j]) for j in two_class])
        assert report.mean_average_precision == pytest.approx(expected_map)


def test_macro_f1_ignores_absent_labels() -> None:
    # Label 0 is predicted perfectly (F1 = 1). Label 1 has no positive and no prediction: averaging it
    # in as F1 = 0 would give 0.5.
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.1], [0.8, 0.2]])
    report = multilabel_report(y, p, thresholds=[0.5, 0.5])
    assert report.macro_f1 == 1.0
    assert f1_score(y, p >= 0.5, average="macro", zero_division=0) == 0.5  # the error being avoided
    assert report.labels_present == (0,)
    assert report.per_label_f1[0] == 1.0 and math.isnan(report.per_label_f1[1])
    assert report.micro_f1 == 1.0
    assert report.mean_average_precision == 1.0


def test_absent_label_false_positives_still_count_in_micro_f1() -> None:
    y = np.array([[1, 0], [0, 0]])
    p = np.array([[0.9, 0.9], [0.1, 0.1]])
    report = multilabel_report(y, p, thresholds=[0.5, 0.5])
    assert report.macro_f1 == 1.0
    assert report.micro_f1 == pytest.approx(2 * 1 / (2 * 1 + 1))  # tp=1, fp=1, fn=0


def test_precision_at_k_hand_case() -> None:
    y = np.array([[1, 0, 0, 1], [0, 1, 1, 0]])
    p = np.array([[0.9, 0.8, 0.1, 0.7], [0.5, 0.4, 0.3, 0.2]])
    # Row 0 top-2 = labels 0, 1 → 1 true; row 1 top-2 = labels 0, 1 → 1 true.
    assert precision_at_k(y, p, k=2) == 0.5
    # Row 0 top-3 = 0, 1, 3 → 2 true; row 1 → 0, 1, 2 → 2 true.
    assert precision_at_k(y, p, k=3) == pytest.approx(2 / 3)
    assert precision_at_k(y, p, k=10) == 0.5  # k capped at the 4 labels
    assert multilabel_report(y, p, [0.5] * 4, k=2).precision_at_k == 0.5


@settings(max_examples=40, deadline=None)
@given(label_matrices())
def test_tuned_thresholds_reach_the_best_f1_of_any_candidate(data: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = data
    thresholds = tune_thresholds(y, p)
    for j in range(y.shape[1]):
        if not y[:, j].any():
            assert thresholds[j] == 0.5
            continue
        best = max(f1_score(y[:, j], p[:, j] >= c) for c in np.unique(p[:, j]))
        assert f1_score(y[:, j], p[:, j] >= thresholds[j]) == pytest.approx(best)


def test_tune_thresholds_hand_case() -> None:
    y = [[1, 0], [0, 0], [1, 1]]
    p = [[0.9, 0.2], [0.3, 0.1], [0.6, 0.7]]
    assert tune_thresholds(y, p).tolist() == [0.6, 0.7]


@pytest.mark.parametrize(
    ("y", "p", "thresholds", "message"),
    [
        ([[0, 1]], [[0.2, 0.3], [0.1, 0.1]], [0.5, 0.5], "equal n×k matrices"),
        ([[0, 1]], [[0.2, 0.3]], [0.5], "expected 2 thresholds"),
        ([[0, 1]], [[0.2, 0.3]], [0.5, 2.0], "expected 2 thresholds in"),
        ([[0, 3]], [[0.2, 0.3]], [0.5, 0.5], "0/1 labels in Y_true"),
        ([[0, 1]], [[0.2, -0.3]], [0.5, 0.5], r"\[0, 1\] in P"),
    ],
)
def test_bad_multilabel_input_raises(y: list, p: list, thresholds: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        multilabel_report(y, p, thresholds)
