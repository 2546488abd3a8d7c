"""Calibration of a binary head's probabilities, fitted on the tuning split.

- :class:`PlattCalibrator`: a logistic fit on the log-odds, ``p' = σ(a·logit(p) + b)``. Two numbers:
  it cannot overfit a small split, but it can only bend the scores along one family of curves.
- :class:`IdentityCalibrator`: the head's probabilities unchanged, when neither map does better.
- :class:`IsotonicCalibrator`: the best non-decreasing map from score to probability (isotonic
  regression), interpolated linearly between its knots and flat beyond the ends. Flexible, but it
  needs many positives to be better than noise.

:func:`choose_calibrator` decides on the tuning split by cross-validation: the split is cut into
``folds`` stratified folds, each candidate is fitted on the others and scored by the Brier score (a
proper score that stays finite when isotonic regression says 0 or 1) on the fold left out; the lowest
mean wins (ties: the simpler) and is refitted on the whole split. The candidates are no recalibration,
Platt scaling and, with at least ``MIN_ISOTONIC_CLASS`` positives and negatives, isotonic regression:
the head's probabilities are remapped only when that scores better on the rows left out (on a small
split that comparison is itself noisy). With fewer
than ``folds`` of a class nothing can be cross-validated and Platt scaling is used. The choice
says which and why.

Both are plain numbers (``to_json``/:func:`calibrator_from_json`) and apply by the same code when
fitted and when loaded from a bundle, so a loaded model calibrates exactly as the fitted one did.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 2000)
    >>> y = (rng.uniform(size=2000) < p ** 2).astype(int)        # the model overstates the risk
    >>> choice = choose_calibrator(y, p, seed=0)
    >>> choice.calibrator.method, round(float(choice.calibrator.transform(np.array([0.5]))[0]), 1)  # truth: 0.25
    ('isotonic', 0.3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ehrpredict.errors import ConfigError

MIN_ISOTONIC_CLASS = 50  # isotonic regression is considered only with this many positives and negatives
FOLDS = 5
_EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(p) - np.log1p(-p))


class Calibrator(Protocol):
    @property
    def method(self) -> str: ...

    def transform(self, p: np.ndarray) -> np.ndarray: ...

    def to_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class PlattCalibrator:
    """``σ(a·logit(p) + b)``; the identity is a = 1, b = 0."""

    a: float
    b: float
    method: str = "platt"

    @classmethod
    def fit(cls, y: np.ndarray, p: np.ndarray) -> PlattCalibrator:
        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p).reshape(-1, 1), np.asarray(y, dtype=int))
        return cls(a=float(model.coef_[0, 0]), b=float(model.intercept_[0]))

    def transform(self, p: np.ndarray) -> np.ndarray:
        z = self.a * _logit(p) + self.b
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class IdentityCalibrator:
    """No recalibration: the head's probabilities as they are (chosen when they score best)."""

    method: str = "none"

    def transform(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method}


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Linear interpolation between knots ``(x, y)`` (``x`` increasing, ``y`` non-decreasing), flat
    outside them."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    method: str = "isotonic"

    def __post_init__(self) -> None:
        x, y = np.asarray(self.x), np.asarray(self.y)
        if len(x) == 0 or len(x) != len(y) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise ConfigError(f"expected isotonic knots with increasing x and non-decreasing y of equal length, got "
                              f"{len(x)} x and {len(y)} y values")
        if np.any((y < 0) | (y > 1)):
            raise ConfigError("expected isotonic knot probabilities in [0, 1]")

    @classmethod
    def fit(cls, y: np.ndarray, p: np.ndarray) -> IsotonicCalibrator:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
            np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64))
        return cls(x=tuple(float(v) for v in model.X_thresholds_), y=tuple(float(v) for v in model.y_thresholds_))

    def transform(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(np.asarray(p, dtype=np.float64), self.x, self.y), dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y)}


def calibrator_from_json(data: dict[str, Any]) -> Calibrator:
    """A calibrator from its ``to_json()``; anything else is refused with the reason."""
    method = data.get("method")
    try:
        if method == "none":
            return IdentityCalibrator()
        if method == "platt":
            return PlattCalibrator(a=float(data["a"]), b=float(data["b"]))
        if method == "isotonic":
            return IsotonicCalibrator(x=tuple(float(v) for v in data["x"]), y=tuple(float(v) for v in data["y"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"expected a {method} calibrator with its parameters, got {sorted(data)}: {exc}") from exc
    raise ConfigError(f"expected calibrator method 'none', 'platt' or 'isotonic', got {method!r}")


@dataclass(frozen=True)
class CalibrationChoice:
    """The calibrator fitted on the whole tuning split, and why this one: ``cv_brier`` is each method's
    mean Brier score over the folds left out (empty when isotonic regression was not considered)."""

    calibrator: Calibrator
    reason: str
    cv_brier: dict[str, float]
    n: int
    positives: int

    def to_json(self) -> dict[str, Any]:
        return {"calibrator": self.calibrator.to_json(), "reason": self.reason, "cv_brier": self.cv_brier,
                "n": self.n, "positives": self.positives}


def _fit(method: str, y: np.ndarray, p: np.ndarray) -> Calibrator:
    if method == "none":
        return IdentityCalibrator()
    return PlattCalibrator.fit(y, p) if method == "platt" else IsotonicCalibrator.fit(y, p)


NAMES = {"none": "no recalibration (the head's own probabilities)", "platt": "Platt scaling",
         "isotonic": "isotonic regression"}


def choose_calibrator(y: np.ndarray, p: np.ndarray, seed: int = 0, folds: int = FOLDS,
                      min_class: int = MIN_ISOTONIC_CLASS) -> CalibrationChoice:
    """Platt or isotonic, by ``folds``-fold cross-validated Brier score on (``y``, ``p``): the tuning
    split's labels and the head's probabilities. Fewer than ``min_class`` positives or negatives:
    Platt, without cross-validation."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=np.float64)
    positives, negatives = int(y.sum()), int(y.size - y.sum())
    if positives == 0 or negatives == 0:
        raise ConfigError(f"expected both classes in the tuning split to calibrate on, got {positives} positives and "
                          f"{negatives} negatives")
    fewest = min(positives, negatives)
    fewest_name = "positives" if positives <= negatives else "negatives"
    if fewest < folds:
        reason = (f"Platt scaling: the tuning split has {fewest} {fewest_name}, too few to cross-validate a choice")
        return CalibrationChoice(PlattCalibrator.fit(y, p), reason, {}, int(y.size), positives)
    # Candidates from simplest to most flexible; isotonic regression only with enough of both classes.
    methods = ("none", "platt", "isotonic") if fewest >= min_class else ("none", "platt")
    scores: dict[str, list[float]] = {method: [] for method in methods}
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(p, y):
        for method in scores:
            fitted = _fit(method, y[train], p[train])
            scores[method].append(float(np.mean((fitted.transform(p[test]) - y[test]) ** 2)))
    cv = {method: float(np.mean(values)) for method, values in scores.items()}
    best = min(methods, key=lambda m: (cv[m], methods.index(m)))  # a tie goes to the simpler one
    compared = ", ".join(f"{cv[m]:.5f} {NAMES[m].split(' (')[0]}" for m in methods)
    reason = f"{NAMES[best]}: the lowest {folds}-fold cross-validated Brier score on the tuning split ({compared})"
    if "isotonic" not in methods:
        reason += (f"; isotonic regression not considered: {fewest} {fewest_name}, fewer than the {min_class} "
                   "it needs")
    return CalibrationChoice(_fit(best, y, p), reason, cv, int(y.size), positives)
