"""Representations side by side: the columns of several fitted featurizers, concatenated.

A block of raw counts is log-transformed before it joins other blocks (embeddings are already on a
comparable scale), which is why a combination's head gets no log transform of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrpredict.errors import ConfigError
from ehrpredict.events.source import EventSource
from ehrpredict.executor import Executor
from ehrpredict.features.base import Featurizer
from ehrpredict.models.preprocess import log1p


def concatenate(blocks: Sequence[Any], log_transform: Sequence[bool]) -> sp.csr_matrix:
    """``blocks`` side by side (sparse), those flagged in ``log_transform`` through log1p first."""
    return sp.hstack([log1p(X) if flag else sp.csr_matrix(X)
                      for X, flag in zip(blocks, log_transform, strict=True)]).tocsr()


class Concatenated:
    """Several featurizers' columns side by side; ``log_transform[i]`` marks raw-count blocks."""

    def __init__(self, parts: Sequence[tuple[str, Featurizer]], log_transform: Sequence[bool]) -> None:
        if len(parts) < 2 or len(parts) != len(log_transform):
            raise ConfigError(f"expected two or more parts, each with a log-transform flag, got {len(parts)} parts "
                              f"and {len(log_transform)} flags")
        self.parts = tuple(parts)
        self.log_transform = tuple(log_transform)

    def fit(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
            executor: Executor | None = None) -> Concatenated:
        for _, part in self.parts:
            part.fit(labels, source=source, executor=executor)
        return self

    def transform(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  executor: Executor | None = None) -> sp.csr_matrix:
        return concatenate([part.transform(labels, source=source, executor=executor) for _, part in self.parts],
                           self.log_transform)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """The parts' column names, side by side as :meth:`transform` puts their columns."""
        names = []
        for name, part in self.parts:
            accessor = getattr(part, "get_feature_names_out", None)
            if accessor is None:
                raise ConfigError(f"expected every part to name its columns (get_feature_names_out), got "
                                  f"{type(part).__name__} for part {name!r}")
            names.append(np.asarray(accessor(), dtype=str))
        return np.concatenate(names)

    def describe(self) -> dict[str, Any]:
        return {name: part.describe() for name, part in self.parts}
