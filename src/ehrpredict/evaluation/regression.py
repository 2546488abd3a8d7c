"""Regression metrics with patient-level bootstrap intervals: MAE, RMSE, R² (and the label mean).

The same resamples as the binary metrics (:func:`resample_weights`: patients drawn with replacement,
all of a drawn patient's rows kept), so intervals account for patients with several rows.

    >>> r = regression_report([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.0], groups=[1, 2, 3, 4], n_boot=20)
    >>> round(r.mae.value, 3), round(r.r2.value, 3)
    (0.25, 0.9)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrpredict.evaluation._validate import MetricInputError, check_groups, check_n_boot
from ehrpredict.evaluation.bootstrap import Estimate, percentile_ci, resample_weights

Array = NDArray[np.float64]


@dataclass(frozen=True)
class RegressionMetrics:
    n: int
    n_patients: int
    mean: float  # of the true values
    mae: Estimate
    rmse: Estimate
    r2: Estimate
    n_boot: int
    seed: int


def _rows(y: Array, pred: Array, w: Array) -> dict[str, Array]:
    """Weighted MAE, RMSE and R² for each row of weights (w: resamples × rows)."""
    total = w.sum(axis=1)
    error = pred - y
    mae = (w * np.abs(error)).sum(axis=1) / total
    mse = (w * error**2).sum(axis=1) / total
    mean = (w * y).sum(axis=1) / total
    variance = (w * (y[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(variance > 0, 1 - mse / variance, np.nan)
    return {"mae": mae, "rmse": np.sqrt(mse), "r2": r2}


def regression_report(
    y: ArrayLike, pred: ArrayLike, groups: ArrayLike | Sequence[Any], n_boot: int = 1000, seed: int = 0,
    level: float = 0.95,
) -> RegressionMetrics:
    """Point estimates and patient-level bootstrap percentile intervals of MAE, RMSE and R²."""
    y_ = np.asarray(y, dtype=np.float64)
    p_ = np.asarray(pred, dtype=np.float64)
    if y_.ndim != 1 or p_.shape != y_.shape:
        raise MetricInputError(f"expected y and pred as flat arrays of one length, got {y_.shape} and {p_.shape}")
    if y_.size == 0:
        raise MetricInputError("expected at least one row, got none")
    if not (np.isfinite(y_).all() and np.isfinite(p_).all()):
        raise MetricInputError("expected finite y and pred, got NaN or infinity")
    group_index, n_groups = check_groups(groups, y_.size)
    n_boot = check_n_boot(n_boot)
    points = _rows(y_, p_, np.ones((1, y_.size)))
    chunks = [_rows(y_, p_, w) for w in resample_weights(group_index, n_groups, n_boot, seed)]
    boots = {name: np.concatenate([c[name] for c in chunks]) for name in points}
    estimates = {name: Estimate(float(points[name][0]), *percentile_ci(boots[name], level)) for name in points}
    return RegressionMetrics(n=int(y_.size), n_patients=n_groups, mean=float(y_.mean()), n_boot=n_boot, seed=seed,
                             **estimates)
