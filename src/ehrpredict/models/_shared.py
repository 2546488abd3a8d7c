"""What the classifiers and regressors share: input checks of the tuning split and the LightGBM fit."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_consistent_length, column_or_1d, validate_data

SPARSE_FORMATS = ("csr", "csc")
FLOAT_DTYPES = (np.float64, np.float32)  # float32 counts stay float32: no copy, and the numbers a
#                                          head sees are the ones it saw before the redesign
# Heads ask for the tuning split whenever metadata routing is on (as in HeadPipeline.fit), so no
# caller has to remember ``set_fit_request(X_val=True, y_val=True)``, which only works with routing on.
TUNING_REQUEST = {"X_val": True, "y_val": True}
NO_TUNING_ROUNDS = 200  # LightGBM's rounds when there is no usable tuning split to stop on


def check_validation_set(estimator: BaseEstimator, X_val: Any, y_val: Any,
                         ensure_all_finite: bool | str = True) -> tuple[Any, np.ndarray] | None:
    """``(X_val, y_val)`` validated against the fitted ``estimator`` (same features), or None when
    neither is given. Giving only one of them is an error, as in HistGradientBoostingClassifier."""
    if X_val is None and y_val is None:
        return None
    if y_val is None:
        raise ValueError("X_val is provided, but y_val was not provided.")
    if X_val is None:
        raise ValueError("y_val is provided, but X_val was not provided.")
    X_val = validate_data(estimator, X_val, reset=False, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES,
                          ensure_all_finite=ensure_all_finite)
    y_val = column_or_1d(y_val, warn=True)
    check_consistent_length(X_val, y_val)
    return X_val, y_val


def as_float32(X: Any) -> Any:
    """Sparse input reaches LightGBM as a float32 scipy.sparse *matrix* (dense stays as it is): half
    the memory of float64, and LightGBM converts sparse *arrays* (csr_array) itself, with a warning."""
    if not sp.issparse(X):
        return X
    X = X.astype(np.float32)
    if isinstance(X, sp.spmatrix):
        return X
    return sp.csr_matrix(X) if X.format == "csr" else sp.csc_matrix(X)


class LightGBMParams(BaseEstimator):
    """The hyperparameters both early-stopped LightGBM heads take (one ``__init__``, which
    scikit-learn's ``get_params`` reads from the subclasses)."""

    def __init__(self, seed: int = 0, n_estimators: int = 1000, learning_rate: float = 0.05,
                 num_leaves: int = 31, early_stopping_rounds: int = 50, n_jobs: int = 2) -> None:
        self.seed = seed
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs


def booster_params(estimator: Any) -> dict[str, Any]:
    """The LightGBM parameters both boosted heads share; deterministic so that a seed fixes the model."""
    return {"n_estimators": estimator.n_estimators, "learning_rate": estimator.learning_rate,
            "num_leaves": estimator.num_leaves, "min_child_samples": 5, "random_state": estimator.seed,
            "n_jobs": estimator.n_jobs, "verbose": -1, "deterministic": True}


def fit_lightgbm(model: Any, X: Any, y: np.ndarray, val: tuple[Any, np.ndarray] | None, metric: str,
                 rounds: int) -> None:
    """Fit with early stopping on ``val`` (by ``metric``, patience ``rounds``), or for 200 rounds when
    there is no usable tuning split."""
    import lightgbm as lgb

    if val is None:
        model.set_params(n_estimators=NO_TUNING_ROUNDS)
        model.fit(as_float32(X), y)
        return
    model.fit(as_float32(X), y, eval_X=as_float32(val[0]), eval_y=val[1], eval_metric=metric,
              callbacks=[lgb.early_stopping(rounds, verbose=False)])
