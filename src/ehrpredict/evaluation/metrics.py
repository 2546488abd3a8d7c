"""Point metrics for binary risk predictions, in numpy/scipy only.

All functions take 0/1 labels ``y`` and probabilities ``p`` of equal length. Malformed input (length
mismatch, labels other than 0/1, probabilities outside [0, 1] or NaN, empty input) raises
:class:`MetricInputError` (a ``ValueError``). Input with a single class is not an error: metrics that
need both classes return NaN.

>>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ehrpredict.evaluation import _weighted
from ehrpredict.evaluation._validate import MetricInputError, check_binary, check_threshold

ThresholdRule = Literal["youden", "sensitivity", "specificity", "alert_rate"]


class ThresholdMetrics(NamedTuple):
    """Operating-point metrics; a ratio with an empty denominator is NaN."""

    sensitivity: float
    specificity: float
    ppv: float
    npv: float


class Calibration(NamedTuple):
    """Logistic recalibration y ~ intercept + slope·logit(p) (see :func:`calibration_slope_intercept`)."""

    slope: float
    intercept: float


def _ones(n: int) -> np.ndarray:
    return np.ones((1, n))


def auroc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve; ties between a positive and a negative count one half.

    >>> auroc([0, 1], [0.3, 0.3])
    0.5
    """
    y_, p_ = check_binary(y, p)
    return float(_weighted.auroc(y_, p_, _ones(y_.size))[0])


def auprc(y: ArrayLike, p: ArrayLike) -> float:
    """Average precision Σ_k (R_k − R_{k−1}) P_k, as scikit-learn defines it (no interpolation).

    NaN when ``y`` has a single class.

    >>> auprc([0, 1, 1], [0.2, 0.9, 0.1])  # (½·1 + ½·⅔)
    0.8333333333333333
    """
    y_, p_ = check_binary(y, p)
    return float(_weighted.average_precision(y_, p_, _ones(y_.size))[0])


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Mean squared error of the probabilities (defined for a single class too).

    >>> brier([0, 1], [0.0, 0.5])
    0.125
    """
    y_, p_ = check_binary(y, p)
    return float(_weighted.brier(y_, p_, _ones(y_.size))[0])


def ece(y: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: Σ_bins (n_bin / n)·|observed rate − mean predicted| over ``n_bins``
    equal-width bins of [0, 1] (bin i holds [i/n_bins, (i+1)/n_bins); p = 1 joins the last bin).

    >>> ece([0, 1], [0.25, 0.75], n_bins=2)
    0.25
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise MetricInputError(f"expected n_bins to be a positive integer, got {n_bins!r}")
    y_, p_ = check_binary(y, p)
    return float(_weighted.ece(y_, p_, _ones(y_.size), int(n_bins))[0])


def calibration_slope_intercept(y: ArrayLike, p: ArrayLike) -> Calibration:
    """Slope b and intercept a of the logistic recalibration fit y ~ a + b·logit(p).

    ``p`` is clipped to [1e-6, 1 − 1e-6] before the logit. The intercept is the one of this joint
    two-parameter fit — not "calibration-in-the-large" (the intercept refitted with the slope fixed at
    1, i.e. with logit(p) as an offset). A calibrated model has slope ≈ 1 and intercept ≈ 0; slope < 1
    means over-confident predictions. Both are NaN for a single class, constant p, perfect
    separation, or if Newton's method does not converge in 50 steps.
    """
    y_, p_ = check_binary(y, p)
    a, b = _weighted.calibration(y_, p_, _ones(y_.size))
    return Calibration(slope=float(b[0]), intercept=float(a[0]))


def at_threshold(y: ArrayLike, p: ArrayLike, t: float) -> ThresholdMetrics:
    """Sensitivity, specificity, PPV and NPV when ``p >= t`` is called positive.

    >>> at_threshold([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5)
    ThresholdMetrics(sensitivity=0.5, specificity=0.5, ppv=0.5, npv=0.5)
    """
    y_, p_ = check_binary(y, p)
    tp, fp, tn, fn = (float(v[0]) for v in _weighted.confusion(y_, p_, _ones(y_.size), check_threshold(t, "t")))
    return ThresholdMetrics(_safe(tp, tp + fn), _safe(tn, tn + fp), _safe(tp, tp + fp), _safe(tn, tn + fn))


def _safe(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def choose_threshold(
    y_tune: ArrayLike, p_tune: ArrayLike, rule: ThresholdRule = "youden", target: float | None = None
) -> float:
    """Pick a threshold on tuning data; rows with ``p >= threshold`` are called positive.

    Candidates are the distinct values of ``p_tune``. Rules:

    - ``"youden"``: maximise sensitivity + specificity − 1 (the highest such threshold on ties);
    - ``"sensitivity"``: the highest threshold whose sensitivity is at least ``target``;
    - ``"specificity"``: the lowest threshold whose specificity is at least ``target``;
    - ``"alert_rate"``: the lowest threshold that flags at most a ``target`` share of the rows.

    Unlike the metrics, tuning data with a single class is an error: no threshold is meaningful and a
    NaN would silently propagate into every operating-point metric downstream.

    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8])
    0.6
    """
    if rule not in ("youden", "sensitivity", "specificity", "alert_rate"):
        raise MetricInputError(f"expected rule 'youden', 'sensitivity', 'specificity' or 'alert_rate', got {rule!r}")
    y_, p_ = check_binary(y_tune, p_tune)
    if y_.min() == y_.max():
        raise MetricInputError(f"expected both classes in the tuning labels, got only {int(y_[0])}")
    candidates, sens, spec = _roc_points(y_, p_)
    if rule == "youden":
        return float(candidates[int(np.argmax(sens + spec))])
    if target is None or not 0.0 <= target <= 1.0:
        raise MetricInputError(f"expected a target in [0, 1] for rule {rule!r}, got {target!r}")
    if rule == "sensitivity":
        return float(candidates[int(np.flatnonzero(sens >= target)[0])])
    if rule == "alert_rate":
        # candidates descend, so the share of rows flagged (p >= candidate) ascends
        flagged = np.searchsorted(np.sort(-p_), -candidates, side="right") / p_.size
        within = np.flatnonzero(flagged <= target)
        if within.size == 0:
            raise MetricInputError(
                f"expected some threshold to flag at most {target} of the rows, got at least {flagged[0]:.4f} "
                "(the highest score is shared by too many rows)"
            )
        return float(candidates[int(within[-1])])
    reaching = np.flatnonzero(spec >= target)
    if reaching.size == 0:
        raise MetricInputError(
            f"expected some threshold to reach specificity {target}, got at most {spec.max():.4f} "
            "(the highest score is shared by too many negatives)"
        )
    return float(candidates[int(reaching[-1])])


def _roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores in descending order with the sensitivity and specificity of ``p >= score``."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last_of_block = np.r_[ps[1:] != ps[:-1], True]
    tp, fp = np.cumsum(ys)[last_of_block], np.cumsum(1 - ys)[last_of_block]
    return ps[last_of_block], tp / ys.sum(), 1 - fp / (ys.size - ys.sum())
