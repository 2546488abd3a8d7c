"""Weighted metric kernels: one computation serves point estimates and bootstraps.

Every kernel takes validated ``y`` (n,) and ``p`` (n,) and a weight matrix ``w`` of shape (B, n) and
returns one value per row of ``w``. A point estimate uses ``w = ones((1, n))``; a bootstrap resample
uses the number of times each row was drawn. Because resampling only changes weights, the sort of
``p`` is done once and no resample is ever sorted again — that is what makes 1,000 resamples cheap.
A resample with one class only yields NaN where the metric needs both classes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

Array = NDArray[np.float64]

LOGIT_CLIP = 1e-6


def _tie_blocks(p: Array, descending: bool) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Sort order of ``p`` and the start of every block of tied scores in that order."""
    order = np.argsort(-p if descending else p, kind="stable")
    ps = p[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    return order, starts


def _block_sums(y: Array, w: Array, order: NDArray[np.intp], starts: NDArray[np.intp]) -> tuple[Array, Array]:
    """Positive and negative weight per tie block, shape (B, n_blocks) each."""
    ws = w[:, order]
    pos = ws * y[order]
    neg = ws - pos
    return np.add.reduceat(pos, starts, axis=1), np.add.reduceat(neg, starts, axis=1)


def auroc(y: Array, p: Array, w: Array) -> Array:
    """Mann–Whitney AUROC with ties counted one half: P(score+ > score-) + ½ P(score+ = score-)."""
    order, starts = _tie_blocks(p, descending=False)
    pos, neg = _block_sums(y, w, order, starts)
    neg_below = np.cumsum(neg, axis=1) - neg
    concordant = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    return ratio(concordant, n_pos * n_neg, valid=(n_pos > 0) & (n_neg > 0))


def average_precision(y: Array, p: Array, w: Array) -> Array:
    """Σ_k (R_k − R_{k−1}) P_k over distinct thresholds, as scikit-learn's ``average_precision_score``."""
    order, starts = _tie_blocks(p, descending=True)
    pos, neg = _block_sums(y, w, order, starts)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    predicted = tp + fp
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    n_pos, n_neg = tp[:, -1], fp[:, -1]
    return ratio(np.sum(pos * precision, axis=1), n_pos, valid=(n_pos > 0) & (n_neg > 0))


def brier(y: Array, p: Array, w: Array) -> Array:
    """Weighted mean squared difference between probability and outcome."""
    return np.asarray((w @ (p - y) ** 2) / w.sum(axis=1))


def ece(y: Array, p: Array, w: Array, n_bins: int) -> Array:
    """Σ_bins (n_bin / n) |mean(y) − mean(p)| over equal-width bins of [0, 1]; p = 1 joins the last bin."""
    bins = np.minimum((p * n_bins).astype(np.intp), n_bins - 1)
    onehot = np.zeros((p.size, n_bins))
    onehot[np.arange(p.size), bins] = 1.0
    # n_bin · |mean y − mean p| = |Σ y − Σ p| within the bin, so no per-bin division is needed.
    gap = (w * (y - p)) @ onehot
    return np.asarray(np.abs(gap).sum(axis=1) / w.sum(axis=1))


def confusion(y: Array, p: Array, w: Array, threshold: float) -> tuple[Array, Array, Array, Array]:
    """Weighted (tp, fp, tn, fn); a row is predicted positive when ``p >= threshold``."""
    pred = (p >= threshold).astype(np.float64)
    tp = w @ (y * pred)
    fp = w @ ((1 - y) * pred)
    tn = w @ ((1 - y) * (1 - pred))
    fn = w @ (y * (1 - pred))
    return tp, fp, tn, fn


def calibration(y: Array, p: Array, w: Array, max_iter: int = 50, tol: float = 1e-9) -> tuple[Array, Array]:
    """(intercept a, slope b) of the weighted logistic fit y ~ a + b·logit(p), by Newton's method.

    Starts at (0, 1), i.e. "already calibrated", where a good model converges in a few steps. Rows of
    ``w`` with one class, constant logit(p), perfect separation or no convergence get NaN.
    """
    x = np.log(np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)) - np.log1p(-np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP))
    n_pos = w @ y
    a, b = np.zeros(w.shape[0]), np.ones(w.shape[0])
    active = (n_pos > 0) & (n_pos < w.sum(axis=1))
    converged = np.zeros(w.shape[0], dtype=bool)
    with np.errstate(all="ignore"):
        for _ in range(max_iter):
            idx = np.flatnonzero(active & ~converged)
            if idx.size == 0:
                break
            da, db = _newton_step(y, x, w[idx], a[idx], b[idx])
            a[idx] += da
            b[idx] += db
            finite = np.isfinite(a[idx]) & np.isfinite(b[idx])
            active[idx[~finite]] = False
            converged[idx] = finite & (np.maximum(np.abs(da), np.abs(db)) < tol * (1 + np.abs(b[idx])))
    ok = active & converged
    return np.where(ok, a, np.nan), np.where(ok, b, np.nan)


def _newton_step(y: Array, x: Array, w: Array, a: Array, b: Array) -> tuple[Array, Array]:
    mu = expit(a[:, None] + b[:, None] * x)
    wv = w * (mu * (1 - mu))
    wr = w * (y - mu)
    g0, g1 = wr.sum(axis=1), wr @ x
    h00, h01, h11 = wv.sum(axis=1), wv @ x, wv @ (x * x)
    det = h00 * h11 - h01 * h01
    # A singular Hessian (constant x, or separation driving mu to 0/1) gives a non-finite step → NaN.
    det = np.where(det > 1e-12 * np.maximum(h00 * h11, 1e-300), det, np.nan)
    return (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det


def ratio(num: Array, den: Array, valid: NDArray[np.bool_]) -> Array:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=valid)
    return out
