"""Multilabel evaluation: per-label F1 thresholds, micro/macro F1, precision@k and mean AP.

Macro averages (macro-F1, mean AP) run only over labels *present* in the evaluated split, i.e. with
at least one positive row. A label with no positive has no defined recall; counting it as F1 = 0 —
what averaging over all labels does — drags macro-F1 down for reasons unrelated to the model (with
one present and one absent label it halves the score). The excluded labels are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrpredict.evaluation import _weighted
from ehrpredict.evaluation._validate import MetricInputError, as_labels, as_probabilities

Array = NDArray[np.float64]

# Threshold for a label with no positive in the tuning data: any threshold gives F1 = 0 there.
FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class MultilabelMetrics:
    """Multilabel scores on one split; ``per_label_f1`` is NaN for absent labels."""

    n: int
    n_labels: int
    labels_present: tuple[int, ...]
    micro_f1: float
    macro_f1: float
    precision_at_k: float
    k: int
    mean_average_precision: float
    per_label_f1: tuple[float, ...]


def _check_matrix(Y: ArrayLike, P: ArrayLike) -> tuple[Array, Array]:
    y, p = as_labels(Y, "Y_true"), as_probabilities(P, "P")
    if y.ndim != 2 or y.shape != p.shape:
        raise MetricInputError(f"expected Y_true and P as equal n×k matrices, got shapes {y.shape} and {p.shape}")
    if y.shape[0] == 0 or y.shape[1] == 0:
        raise MetricInputError(f"expected at least one row and one label, got shape {y.shape}")
    return y, p


def _best_f1_threshold(y: Array, p: Array) -> float:
    """The highest score s maximising F1 of ``p >= s`` for one label."""
    n_pos = y.sum()
    if n_pos == 0:
        return FALLBACK_THRESHOLD
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last_of_block = np.r_[ps[1:] != ps[:-1], True]
    tp = np.cumsum(ys)[last_of_block]
    predicted = (np.arange(1, ps.size + 1))[last_of_block]
    f1 = 2 * tp / (predicted + n_pos)
    return float(ps[last_of_block][int(np.argmax(f1))])


def tune_thresholds(Y_tune: ArrayLike, P_tune: ArrayLike) -> NDArray[np.float64]:
    """Per-label threshold maximising F1 on the tuning split (``p >= t`` is positive), shape (k,).

    Candidates are each label's distinct scores; on ties the highest threshold wins. A label with no
    positive in the tuning data gets ``FALLBACK_THRESHOLD`` (0.5).

    >>> tune_thresholds([[1, 0], [0, 0], [1, 1]], [[0.9, 0.2], [0.3, 0.1], [0.6, 0.7]]).tolist()
    [0.6, 0.7]
    """
    y, p = _check_matrix(Y_tune, P_tune)
    return np.array([_best_f1_threshold(y[:, j], p[:, j]) for j in range(y.shape[1])])


def _f1(tp: Array, fp: Array, fn: Array) -> Array:
    den = 2 * tp + fp + fn
    return _weighted.ratio(2 * tp, den, valid=den > 0)


def precision_at_k(Y_true: ArrayLike, P: ArrayLike, k: int = 5) -> float:
    """Mean over rows of (true labels among the row's top-k scores) / k.

    k is capped at the number of labels. Tied scores are broken by label order (lower index first).

    >>> precision_at_k([[1, 0, 0], [0, 1, 1]], [[0.9, 0.8, 0.1], [0.5, 0.4, 0.3]], k=2)
    0.5
    """
    y, p = _check_matrix(Y_true, P)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MetricInputError(f"expected k to be a positive integer, got {k!r}")
    k_eff = min(int(k), y.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :k_eff]
    return float(np.take_along_axis(y, top, axis=1).sum(axis=1).mean() / k_eff)


def multilabel_report(Y_true: ArrayLike, P: ArrayLike, thresholds: ArrayLike, k: int = 5) -> MultilabelMetrics:
    """Micro-F1, macro-F1, precision@k and mean AP of an n×k probability matrix.

    ``thresholds`` (shape (k,)) should come from :func:`tune_thresholds` on a tuning split. Micro-F1
    pools all labels. Macro-F1 and mean average precision average only over labels with at least one
    positive in ``Y_true`` (absent labels are excluded, not counted as 0); both are NaN when no label
    is present.
    """
    y, p = _check_matrix(Y_true, P)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (y.shape[1],) or not np.all((t >= 0) & (t <= 1)):
        raise MetricInputError(f"expected {y.shape[1]} thresholds in [0, 1], got {t.tolist()!r}")
    pred = (p >= t).astype(np.float64)
    tp, fp, fn = (pred * y).sum(axis=0), (pred * (1 - y)).sum(axis=0), ((1 - pred) * y).sum(axis=0)
    present = np.flatnonzero(y.sum(axis=0) > 0)
    per_label = np.where(y.sum(axis=0) > 0, _f1(tp, fp, fn), np.nan)
    micro = _f1(np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()]))[0]
    ones = np.ones((1, y.shape[0]))
    ap = [_weighted.average_precision(y[:, j], p[:, j], ones)[0] for j in present]
    # One-class labels (every row positive) give NaN AP; they are left out of the mean too.
    ap_finite = [v for v in ap if np.isfinite(v)]
    return MultilabelMetrics(
        n=int(y.shape[0]),
        n_labels=int(y.shape[1]),
        labels_present=tuple(int(j) for j in present),
        micro_f1=float(micro),
        macro_f1=float(per_label[present].mean()) if present.size else float("nan"),
        precision_at_k=precision_at_k(y, p, k),
        k=int(k),
        mean_average_precision=float(np.mean(ap_finite)) if ap_finite else float("nan"),
        per_label_f1=tuple(float(v) for v in per_label),
    )
