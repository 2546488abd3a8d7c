"""Exact per-row contributions of each feature to a fitted pipeline's raw score.

For every label row, ``base + contributions.sum()`` is the model's raw score: the log-odds of a binary
head (what ``decision_function`` returns), the prediction of a regression head.

- ``lgbm``: LightGBM's own TreeSHAP (``predict(X, pred_contrib=True)``; its last column is the base
  value). It uses the early-stopped number of trees, as prediction does.
- ``lr``: contribution_j = coef_j × x_j in the space the model sees (after its log1p and scaling);
  the base is the intercept.

Contributions stay sparse: a counts matrix has tens of thousands of columns and predict streams
thousands of rows. The text embedding's dimensions mean nothing one by one, so they are taken together
as one factor (:data:`~ehrpredict.explain.factors.TEXT_FACTOR`) whose contribution is their sum.

    >>> c = contributions(pipeline, pipeline.features(source, labels))              # doctest: +SKIP
    >>> top_factors(c, row=0, k=5).up[0]                                            # doctest: +SKIP
    Factor(feature='LAB//50912//mg/dL|1d|last', contribution=0.41, value=2.3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ehrpredict.errors import ConfigError
from ehrpredict.explain.factors import TEXT_FACTOR
from ehrpredict.features.combine import Concatenated
from ehrpredict.features.text import EMBEDDING_PREFIX
from ehrpredict.models._shared import as_float32
from ehrpredict.pipeline import FittedPipeline

LOG_ODDS = "log-odds"
PREDICTION = "prediction"
EXPLAINED = ("binary", "regression")


@dataclass(frozen=True)
class Contributions:
    """Per row: ``base`` (n,) and ``values`` (n, d) with ``base + values.sum(1)`` the raw score on
    ``scale`` (log-odds or the prediction itself); ``raw_values`` (n, d): each feature's value as the
    featurizer made it, before the head's preprocessing (the value a factor shows)."""

    base: np.ndarray
    values: sp.csr_matrix
    feature_names: tuple[str, ...]
    raw_values: sp.csr_matrix
    scale: str = LOG_ODDS

    def __post_init__(self) -> None:
        n, d = self.values.shape
        if self.base.shape != (n,) or self.raw_values.shape != (n, d) or len(self.feature_names) != d:
            raise ConfigError(f"expected base ({n},), raw values ({n}, {d}) and {d} feature names, got "
                              f"{self.base.shape}, {self.raw_values.shape} and {len(self.feature_names)}")

    @property
    def n_rows(self) -> int:
        return int(self.values.shape[0])

    def score(self) -> np.ndarray:
        """The raw score of each row: base plus every contribution."""
        return np.asarray(self.base + np.asarray(self.values.sum(axis=1)).ravel())


@dataclass(frozen=True)
class Factor:
    """One feature's part in one row's score, with its value as the featurizer made it."""

    feature: str
    contribution: float
    value: float


@dataclass(frozen=True)
class TopFactors:
    up: tuple[Factor, ...]  # largest positive contribution first
    down: tuple[Factor, ...]  # most negative first


def feature_names(featurizer: Any) -> tuple[str, ...]:
    """The column names of a fitted featurizer (``get_feature_names_out``)."""
    accessor = getattr(featurizer, "get_feature_names_out", None)
    if accessor is None:
        raise ConfigError(f"expected a featurizer that names its columns (get_feature_names_out), got "
                          f"{type(featurizer).__name__}")
    array = accessor()
    # A fitted counts featurizer hands out the same array on every call; its tuple (tens of thousands of
    # strings) is made once. The cache holds the array itself, so an id is never reused while cached.
    cached = _NAMES.get(id(array))
    if cached is not None and cached[0] is array:
        return cached[1]
    names = tuple(str(name) for name in array)
    if len(_NAMES) >= _NAMES_KEPT:
        _NAMES.pop(next(iter(_NAMES)))
    _NAMES[id(array)] = (array, names)
    return names


_NAMES: dict[int, tuple[Any, tuple[str, ...]]] = {}
_NAMES_KEPT = 16


def raw_values(featurizer: Any, X: Any) -> sp.csr_matrix:
    """``X`` with the blocks a combination log-transformed taken back (expm1) to the featurizer's values.

    (Values a log1p clipped, below -0.99, do not come back: :func:`explain_rows` passes the blocks as
    they were made instead.)"""
    raw = sp.csr_matrix(X, dtype=np.float64)
    if not isinstance(featurizer, Concatenated) or not any(featurizer.log_transform):
        return raw
    blocks, start = [], 0
    for (_, part), flag in zip(featurizer.parts, featurizer.log_transform, strict=True):
        width = len(feature_names(part))
        block = raw[:, start:start + width].tocsr()
        if flag:
            block.data = np.expm1(block.data)
        blocks.append(block)
        start += width
    return sp.hstack(blocks, format="csr")


def contributions(pipeline: FittedPipeline, X: Any, raw: Any | None = None, group_text: bool = True) -> Contributions:
    """Exact contributions of ``X``'s features (made by ``pipeline``'s featurizer) to each row's raw score.

    ``raw``: the featurizer's values before any log transform of a combination (default: taken back from
    ``X``); ``group_text``: the text embedding's dimensions as one factor."""
    if pipeline.label_type not in EXPLAINED:
        raise ConfigError(f"expected a binary or regression task to explain, got {pipeline.task} "
                          f"({pipeline.label_type}): multilabel explanations are not supported yet")
    names = feature_names(pipeline.featurizer)
    if X.shape[1] != len(names):
        raise ConfigError(f"expected {len(names)} feature columns (the featurizer's), got {X.shape[1]}")
    if pipeline.head_name == "lgbm":
        base, values = _tree_contributions(pipeline.head, X)
    elif pipeline.head_name == "lr":
        base, values = _linear_contributions(pipeline.head, X)
    else:
        raise ConfigError(f"expected an lgbm or lr head to explain, got {pipeline.head_name!r}")
    raw_matrix = raw_values(pipeline.featurizer, X) if raw is None else sp.csr_matrix(raw, dtype=np.float64)
    if raw_matrix.shape != values.shape:
        raise ConfigError(f"expected raw values of shape {values.shape}, got {raw_matrix.shape}")
    scale = LOG_ODDS if pipeline.label_type == "binary" else PREDICTION
    result = Contributions(base, values, names, raw_matrix, scale)
    return group_text_dimensions(result) if group_text else result


def _tree_contributions(head: Any, X: Any) -> tuple[np.ndarray, sp.csr_matrix]:
    # The head predicts on float32 (as_float32); LightGBM returns contributions in the input's dtype for
    # sparse input, and float32 sums miss the raw score by ~1e-6. The same float32 values as float64 take
    # the same paths through the trees and give float64 contributions.
    data = sp.csr_matrix(as_float32(X), dtype=np.float64) if sp.issparse(X) else np.asarray(X)
    out = head["head"].model_.predict(data, pred_contrib=True)
    if isinstance(out, list):
        raise ConfigError(f"expected one set of contributions (a binary or regression model), got {len(out)}")
    out = sp.csr_matrix(out, dtype=np.float64)
    base = out[:, -1].toarray().ravel()
    values = out[:, :-1].tocsr()
    values.eliminate_zeros()
    return base, values


def _linear_contributions(head: Any, X: Any) -> tuple[np.ndarray, sp.csr_matrix]:
    transformed = head[:-1].transform(X) if len(head) > 1 else X
    model = head["head"].model_
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.ndim > 1 and coef.shape[0] != 1:
        raise ConfigError(f"expected one row of coefficients (a binary or regression model), got {coef.shape[0]}")
    coef = coef.ravel()
    if sp.issparse(transformed):
        values = sp.csr_matrix(sp.csr_matrix(transformed, dtype=np.float64).multiply(coef[np.newaxis, :]))
    else:
        values = sp.csr_matrix(np.asarray(transformed, dtype=np.float64) * coef[np.newaxis, :])
    values = _fold_indicators(head, values, X.shape[1])
    values.eliminate_zeros()
    intercept = float(np.ravel(model.intercept_)[0])
    return np.full(values.shape[0], intercept), values


def _fold_indicators(head: Any, values: sp.csr_matrix, width: int) -> sp.csr_matrix:
    """A missing-value indicator's column (added by the linear heads' imputer after the features) belongs
    to the feature it flags: its contribution is added to that feature's, so that a row's unknown age
    contributes "age unknown" under age, and the sum over features stays the raw score."""
    if values.shape[1] == width:
        return values
    from sklearn.impute import SimpleImputer

    imputers = [step for _, step in head.steps[:-1] if isinstance(step, SimpleImputer) and step.add_indicator]
    flagged = np.asarray(imputers[0].indicator_.features_) if len(imputers) == 1 else np.array([], dtype=int)
    if values.shape[1] != width + len(flagged):
        raise ConfigError(f"expected {width} feature columns plus one per missing-value indicator, got "
                          f"{values.shape[1]} columns the head sees")
    fold = sp.csr_matrix((np.ones(len(flagged)), (np.arange(len(flagged)), flagged)), shape=(len(flagged), width))
    return sp.csr_matrix(values[:, :width] + values[:, width:] @ fold)


def group_text_dimensions(c: Contributions) -> Contributions:
    """The text embedding's columns (``text_embedding_{i}``) replaced by one column, :data:`TEXT_FACTOR`,
    whose contribution is their sum (and which shows no value); other columns as they were."""
    is_text = _text_mask(c.feature_names)
    if not is_text.any():
        return c
    keep = np.flatnonzero(~is_text)
    text_sum = sp.csr_matrix(np.asarray(c.values[:, np.flatnonzero(is_text)].sum(axis=1)))
    values = sp.hstack([c.values[:, keep], text_sum], format="csr")
    raw = sp.hstack([c.raw_values[:, keep], sp.csr_matrix((c.n_rows, 1))], format="csr")
    names = (*(c.feature_names[i] for i in keep), TEXT_FACTOR)
    return Contributions(c.base, values, names, raw, c.scale)


def _text_mask(names: tuple[str, ...]) -> np.ndarray:
    cached = _MASKS.get(id(names))
    if cached is not None and cached[0] is names:
        return cached[1]
    mask = np.fromiter((name.startswith(EMBEDDING_PREFIX) for name in names), bool, count=len(names))
    if len(_MASKS) >= _NAMES_KEPT:
        _MASKS.pop(next(iter(_MASKS)))
    _MASKS[id(names)] = (names, mask)
    return mask


_MASKS: dict[int, tuple[tuple[str, ...], np.ndarray]] = {}


def name_index(names: tuple[str, ...]) -> dict[str, int]:
    """Feature name → column, made once per names tuple (as :func:`feature_names` hands out the same one)."""
    cached = _INDEXES.get(id(names))
    if cached is not None and cached[0] is names:
        return cached[1]
    index = {name: j for j, name in enumerate(names)}
    if len(_INDEXES) >= _NAMES_KEPT:
        _INDEXES.pop(next(iter(_INDEXES)))
    _INDEXES[id(names)] = (names, index)
    return index


_INDEXES: dict[int, tuple[tuple[str, ...], dict[str, int]]] = {}


def top_factors(c: Contributions, row: int, k: int = 5) -> TopFactors:
    """The ``k`` largest positive and ``k`` largest negative contributions of one row (ties by name);
    features that contributed nothing are in neither."""
    if not 0 <= row < c.n_rows:
        raise ConfigError(f"expected a row in 0..{c.n_rows - 1}, got {row}")
    if k < 1:
        raise ConfigError(f"expected k >= 1, got {k}")
    values = c.values.getrow(row)
    raw = c.raw_values.getrow(row).toarray().ravel()
    factors = [Factor(c.feature_names[j], float(v), float(raw[j]))
               for j, v in zip(values.indices, values.data, strict=True) if v != 0]
    up = sorted((f for f in factors if f.contribution > 0), key=lambda f: (-f.contribution, f.feature))
    down = sorted((f for f in factors if f.contribution < 0), key=lambda f: (f.contribution, f.feature))
    return TopFactors(tuple(up[:k]), tuple(down[:k]))


def global_importance(c: Contributions, top: int = 20) -> list[tuple[str, float]]:
    """The ``top`` features by mean |contribution| over rows (mean |SHAP| for trees), largest first."""
    if c.n_rows == 0:
        return []
    mean = np.asarray(abs(c.values).mean(axis=0)).ravel()
    order = sorted((j for j in np.flatnonzero(mean)), key=lambda j: (-mean[j], c.feature_names[j]))
    return [(c.feature_names[j], float(mean[j])) for j in order[:top]]
