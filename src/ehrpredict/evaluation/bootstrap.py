"""Patient-level bootstrap confidence intervals, paired model comparison and Holm adjustment.

Rows of one patient are correlated, so resampling rows would understate the uncertainty. Here each
resample draws *patients* with replacement and keeps all of a drawn patient's rows; a patient drawn
twice contributes its rows twice. Internally a resample is a weight per row (how many times its
patient was drawn), so every metric is computed from one sort of the scores (see ``_weighted``).

A paired comparison's p-value is ``min(1, 2 (k + 1) / (B + 1))`` with ``k`` of the ``B`` resampled
differences on the far side of zero (:func:`bootstrap_p_value`): never 0, at least ``2 / (B + 1)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrpredict.evaluation import _weighted
from ehrpredict.evaluation._validate import (
    MetricInputError,
    check_binary,
    check_groups,
    check_n_boot,
    check_threshold,
)

Array = NDArray[np.float64]

# Resamples are processed in chunks of about this many (resample × row) weights, to bound memory.
CHUNK_CELLS = 2_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a percentile bootstrap interval (NaN when undefined)."""

    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class BinaryMetrics:
    """Everything :func:`binary_report` measures on one evaluation split.

    ``n_boot_degenerate`` counts resamples that drew a single class; they are left out of the
    intervals of metrics that need both classes. ``ece`` (10 equal-width bins) is biased upward,
    and a resample — with duplicated patients and fewer distinct ones — more so: for a
    well-calibrated model its percentile interval can lie entirely above the point estimate. Read
    it as "how large ECE plausibly is", not as an interval centred on the truth.
    """

    n: int
    n_patients: int
    prevalence: float
    threshold: float
    auroc: Estimate
    auprc: Estimate
    brier: Estimate
    ece: Estimate
    calibration_slope: Estimate
    calibration_intercept: Estimate
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    n_boot: int
    n_boot_degenerate: int
    seed: int


def resample_weights(group_index: NDArray[np.intp], n_groups: int, n_boot: int, seed: int) -> Iterator[Array]:
    """Yield (chunk, n_rows) row weights of ``n_boot`` patient-level resamples, seeded.

    A row's weight is the number of times its patient was drawn, so a patient's rows always share
    one weight. The draws depend only on (groups, n_boot, seed), so two models evaluated with the
    same arguments see the same resamples.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // max(group_index.size, n_groups))
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        draws = rng.integers(0, n_groups, size=(m, n_groups))
        offsets = (np.arange(m) * n_groups)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=m * n_groups).reshape(m, n_groups)
        yield counts[:, group_index].astype(np.float64)


def _metric_rows(y: Array, p: Array, w: Array, threshold: float) -> dict[str, Array]:
    """All metrics of :class:`BinaryMetrics` for each row of weights (private, so a dict is fine)."""
    tp, fp, tn, fn = _weighted.confusion(y, p, w, threshold)
    intercept, slope = _weighted.calibration(y, p, w)
    return {
        "auroc": _weighted.auroc(y, p, w),
        "auprc": _weighted.average_precision(y, p, w),
        "brier": _weighted.brier(y, p, w),
        "ece": _weighted.ece(y, p, w, n_bins=10),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "sensitivity": _weighted.ratio(tp, tp + fn, valid=(tp + fn) > 0),
        "specificity": _weighted.ratio(tn, tn + fp, valid=(tn + fp) > 0),
        "ppv": _weighted.ratio(tp, tp + fp, valid=(tp + fp) > 0),
        "npv": _weighted.ratio(tn, tn + fn, valid=(tn + fn) > 0),
    }


def percentile_ci(values: Array, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite ``values``; (NaN, NaN) when there are none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def binary_report(
    y: ArrayLike,
    p: ArrayLike,
    groups: ArrayLike | Sequence[Any],
    threshold: float,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BinaryMetrics:
    """Point estimates and patient-level bootstrap percentile intervals of the binary metrics.

    ``groups`` holds each row's patient id; ``threshold`` (chosen on a tuning split, e.g. with
    :func:`choose_threshold`) defines the operating point for sensitivity/specificity/PPV/NPV.

    >>> r = binary_report([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], groups=[1, 1, 2, 3], threshold=0.5, n_boot=50)
    >>> r.auroc.value, r.n_patients
    (1.0, 3)
    """
    y_, p_ = check_binary(y, p)
    group_index, n_groups = check_groups(groups, y_.size)
    t, n_boot = check_threshold(threshold), check_n_boot(n_boot)
    if not 0.0 < level < 1.0:
        raise MetricInputError(f"expected level in (0, 1), got {level!r}")
    points = _metric_rows(y_, p_, np.ones((1, y_.size)), t)
    chunks = [_metric_rows(y_, p_, w, t) for w in resample_weights(group_index, n_groups, n_boot, seed)]
    boots = {name: np.concatenate([c[name] for c in chunks]) for name in points}
    estimates = {name: Estimate(float(points[name][0]), *percentile_ci(boots[name], level)) for name in points}
    return BinaryMetrics(
        n=int(y_.size),
        n_patients=n_groups,
        prevalence=float(y_.mean()),
        threshold=t,
        n_boot=n_boot,
        n_boot_degenerate=int(np.isnan(boots["auroc"]).sum()),
        seed=seed,
        **estimates,
    )


class PairedDelta(NamedTuple):
    """:func:`paired_delta_auroc`'s result; ``n_boot``: the resamples the interval and p-value rest on
    (single-class resamples left out), so the p-value's floor is ``2 / (n_boot + 1)``."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    n_boot: int


def paired_delta_auroc(
    y: ArrayLike,
    p_a: ArrayLike,
    p_b: ArrayLike,
    groups: ArrayLike | Sequence[Any],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDelta:
    """AUROC(a) − AUROC(b) with a paired patient-level bootstrap, its interval and two-sided p-value.

    Both models are scored on the *same* resamples, so the interval reflects the correlation between
    them. Single-class resamples are dropped; the p-value is :func:`bootstrap_p_value` over the rest.

    >>> paired_delta_auroc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], [0.1, 0.9, 0.2, 0.8], [1, 2, 3, 4], 20)[:4]
    (0.0, 0.0, 0.0, 1.0)
    """
    y_, a_ = check_binary(y, p_a)
    _, b_ = check_binary(y, p_b)
    group_index, n_groups = check_groups(groups, y_.size)
    n_boot = check_n_boot(n_boot)
    ones = np.ones((1, y_.size))
    delta = float((_weighted.auroc(y_, a_, ones) - _weighted.auroc(y_, b_, ones))[0])
    deltas = np.concatenate(
        [
            _weighted.auroc(y_, a_, w) - _weighted.auroc(y_, b_, w)
            for w in resample_weights(group_index, n_groups, n_boot, seed)
        ]
    )
    deltas = deltas[np.isfinite(deltas)]
    low, high = percentile_ci(deltas, level)
    if deltas.size == 0 or not np.isfinite(delta):
        return PairedDelta(delta, low, high, float("nan"), int(deltas.size))
    return PairedDelta(delta, low, high, bootstrap_p_value(delta, deltas), int(deltas.size))


def bootstrap_p_value(observed: float, resampled: Array) -> float:
    """Two-sided bootstrap p-value that the true difference is 0: ``min(1, 2 (k + 1) / (B + 1))``.

    ``B`` is the number of resampled differences and ``k`` the number on the far side of zero from
    ``observed``: ``<= 0`` when ``observed > 0``, ``>= 0`` when ``observed < 0`` (a resample of exactly
    0 counts as far side). The ``+ 1`` counts the observed sample as one of the draws, so the p-value is
    never 0: when no resample crosses zero it is ``2 / (B + 1)``, the resolution of B resamples, and
    means "at most about that". An ``observed`` difference of exactly 0 gives 1.

    >>> bootstrap_p_value(0.1, np.array([0.2, 0.05, 0.3]))  # k = 0, B = 3: 2 / 4
    0.5
    >>> bootstrap_p_value(-0.1, np.array([-0.2, 0.0] + [-0.1] * 17))  # k = 1 (the tie), B = 19: 4 / 20
    0.2
    """
    if observed == 0:
        return 1.0
    far = np.count_nonzero(resampled <= 0) if observed > 0 else np.count_nonzero(resampled >= 0)
    return float(min(1.0, 2 * (far + 1) / (resampled.size + 1)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    The i-th smallest of m p-values is multiplied by (m − i + 1), capped at 1, and made monotone
    (never smaller than the adjusted value before it). Reject at level α where adjusted ≤ α.

    >>> holm([0.01, 0.04, 0.03, 0.005])
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise MetricInputError(f"expected a flat sequence of p-values, got shape {p.shape}")
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise MetricInputError(
            f"expected p-values in [0, 1], got {float(p[bad][0])!r} at index {int(np.flatnonzero(bad)[0])}"
        )
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]
