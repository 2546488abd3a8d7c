"""Prediction heads (scikit-learn estimators) and the transformers in front of them.

``make_head`` / ``make_regressor`` build a head by name (``HEADS``) as a Pipeline that takes the tuning
split as ``fit(X, y, *, X_val=..., y_val=...)``; the estimators themselves live in ``classifiers``,
``regressors`` and ``multilabel``, the transformers in ``preprocess``.
"""

from ehrpredict.models.classifiers import EarlyStoppedLightGBM, TunedLogisticRegression
from ehrpredict.models.heads import HEADS, HeadPipeline, make_head, make_regressor
from ehrpredict.models.multilabel import make_multilabel_head
from ehrpredict.models.preprocess import Log1pTransformer, linear_preprocessing, log1p
from ehrpredict.models.regressors import EarlyStoppedLightGBMRegressor, TunedRidge

__all__ = [
    "HEADS",
    "EarlyStoppedLightGBM",
    "EarlyStoppedLightGBMRegressor",
    "HeadPipeline",
    "Log1pTransformer",
    "TunedLogisticRegression",
    "TunedRidge",
    "linear_preprocessing",
    "log1p",
    "make_head",
    "make_multilabel_head",
    "make_regressor",
]
