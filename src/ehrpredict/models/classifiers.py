"""Binary classification heads, tuned on a tuning split given to ``fit`` the way
``HistGradientBoostingClassifier`` takes its validation set: ``fit(X, y, *, X_val=None, y_val=None)``.

- :class:`TunedLogisticRegression`: L2 logistic regression; the strength C is chosen by AUROC on the
  tuning split from a fixed grid. Without a usable tuning split (none, or one class only): C = 1.
- :class:`EarlyStoppedLightGBM`: LightGBM with early stopping on the tuning split's AUROC. Without a
  usable tuning split: 200 rounds.

They take features as they are; log1p and scaling are transformers in front of them
(:mod:`ehrpredict.models.preprocess`, composed by :func:`ehrpredict.models.heads.make_head`). Both are
seeded and binary only: a multiclass target is refused, as scikit-learn expects of a binary classifier.

    >>> import numpy as np
    >>> X, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array(["no", "no", "yes", "yes"])
    >>> TunedLogisticRegression().fit(X, y, X_val=X, y_val=y).predict(np.array([[3.0]]))
    array(['yes'], dtype='<U3')
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
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

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)


def _binary_fit_data(estimator: Any, X: Any, y: Any, X_val: Any, y_val: Any, ensure_all_finite: bool | str
                     ) -> tuple[Any, np.ndarray, tuple[Any, np.ndarray] | None]:
    """Validated ``(X, y, (X_val, y_val) or None)`` with labels encoded as 0/1 by ``classes_`` (set here).

    The tuning split is returned only when usable, i.e. it has both classes (AUROC needs them)."""
    X, y = validate_data(estimator, X, y, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES,
                         ensure_all_finite=ensure_all_finite)
    check_classification_targets(y)
    classes = np.unique(y)
    if len(classes) < 2:
        # a ValueError mentioning "class" is what scikit-learn's estimator checks expect here
        raise ValueError(f"expected both classes in the training labels, got one class ({classes[0]!r})")
    y_type = type_of_target(y, input_name="y", raise_unknown=True)
    if y_type != "binary":
        raise ValueError(f"Only binary classification is supported. The type of the target is {y_type}.")
    estimator.classes_ = classes
    val = check_validation_set(estimator, X_val, y_val, ensure_all_finite)
    if val is None:
        return X, np.searchsorted(classes, y), None
    X_val, y_val = val
    unknown = np.setdiff1d(y_val, classes)
    if len(unknown):
        raise ValueError(f"expected y_val labels among the training classes {classes.tolist()}, "
                         f"got {unknown.tolist()}")
    usable = len(np.unique(y_val)) == 2
    return X, np.searchsorted(classes, y), (X_val, np.searchsorted(classes, y_val)) if usable else None


def _binary_tags(tags: Tags, allow_nan: bool) -> Tags:
    tags.input_tags.sparse = True
    tags.input_tags.allow_nan = allow_nan
    assert tags.classifier_tags is not None  # set by ClassifierMixin
    tags.classifier_tags.multi_class = False
    return tags


class TunedLogisticRegression(ClassifierMixin, BaseEstimator):
    """L2 logistic regression with C picked by tuning-split AUROC (ties: the C nearest 1).

    Fitted: ``C_``, ``model_`` (the LogisticRegression), ``tuning_auroc_`` (C → AUROC; empty when
    not tuned), ``n_iter_``, ``classes_``, ``n_features_in_``."""

    __metadata_request__fit = TUNING_REQUEST

    def __init__(self, c_grid: tuple[float, ...] = C_GRID, seed: int = 0, max_iter: int = 2000) -> None:
        self.c_grid = c_grid
        self.seed = seed
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> TunedLogisticRegression:
        X, y, val = _binary_fit_data(self, X, y, X_val, y_val, ensure_all_finite=True)
        grid = tuple(self.c_grid)
        scores: dict[float, float] = {}
        if val is None or len(grid) == 1:  # nothing to tune on: the default strength (or the only one)
            self.C_ = 1.0 if 1.0 in grid and len(grid) > 1 else grid[len(grid) // 2]
            self.model_ = LogisticRegression(C=self.C_, max_iter=self.max_iter, random_state=self.seed).fit(X, y)
        else:
            # The regularization path from strong to weak, each fit warm-started from the previous
            # solution: the same optima, several times fewer iterations than cold starts.
            path = LogisticRegression(max_iter=self.max_iter, random_state=self.seed, warm_start=True)
            fitted = {}
            for c in sorted(grid):
                path.set_params(C=c).fit(X, y)
                fitted[c] = copy.deepcopy(path)
                scores[c] = float(roc_auc_score(val[1], path.predict_proba(val[0])[:, 1]))
            self.C_ = max(grid, key=lambda c: (scores[c], -abs(np.log10(c))))
            self.model_ = fitted[self.C_]
        self.tuning_auroc_ = scores
        self.n_iter_ = self.model_.n_iter_  # of the fit kept (warm-started ones count from the previous C)
        return self

    def _checked(self, X: Any) -> Any:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES)

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._checked(X)
        return np.asarray(self.model_.predict_proba(X))

    def decision_function(self, X: Any) -> np.ndarray:
        X = self._checked(X)
        return np.asarray(self.model_.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # checks fitted before classes_ is read
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])

    def __sklearn_tags__(self) -> Tags:
        return _binary_tags(super().__sklearn_tags__(), allow_nan=False)


class EarlyStoppedLightGBM(ClassifierMixin, LightGBMParams):
    """LightGBM (at most ``n_estimators`` rounds) stopped when the tuning-split AUROC has not improved
    for ``early_stopping_rounds``. Missing values (NaN) are allowed: LightGBM routes them itself.

    Fitted: ``model_`` (the LGBMClassifier), ``best_iteration_``, ``classes_``, ``n_features_in_``."""

    __metadata_request__fit = TUNING_REQUEST

    def fit(self, X: Any, y: Any, *, X_val: Any = None, y_val: Any = None) -> EarlyStoppedLightGBM:
        import lightgbm as lgb

        X, y, val = _binary_fit_data(self, X, y, X_val, y_val, ensure_all_finite="allow-nan")
        self.model_ = lgb.LGBMClassifier(**booster_params(self))
        fit_lightgbm(self.model_, X, y, val, "auc", self.early_stopping_rounds)
        self.best_iteration_ = int(self.model_.best_iteration_ or self.model_.n_estimators)
        return self

    def _checked(self, X: Any) -> Any:
        check_is_fitted(self)
        return as_float32(validate_data(self, X, reset=False, accept_sparse=SPARSE_FORMATS, dtype=FLOAT_DTYPES,
                                         ensure_all_finite="allow-nan"))

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._checked(X)
        return np.asarray(self.model_.predict_proba(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """The raw margin (log-odds of ``classes_[1]``), as HistGradientBoostingClassifier's."""
        X = self._checked(X)
        return np.asarray(self.model_.predict(X, raw_score=True))

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # checks fitted before classes_ is read
        return np.asarray(self.classes_[np.argmax(proba, axis=1)])

    def __sklearn_tags__(self) -> Tags:
        return _binary_tags(super().__sklearn_tags__(), allow_nan=True)
