"""Preprocessing for the linear heads, as scikit-learn transformers composed with a head in a Pipeline.

- :func:`log1p` / :class:`Log1pTransformer`: counts span orders of magnitude; log1p compresses them
  while keeping zeros at zero (so sparse stays sparse) and signs intact.
- max-abs scaling is scikit-learn's own :class:`~sklearn.preprocessing.MaxAbsScaler` (it keeps
  sparsity too, unlike standardization).
- missing values (NaN: the counts' age without a birth event, hours without a visit start) are
  imputed by scikit-learn's :class:`~sklearn.impute.SimpleImputer` (:func:`impute_missing`): 0 after
  scaling plus a 0/1 indicator column for each feature that had NaN in training, so a linear model can
  tell "unknown" from 0. :func:`linear_preprocessing` composes the three.

    >>> import numpy as np
    >>> Log1pTransformer().fit_transform(np.array([[0.0, np.e - 1]]))
    array([[0., 1.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MaxAbsScaler
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

# log1p is undefined at -1 and below; clipping there keeps the transform total. Counts are never
# negative, so this only matters for already-signed features someone chose to log-transform.
CLIP = -0.99
SPARSE_FORMATS = ("csr", "csc")


def log1p(X: Any) -> Any:
    """``log1p(max(X, -0.99))`` element-wise; a sparse matrix stays sparse (zeros map to zeros)."""
    if sp.issparse(X):
        X = X.tocsr(copy=True)
        X.data = np.log1p(np.clip(X.data, CLIP, None))
        return X
    return np.log1p(np.clip(X, CLIP, None))


class Log1pTransformer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """:func:`log1p` as a transformer; stateless apart from the input checks scikit-learn expects
    (``n_features_in_``, feature names). float32 input stays float32."""

    def fit(self, X: Any, y: Any = None) -> Log1pTransformer:
        validate_data(self, X, accept_sparse=SPARSE_FORMATS, dtype=(np.float64, np.float32),
                      ensure_all_finite="allow-nan")
        return self

    def transform(self, X: Any) -> Any:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=SPARSE_FORMATS, dtype=(np.float64, np.float32),
                          ensure_all_finite="allow-nan")
        return log1p(X)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True  # NaN passes through as NaN, as in MaxAbsScaler
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def impute_missing() -> SimpleImputer:
    """NaN → 0, plus an indicator column per feature that had NaN when fitted (sparse stays sparse).

    >>> impute_missing().fit_transform(np.array([[1.0, np.nan], [2.0, 3.0]]))
    array([[1., 0., 1.],
           [2., 3., 0.]])
    """
    return SimpleImputer(missing_values=np.nan, strategy="constant", fill_value=0.0, add_indicator=True,
                         keep_empty_features=True)


def linear_preprocessing(log1p: bool = True) -> list[tuple[str, Any]]:
    """The pipeline steps in front of a linear head: log1p for raw counts (``log1p=False`` for features
    that are not counts: text embeddings, blocks transformed already), then max-abs scaling, then NaN
    imputed (after scaling, so the imputed 0 and the indicator's 1 are on the scaled features' scale)."""
    steps: list[tuple[str, Any]] = [("log1p", Log1pTransformer())] if log1p else []
    return [*steps, ("scale", MaxAbsScaler()), ("impute", impute_missing())]
