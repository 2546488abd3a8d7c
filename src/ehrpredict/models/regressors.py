"""Regression heads, tuned on a tuning split given to ``fit`` as ``X_val``/``y_val`` (keyword-only, as in
``HistGradientBoostingRegressor``).

- :class:`TunedRidge`: ridge regression; alpha chosen by mean absolute error on the tuning split.
  Without a tuning split: alpha = 1.
- :class:`EarlyStoppedLightGBMRegressor`: LightGBM (L2 loss) stopped on the tuning split's L1 error.
  Without a tuning split: 200 rounds.

Like the classifiers they take features as they are; log1p and scaling are transformers in front
(:func:`ehrpredict.models.heads.make_regressor` composes them).

    >>> import numpy as np
    >>> X, y = np.arange(8.0).reshape(-1, 1), 2 * np.arange(8.0)
    >>> round(float(TunedRidge().fit(X, y, X_val=X, y_val=y).predict(np.array([[4.0]]))[0]), 1)
    8.0
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import Ridge
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

from ehrpredict.models._shared import (
    FLOAT_DTYPES,
    SPARSE_FORMATS,
    TUNING_REQUEST,
    LightGBMParams,
    as_float32,
    booster_params,
    check_validation_set,
    fit_lightgbm,
)

ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
DENSE_CELLS = 30_000_000  # ridge densifies matrices up to this many cells (~240 MB): Cholesky beats sparse CG


def _dense_if_small(X: Any) -> Any:
    small = sp.issparse(X) and X.shape[0] * X.shape[1] <= DENSE_CELLS
    return np.asarray(X.toarray(), dtype=np.float64) if small else X


def _ridge(alpha: float, seed: int, X: Any, y: np.ndarray) -> Ridge:
    """Ridge by its default (Cholesky on dense input); when the system is too ill-conditioned for
    that (weak penalty, more features than rows), the iterative LSQR solver instead."""
    from scipy.linalg import LinAlgWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)
        try:
            return Ridge(alpha=alpha, random_state=seed).fit(X, y)
        except LinAlgWarning:
            pass
    return Ridge(alpha=alpha, solver="lsqr", random_state=seed).fit(X, y)


def _fit_data(estimator: Any, X: Any, y: Any, X_val: Any, y_val: Any, ensure_all_finite: bool | str
              ) -> tuple[Any, np.ndarray, tuple[Any, np.ndarray] | None]:
    """Validated ``(X, y, (X_val, y_val) or None)``, targets as float64."""
    X, y = validate_data(estimator, X, y, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES, y_numeric=True,
                         ensure_all_finite=ensure_all_finite)
    val = check_validation_set(estimator, X_val, y_val, ensure_all_finite)
    y = np.asarray(y, dtype=np.float64)
    return X, y, None if val is None else (val[0], np.asarray(val[1], dtype=np.float64))


def _regressor_tags(tags: Tags, allow_nan: bool) -> Tags:
    tags.input_tags.sparse = True
    tags.input_tags.allow_nan = allow_nan
    return tags


class TunedRidge(RegressorMixin, BaseEstimator):
    """Ridge regression with alpha picked by tuning-split MAE (ties: the alpha nearest 1).

    Fitted: ``alpha_``, ``model_`` (the Ridge), ``tuning_mae_`` (alpha → MAE; without a tuning split
    0 for alpha = 1 and 1 for the others), ``n_features_in_``."""

    __metadata_request__fit = TUNING_REQUEST

    def __init__(self, alpha_grid: tuple[float, ...] = ALPHA_GRID, seed: int = 0) -> None:
        self.alpha_grid = alpha_grid
        self.seed = seed

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> TunedRidge:
        X, y, val = _fit_data(self, X, y, X_val, y_val, ensure_all_finite=True)
        X = _dense_if_small(X)
        X_tune = None if val is None else _dense_if_small(val[0])
        scores = {}
        for alpha in self.alpha_grid:
            if val is None:
                scores[alpha] = 0.0 if alpha == 1.0 else 1.0  # no tuning split: default strength
                continue
            predicted = _ridge(alpha, self.seed, X, y).predict(X_tune)
            scores[alpha] = float(np.mean(np.abs(predicted - val[1])))
        self.alpha_ = min(self.alpha_grid, key=lambda a: (scores[a], abs(np.log10(a))))
        self.model_ = _ridge(self.alpha_, self.seed, X, y)
        self.tuning_mae_ = scores
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES)
        return np.asarray(self.model_.predict(X))

    def __sklearn_tags__(self) -> Tags:
        return _regressor_tags(super().__sklearn_tags__(), allow_nan=False)


class EarlyStoppedLightGBMRegressor(RegressorMixin, LightGBMParams):
    """LightGBM regression (L2 loss, at most ``n_estimators`` rounds) stopped when the tuning split's L1
    error has not improved for ``early_stopping_rounds``. Missing values (NaN) are allowed.

    Fitted: ``model_`` (the LGBMRegressor), ``best_iteration_``, ``n_features_in_``."""

    __metadata_request__fit = TUNING_REQUEST

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> EarlyStoppedLightGBMRegressor:
        import lightgbm as lgb

        X, y, val = _fit_data(self, X, y, X_val, y_val, ensure_all_finite="allow-nan")
        self.model_ = lgb.LGBMRegressor(**booster_params(self))
        fit_lightgbm(self.model_, X, y, val, "l1", self.early_stopping_rounds)
        self.best_iteration_ = int(self.model_.best_iteration_ or self.model_.n_estimators)
        return self

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES,
                          ensure_all_finite="allow-nan")
        return np.asarray(self.model_.predict(as_float32(X)))

    def __sklearn_tags__(self) -> Tags:
        return _regressor_tags(super().__sklearn_tags__(), allow_nan=True)
