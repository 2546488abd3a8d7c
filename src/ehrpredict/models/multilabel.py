"""The multilabel head: one-vs-rest L2 logistic regression on max-abs-scaled counts.

A fixed strength (C = 0.1) rather than one tuned per category: most categories have few positives,
and the tuning split is used for the per-category thresholds instead.

    >>> model = make_multilabel_head(seed=0).fit(X_train, Y_train)      # doctest: +SKIP
    >>> P = model.predict_proba(X_held_out)                              # doctest: +SKIP
"""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler

from ehrpredict.models.preprocess import impute_missing

MULTILABEL_C = 0.1


def make_multilabel_head(seed: int) -> Pipeline:
    """Max-abs scaling (no log1p: as the benchmark has always run it) → NaN imputed (as for the other
    linear heads) → one-vs-rest LR per category."""
    head = OneVsRestClassifier(LogisticRegression(C=MULTILABEL_C, max_iter=2000, random_state=seed))
    return Pipeline([("scale", MaxAbsScaler()), ("impute", impute_missing()), ("head", head)])
