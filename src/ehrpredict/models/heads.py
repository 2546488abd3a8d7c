"""The head registry: a head name → a fitted-ready Pipeline (preprocessing, then the estimator).

- ``lr``: log1p (for raw counts) → max-abs scaling → NaN imputed (0 and a missing indicator) →
  :class:`TunedLogisticRegression`; for regression tasks the same steps in front of :class:`TunedRidge`.
- ``lgbm``: :class:`EarlyStoppedLightGBM` (or the regressor) on the features as they are: trees do
  not care about monotone transforms.

Every head is a :class:`HeadPipeline` whose last step is named ``"head"``, and takes the tuning split
keyword-only, transformed by the same preprocessing as the training data:

    >>> model = make_head("lr", seed=0)                                         # doctest: +SKIP
    >>> model.fit(X_train, y_train, X_val=X_tuning, y_val=y_tuning)             # doctest: +SKIP
    >>> model["head"].C_, model.predict_proba(X_held_out)[:, 1]                 # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

from sklearn import config_context
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.utils import Tags, get_tags

from ehrpredict.errors import ConfigError
from ehrpredict.models.classifiers import EarlyStoppedLightGBM, TunedLogisticRegression
from ehrpredict.models.preprocess import linear_preprocessing
from ehrpredict.models.regressors import EarlyStoppedLightGBMRegressor, TunedRidge

HEADS = ("lr", "lgbm")


class HeadPipeline(Pipeline):
    """A Pipeline whose ``fit`` passes ``X_val``/``y_val`` to the final estimator, ``X_val`` transformed
    by the fitted preprocessing steps exactly as ``X`` is.

    Why a subclass: scikit-learn's own way is ``Pipeline(..., transform_input=["X_val"])`` with metadata
    routing, but routing is a global (thread-local) switch that a plain Pipeline with
    ``transform_input`` refuses to fit without, even when no tuning split is given. Turning it on
    only for the duration of ``fit`` keeps that mechanism (nothing re-implemented) and spares every
    caller the switch. The heads request ``X_val``/``y_val`` by default (``__metadata_request__fit``),
    so no ``set_fit_request`` is needed either. A hand-written wrapper would have to re-implement what
    Pipeline already does (predict_proba, decision_function, classes_, tags, parameters); prediction
    here is Pipeline's own.
    """

    def fit(self, X: Any, y: Any = None, *, X_val: Any = None, y_val: Any = None) -> HeadPipeline:
        # Only metadata that is given is routed (``None`` would be "transformed" by the steps).
        tuning = {k: v for k, v in (("X_val", X_val), ("y_val", y_val)) if v is not None}
        if "X_val" in tuning and "X_val" not in (self.transform_input or ()) and len(self.steps) > 1:
            raise ConfigError("expected transform_input=['X_val'] on a HeadPipeline with preprocessing steps, "
                              f"got transform_input={self.transform_input!r} (X_val would skip the preprocessing)")
        with config_context(enable_metadata_routing=True):
            super().fit(X, y, **tuning)
        return self

    def __sklearn_tags__(self) -> Tags:
        # Pipeline does not pass allow_nan on; NaN gets through if every step lets it through up to one
        # that imputes it (the steps after an imputer never see NaN)
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = _allows_nan([step for _, step in self.steps
                                                 if step is not None and step != "passthrough"])
        return tags


def _allows_nan(steps: list[Any]) -> bool:
    for step in steps:
        if not get_tags(step).input_tags.allow_nan:
            return False
        imputed = step.missing_values if isinstance(step, SimpleImputer) else None
        if isinstance(imputed, float) and math.isnan(imputed):
            return True
    return True


def _compose(steps: list[tuple[str, Any]], head: Any) -> HeadPipeline:
    return HeadPipeline([*steps, ("head", head)], transform_input=["X_val"])


def make_head(name: str, seed: int, log1p: bool = True) -> HeadPipeline:
    """A binary classification head; ``log1p=False`` for features that are not raw counts."""
    if name == "lr":
        return _compose(linear_preprocessing(log1p), TunedLogisticRegression(seed=seed))
    if name == "lgbm":
        return _compose([], EarlyStoppedLightGBM(seed=seed))
    raise ConfigError(f"expected a head in {list(HEADS)}, got {name!r}")


def make_regressor(name: str, seed: int, log1p: bool = True) -> HeadPipeline:
    """A regression head (``lr`` is ridge regression); ``log1p=False`` for features that are not counts."""
    if name == "lr":
        return _compose(linear_preprocessing(log1p), TunedRidge(seed=seed))
    if name == "lgbm":
        return _compose([], EarlyStoppedLightGBMRegressor(seed=seed))
    raise ConfigError(f"expected a head in {list(HEADS)}, got {name!r}")
