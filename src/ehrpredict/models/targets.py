"""How a task's label column becomes what a head learns: one small class per label type.

    >>> import polars as pl
    >>> BinaryTarget().fit(pl.DataFrame({"boolean_value": [True, False]})).encode(
    ...     pl.DataFrame({"boolean_value": [False, True]})).tolist()
    [0, 1]
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError

MIN_LABEL_POSITIVES = 5  # multilabel: categories with fewer train positives get no classifier
_CATEGORIES = "_categories"


class Target(Protocol):
    label_type: str

    def fit(self, labels: pl.DataFrame) -> Target: ...

    def encode(self, labels: pl.DataFrame) -> np.ndarray: ...


class BinaryTarget:
    label_type = "binary"

    def fit(self, labels: pl.DataFrame) -> BinaryTarget:
        return self

    def encode(self, labels: pl.DataFrame) -> np.ndarray:
        return labels.get_column(S.BOOLEAN_VALUE).to_numpy().astype(int)


class RegressionTarget:
    label_type = "regression"

    def fit(self, labels: pl.DataFrame) -> RegressionTarget:
        return self

    def encode(self, labels: pl.DataFrame) -> np.ndarray:
        return labels.get_column(S.FLOAT_VALUE).cast(pl.Float64).to_numpy()


class MultilabelTarget:
    """Categories (``"a|b"`` in ``categorical_value``) seen at least ``min_positives`` times in the rows
    given to ``fit`` (the train split), sorted; ``encode`` gives a 0/1 matrix over them."""

    label_type = "multilabel"

    def __init__(self, min_positives: int = MIN_LABEL_POSITIVES) -> None:
        self.min_positives = min_positives

    def fit(self, labels: pl.DataFrame) -> MultilabelTarget:
        counts = _categories(labels).get_column(_CATEGORIES).explode(empty_as_null=True).value_counts()
        self.categories_: tuple[str, ...] = tuple(sorted(
            counts.filter(pl.col("count") >= self.min_positives).get_column(_CATEGORIES).to_list()))
        return self

    def encode(self, labels: pl.DataFrame) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.categories_)}
        Y = np.zeros((labels.height, len(index)), dtype=int)
        for row, categories in enumerate(_categories(labels).get_column(_CATEGORIES).to_list()):
            for category in categories:
                if category in index:
                    Y[row, index[category]] = 1
        return Y


def _categories(labels: pl.DataFrame) -> pl.DataFrame:
    return labels.select(pl.col(S.CATEGORICAL_VALUE).str.split("|").alias(_CATEGORIES))


def make_target(label_type: str) -> Target:
    if label_type == "binary":
        return BinaryTarget()
    if label_type == "regression":
        return RegressionTarget()
    if label_type == "multilabel":
        return MultilabelTarget()
    raise ConfigError(f"expected a label type with a head (binary, regression, multilabel), got {label_type!r}")
