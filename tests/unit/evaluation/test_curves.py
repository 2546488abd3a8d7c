import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ehrpredict.evaluation import MetricInputError
from ehrpredict.evaluation.curves import binary_curves


def test_small_example_by_hand() -> None:
    # Thresholds from high to low: 0.8 (a positive), 0.4 (a negative), 0.35 (a positive), 0.1 (a negative).
    c = binary_curves([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert c["roc"] == {"fpr": [0.0, 0.0, 0.5, 0.5, 1.0], "tpr": [0.0, 0.5, 0.5, 1.0, 1.0]}
    assert c["pr"]["recall"] == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert c["pr"]["precision"] == [1.0, 1.0, 0.5, 0.6667, 0.5]  # 2/3 rounded to 4 decimals
    # Each probability falls in its own tenth: bins [0.1, 0.2), [0.3, 0.4), [0.4, 0.5), [0.8, 0.9).
    assert c["calibration"] == {"mean_predicted": [0.1, 0.35, 0.4, 0.8], "observed": [0.0, 1.0, 0.0, 1.0],
                                "n": [1, 1, 1, 1]}


def test_a_perfect_classifier_passes_through_the_top_left_corner() -> None:
    c = binary_curves([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.9])
    points = list(zip(c["roc"]["fpr"], c["roc"]["tpr"], strict=True))
    assert (0.0, 1.0) in points and points[0] == (0.0, 0.0) and points[-1] == (1.0, 1.0)
    assert all(x == 0.0 or y == 1.0 for x, y in points)  # straight up the left edge, then along the top
    assert min(c["pr"]["precision"]) == pytest.approx(0.4)  # recall 1 at the lowest threshold: 2 of 5
    assert 1.0 in c["pr"]["precision"][1:]  # recall 1 reached at precision 1


@pytest.mark.parametrize("max_points", [2, 5, 101])
def test_curves_are_thinned_to_max_points_keeping_end_points_and_order(max_points: int) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.clip(0.3 * y + 0.7 * rng.random(5000), 0.0, 1.0)
    c = binary_curves(y, p, max_points=max_points)
    fpr, tpr = np.array(c["roc"]["fpr"]), np.array(c["roc"]["tpr"])
    recall = np.array(c["pr"]["recall"])
    assert 2 <= fpr.size <= max_points and fpr.size == tpr.size
    assert 2 <= recall.size <= max_points and recall.size == len(c["pr"]["precision"])
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (recall[0], recall[-1]) == (0.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(recall) >= 0).all()


def test_thinned_roc_keeps_the_area() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 5000)
    p = 1 / (1 + np.exp(-(2.0 * y - 1.0 + rng.normal(size=5000))))
    c = binary_curves(y, p)
    fpr, tpr = np.array(c["roc"]["fpr"]), np.array(c["roc"]["tpr"])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc_score(y, p), abs=0.005)


def test_calibration_bins_are_equal_width_non_empty_and_count_every_row() -> None:
    # 0.05 twice in the first bin; 0.95 and 1.0 in the last (p = 1 joins it, as in the ECE).
    c = binary_curves([0, 1, 1, 0], [0.05, 0.05, 0.95, 1.0])
    assert c["calibration"] == {"mean_predicted": [0.05, 0.975], "observed": [0.5, 0.5], "n": [2, 2]}
    rng = np.random.default_rng(2)
    y, p = rng.integers(0, 2, 777), rng.random(777) ** 3
    calibration = binary_curves(y, p)["calibration"]
    assert sum(calibration["n"]) == 777 and all(n > 0 for n in calibration["n"])
    assert calibration["mean_predicted"] == sorted(calibration["mean_predicted"])


def test_output_is_json_safe_and_rounded() -> None:
    rng = np.random.default_rng(3)
    c = binary_curves(rng.integers(0, 2, 300), rng.random(300))
    assert json.loads(json.dumps(c)) == c
    values = [v for curve in c.values() for series in curve.values() for v in series]
    assert all(type(v) in (float, int) for v in values)
    assert all(round(v, 4) == v for v in values)


@pytest.mark.parametrize(("y", "p", "max_points", "message"), [
    ([1, 1, 1], [0.2, 0.5, 0.9], 101, "expected both classes in y"),
    ([0, 1], [0.2, 0.5, 0.9], 101, "equal length"),
    ([0, 1], [0.2, 1.5], 101, "expected probabilities in [0, 1]"),
    ([0, 2], [0.2, 0.5], 101, "expected only 0/1 labels"),
    ([], [], 101, "at least one row"),
    ([0, 1], [0.2, 0.5], 1, "max_points"),
    ([0, 1], [0.2, 0.5], True, "max_points"),
])
def test_bad_input_is_named(y: list[int], p: list[float], max_points: int, message: str) -> None:
    with pytest.raises(MetricInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        binary_curves(y, p, max_points=max_points)
