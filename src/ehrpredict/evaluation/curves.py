"""ROC, precision-recall and calibration curves of a binary prediction, small enough to store in a report.

The points go to ``report.json`` and are drawn by :mod:`ehrpredict.reporting.svg`, so they are plain
lists of floats rounded to 4 decimals, and the ROC and PR curves are thinned to at most ``max_points``
points (a held-out split of 10,000 rows would otherwise store up to 10,000 thresholds per model).

    >>> c = binary_curves([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> c["roc"]["fpr"], c["roc"]["tpr"]
    ([0.0, 0.0, 0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0, 1.0])
    >>> c["calibration"]["n"]
    [1, 1, 1, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrpredict.evaluation._validate import MetricInputError, check_binary

CALIBRATION_BINS = 10  # equal-width bins of [0, 1], as in the ECE


def binary_curves(y: ArrayLike, p: ArrayLike, max_points: int = 101) -> dict[str, Any]:
    """ROC (fpr, tpr), PR (recall, precision) and calibration (per non-empty bin) points as JSON-safe lists.

    ROC points run from (0, 0) to (1, 1) and PR points by increasing recall, from sklearn's (recall 0,
    precision 1) end point to recall 1; both keep their end points when thinned. Calibration uses 10
    equal-width bins of the predicted probability (p = 1 joins the last bin) and lists only non-empty
    bins: mean predicted probability, observed event rate and row count.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_, p_ = check_binary(y, p)
    if isinstance(max_points, bool) or not isinstance(max_points, int | np.integer) or max_points < 2:
        raise MetricInputError(f"expected max_points to be an integer >= 2, got {max_points!r}")
    classes = np.unique(y_)
    if classes.size < 2:
        raise MetricInputError(f"expected both classes in y for ROC and PR curves, got only {int(classes[0])}")
    fpr, tpr, _ = roc_curve(y_, p_, drop_intermediate=True)
    precision, recall, _ = precision_recall_curve(y_, p_, drop_intermediate=True)
    recall, precision = recall[::-1], precision[::-1]  # sklearn lists recall decreasing
    roc = _thin(fpr, tpr, int(max_points))
    pr = _thin(recall, precision, int(max_points))
    return {
        "roc": {"fpr": _rounded(fpr[roc]), "tpr": _rounded(tpr[roc])},
        "pr": {"recall": _rounded(recall[pr]), "precision": _rounded(precision[pr])},
        "calibration": _calibration(y_, p_),
    }


def _thin(x: NDArray[np.float64], y: NDArray[np.float64], max_points: int) -> NDArray[np.intp]:
    """Indices of at most ``max_points`` points, first and last included, in their original order.

    Points are taken at even steps of distance travelled along the curve rather than of index, so a
    stretch where the curve moves a lot keeps more points than a stretch where thresholds crowd one spot.
    """
    n = x.size
    if n <= max_points:
        return np.arange(n, dtype=np.intp)
    travelled = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    targets = np.linspace(0.0, travelled[-1], max_points)
    picked = np.searchsorted(travelled, targets, side="left").clip(0, n - 1)
    picked[0], picked[-1] = 0, n - 1
    return np.unique(picked).astype(np.intp)


def _calibration(y: NDArray[np.float64], p: NDArray[np.float64]) -> dict[str, list[Any]]:
    bins = np.minimum((p * CALIBRATION_BINS).astype(np.intp), CALIBRATION_BINS - 1)
    counts = np.bincount(bins, minlength=CALIBRATION_BINS)
    predicted = np.bincount(bins, weights=p, minlength=CALIBRATION_BINS)
    observed = np.bincount(bins, weights=y, minlength=CALIBRATION_BINS)
    used = np.flatnonzero(counts)
    return {
        "mean_predicted": _rounded(predicted[used] / counts[used]),
        "observed": _rounded(observed[used] / counts[used]),
        "n": [int(c) for c in counts[used]],
    }


def _rounded(values: NDArray[np.float64]) -> list[float]:
    return [round(float(v), 4) for v in values]
