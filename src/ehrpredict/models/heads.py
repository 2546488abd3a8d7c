"""Prediction heads with the scikit-learn estimator contract, tuned on the tuning split.

- ``lr``: L2 logistic regression on max-abs-scaled log1p features; the strength C is chosen by AUROC
  on the tuning split from a fixed grid.
- ``lgbm``: LightGBM with early stopping on the tuning split.

For regression tasks the same names give regressors: ``lr`` → ridge regression on the same scaled
features (strength tuned by tuning-split MAE), ``lgbm`` → LightGBM regression with early stopping.

Both are seeded; ``fit(X, y, X_tune=..., y_tune=...)`` returns self, fitted attributes end in ``_``.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MaxAbsScaler

from ehrpredict.errors import ConfigError

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
HEADS = ("lr", "lgbm")


def _log1p(X: Any) -> Any:
    """Counts span orders of magnitude; log1p keeps signs and sparsity (values are clipped at -0.99)."""
    if sp.issparse(X):
        X = X.tocsr(copy=True)
        X.data = np.log1p(np.clip(X.data, -0.99, None))
        return X
    return np.log1p(np.clip(X, -0.99, None))


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _prepare(X: Any, log1p: bool) -> Any:
    return _log1p(X) if log1p else X


class TunedLogisticRegression(BaseEstimator, ClassifierMixin):
    """``log1p=False`` for features that are not counts (text embeddings, already-transformed blocks)."""

    def __init__(self, c_grid: tuple[float, ...] = C_GRID, seed: int = 0, max_iter: int = 2000,
                 log1p: bool = True) -> None:
        self.c_grid = c_grid
        self.seed = seed
        self.max_iter = max_iter
        self.log1p = log1p

    def fit(
        self, X: Any, y: np.ndarray, X_tune: Any = None, y_tune: np.ndarray | None = None
    ) -> TunedLogisticRegression:
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise ConfigError("expected both classes in the training labels, got one")
        self.scaler_ = MaxAbsScaler().fit(_prepare(X, self.log1p))
        Xs = self.scaler_.transform(_prepare(X, self.log1p))
        Xt = None if X_tune is None else self.scaler_.transform(_prepare(X_tune, self.log1p))
        usable = Xt is not None and y_tune is not None and len(np.unique(y_tune)) == 2
        scores: dict[float, float] = {}
        if not usable or len(self.c_grid) == 1:  # nothing to tune on: the default strength (or the only one)
            self.C_ = 1.0 if 1.0 in self.c_grid and len(self.c_grid) > 1 else self.c_grid[len(self.c_grid) // 2]
            self.model_ = LogisticRegression(C=self.C_, max_iter=self.max_iter, random_state=self.seed).fit(Xs, y)
        else:
            # The regularization path from strong to weak, each fit warm-started from the previous
            # solution: the same optima, several times fewer iterations than cold starts.
            path = LogisticRegression(max_iter=self.max_iter, random_state=self.seed, warm_start=True)
            fitted = {}
            for c in sorted(self.c_grid):
                path.set_params(C=c).fit(Xs, y)
                fitted[c] = copy.deepcopy(path)
                scores[c] = _auroc(np.asarray(y_tune), path.predict_proba(Xt)[:, 1])
            self.C_ = max(self.c_grid, key=lambda c: (scores[c], -abs(np.log10(c))))
            self.model_ = fitted[self.C_]
        self.classes_ = self.model_.classes_
        self.tuning_auroc_ = scores
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(self.scaler_.transform(_prepare(X, self.log1p)))


def _float32(X: Any) -> Any:
    return X.astype(np.float32) if sp.issparse(X) else X


def _fit_lightgbm(model: Any, X: Any, y: np.ndarray, tune: tuple[Any, np.ndarray] | None, metric: str,
                  rounds: int) -> None:
    """Fit with early stopping on ``tune`` (by ``metric``), or 200 rounds when there is no usable tuning set."""
    import lightgbm as lgb

    if tune is None:
        model.set_params(n_estimators=200)
        model.fit(_float32(X), y)
        return
    model.fit(_float32(X), y, eval_X=_float32(tune[0]), eval_y=tune[1], eval_metric=metric,
              callbacks=[lgb.early_stopping(rounds, verbose=False)])


class EarlyStoppedLightGBM(BaseEstimator, ClassifierMixin):
    def __init__(self, seed: int = 0, n_estimators: int = 1000, learning_rate: float = 0.05,
                 num_leaves: int = 31, early_stopping_rounds: int = 50, n_jobs: int = 2) -> None:
        self.seed = seed
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: np.ndarray, X_tune: Any = None, y_tune: np.ndarray | None = None) -> EarlyStoppedLightGBM:
        import lightgbm as lgb

        y = np.asarray(y).astype(int)
        if len(np.unique(y)) < 2:
            raise ConfigError("expected both classes in the training labels, got one")
        self.model_ = lgb.LGBMClassifier(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=5, random_state=self.seed, n_jobs=self.n_jobs, verbose=-1, deterministic=True,
        )
        usable = X_tune is not None and y_tune is not None and len(np.unique(y_tune)) == 2
        tune = (X_tune, np.asarray(y_tune).astype(int)) if usable else None
        _fit_lightgbm(self.model_, X, y, tune, "auc", self.early_stopping_rounds)
        self.classes_ = self.model_.classes_
        self.best_iteration_ = int(self.model_.best_iteration_ or self.model_.n_estimators)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict_proba(_float32(X)))


def make_head(name: str, seed: int, log1p: bool = True) -> TunedLogisticRegression | EarlyStoppedLightGBM:
    if name == "lr":
        return TunedLogisticRegression(seed=seed, log1p=log1p)
    if name == "lgbm":
        return EarlyStoppedLightGBM(seed=seed)
    raise ConfigError(f"expected a head in {list(HEADS)}, got {name!r}")


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


class TunedRidge(BaseEstimator, RegressorMixin):
    """Ridge regression on max-abs-scaled log1p features; alpha chosen by MAE on the tuning split."""

    def __init__(self, alpha_grid: tuple[float, ...] = ALPHA_GRID, seed: int = 0, log1p: bool = True) -> None:
        self.alpha_grid = alpha_grid
        self.seed = seed
        self.log1p = log1p

    def fit(self, X: Any, y: np.ndarray, X_tune: Any = None, y_tune: np.ndarray | None = None) -> TunedRidge:
        y = np.asarray(y, dtype=np.float64)
        self.scaler_ = MaxAbsScaler().fit(_prepare(X, self.log1p))
        Xs = _dense_if_small(self.scaler_.transform(_prepare(X, self.log1p)))
        Xt = None if X_tune is None else _dense_if_small(self.scaler_.transform(_prepare(X_tune, self.log1p)))
        scores = {}
        for alpha in self.alpha_grid:
            if Xt is None or y_tune is None or len(y_tune) == 0:
                scores[alpha] = 0.0 if alpha == 1.0 else 1.0  # no tuning split: default strength
                continue
            model = _ridge(alpha, self.seed, Xs, y)
            predicted = model.predict(Xt)
            scores[alpha] = float(np.mean(np.abs(predicted - np.asarray(y_tune, dtype=np.float64))))
        self.alpha_ = min(self.alpha_grid, key=lambda a: (scores[a], abs(np.log10(a))))
        self.model_ = _ridge(self.alpha_, self.seed, Xs, y)
        self.tuning_mae_ = scores
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict(self.scaler_.transform(_prepare(X, self.log1p))))


class EarlyStoppedLightGBMRegressor(BaseEstimator, RegressorMixin):
    """LightGBM regression (L2 loss) with early stopping on the tuning split's L1 error."""

    def __init__(self, seed: int = 0, n_estimators: int = 1000, learning_rate: float = 0.05,
                 num_leaves: int = 31, early_stopping_rounds: int = 50, n_jobs: int = 2) -> None:
        self.seed = seed
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.early_stopping_rounds = early_stopping_rounds
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: np.ndarray, X_tune: Any = None,
            y_tune: np.ndarray | None = None) -> EarlyStoppedLightGBMRegressor:
        import lightgbm as lgb

        self.model_ = lgb.LGBMRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, num_leaves=self.num_leaves,
            min_child_samples=5, random_state=self.seed, n_jobs=self.n_jobs, verbose=-1, deterministic=True,
        )
        usable = X_tune is not None and y_tune is not None and len(y_tune) > 0
        tune = (X_tune, np.asarray(y_tune, dtype=np.float64)) if usable else None
        _fit_lightgbm(self.model_, X, np.asarray(y, dtype=np.float64), tune, "l1", self.early_stopping_rounds)
        self.best_iteration_ = int(self.model_.best_iteration_ or self.model_.n_estimators)
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.model_.predict(_float32(X)))


def make_regressor(name: str, seed: int, log1p: bool = True) -> TunedRidge | EarlyStoppedLightGBMRegressor:
    if name == "lr":
        return TunedRidge(seed=seed, log1p=log1p)
    if name == "lgbm":
        return EarlyStoppedLightGBMRegressor(seed=seed)
    raise ConfigError(f"expected a head in {list(HEADS)}, got {name!r}")
