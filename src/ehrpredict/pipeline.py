"""The one training path: ``fit_pipeline`` → :class:`FittedPipeline` (featurizer + head for a task).

Benchmark runs, few-shot replicates, label-shuffle controls, regression and multilabel tasks all fit
through :func:`fit_pipeline`; what comes out scores label rows of any event source:

    >>> data = TaskData.from_splits("out/meds", labels)                            # doctest: +SKIP
    >>> pipeline = fit_pipeline(spec, "counts", "lgbm", data, seed=0)               # doctest: +SKIP
    >>> pipeline.predict_proba("out/meds", held_out_labels)                         # doctest: +SKIP
    >>> pipeline.predict_proba(InMemoryEvents(events_of_one_patient), one_row)      # doctest: +SKIP

:class:`TaskData` holds a task's label rows by split and the event source, and keeps every fitted
featurizer and feature matrix it makes, so that the heads, the controls and the few-shot replicates of
one task share one featurization (the text of a timeline is embedded once, not once per head). The
featurizer is always fitted on the train split's rows, which use no outcome.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import EventSource, ParquetEvents, as_source
from ehrpredict.executor import Executor
from ehrpredict.features.base import Featurizer
from ehrpredict.features.combine import concatenate
from ehrpredict.features.registry import RepresentationSettings, get_representation
from ehrpredict.models.heads import make_head, make_regressor
from ehrpredict.models.multilabel import make_multilabel_head
from ehrpredict.models.targets import Target, make_target
from ehrpredict.tasks.spec import TaskSpec


class TaskData:
    """A task's label rows by split (``train``, ``tuning``, ``held_out``) on an event source, with a
    memo of fitted featurizers and matrices per representation."""

    def __init__(self, source: EventSource | str | Path, parts: Mapping[str, pl.DataFrame],
                 settings: RepresentationSettings | None = None, executor: Executor | None = None) -> None:
        missing = [s for s in (S.TRAIN, S.TUNING) if s not in parts]
        if missing:
            raise ConfigError(f"expected label rows for the splits {S.TRAIN} and {S.TUNING}, got {sorted(parts)}")
        self.source = as_source(source)
        self.parts = dict(parts)
        self.settings = settings or RepresentationSettings()
        self.executor = executor
        self._fitted: dict[str, Featurizer] = {}
        self._matrices: dict[str, dict[str, Any]] = {}
        self._seconds: dict[str, float] = {}

    @classmethod
    def from_splits(cls, source: EventSource | str | Path, labels: pl.DataFrame,
                    splits: pl.DataFrame | None = None, settings: RepresentationSettings | None = None,
                    executor: Executor | None = None) -> TaskData:
        """Labels divided by the dataset's stored subject splits (or ``splits``: subject_id, split)."""
        source = as_source(source)
        if splits is None:
            if not isinstance(source, ParquetEvents):
                raise ConfigError(f"expected subject splits for labels on {source} (only a MEDS directory stores "
                                  "its own), got none")
            splits = source.splits()
        frame = labels.join(splits.select(S.SUBJECT_ID, S.SPLIT), on=S.SUBJECT_ID, how="inner")
        return cls(source, {s: frame.filter(pl.col(S.SPLIT) == s) for s in S.SPLITS}, settings, executor)

    def featurizer(self, representation: str) -> Featurizer:
        """The representation's featurizer fitted on the train split (a combination: of its fitted parts)."""
        if representation not in self._fitted:
            spec = get_representation(representation)
            if spec.parts:  # the parts' fitted featurizers, shared with the parts' own use
                self._fitted[representation] = spec.combine(lambda part: self.featurizer(part.name))
            else:
                start = time.perf_counter()
                self._fitted[representation] = spec.featurizer(self.settings).fit(
                    self.parts[S.TRAIN], source=self.source, executor=self.executor)
                self._seconds[representation] = time.perf_counter() - start
        return self._fitted[representation]

    def matrix(self, representation: str, split: str) -> Any:
        """The features of one split's rows, made on first use and kept."""
        matrices = self._matrices.setdefault(representation, {})
        if split not in matrices:
            spec = get_representation(representation)
            if spec.parts:
                parts = [get_representation(p) for p in spec.parts]
                matrices[split] = concatenate([self.matrix(p.name, split) for p in parts],
                                              [p.raw_counts for p in parts])
            else:
                featurizer = self.featurizer(representation)
                start = time.perf_counter()
                matrices[split] = featurizer.transform(self.parts[split], source=self.source, executor=self.executor)
                self._seconds[representation] += time.perf_counter() - start
        return matrices[split]

    def seconds(self, representation: str) -> float:
        """Time spent fitting and transforming for this representation (a combination: its parts')."""
        spec = get_representation(representation)
        if spec.parts:
            return sum(self.seconds(p) for p in spec.parts)
        return self._seconds.get(representation, 0.0)


@dataclass(frozen=True)
class FittedPipeline:
    """A fitted featurizer and head for one task; scores label rows of any event source."""

    task: str
    label_type: str
    representation: str
    head_name: str
    featurizer: Featurizer
    head: Any
    target: Target

    def features(self, source: EventSource | str | Path, labels: pl.DataFrame,
                 executor: Executor | None = None) -> Any:
        return self.featurizer.transform(labels, source=source, executor=executor)

    def predict_proba(self, source: EventSource | str | Path, labels: pl.DataFrame,
                      executor: Executor | None = None) -> np.ndarray:
        """Binary: the probability of the positive class per row; multilabel: one column per category."""
        return self.predict_proba_features(self.features(source, labels, executor))

    def predict(self, source: EventSource | str | Path, labels: pl.DataFrame,
                executor: Executor | None = None) -> np.ndarray:
        """Regression: the predicted value per row."""
        return self.predict_features(self.features(source, labels, executor))

    def predict_proba_features(self, X: Any) -> np.ndarray:
        """:meth:`predict_proba` on features already computed by this pipeline's featurizer."""
        if self.label_type == "regression":
            raise ConfigError(f"expected a classification task for predict_proba, got {self.task} (regression): "
                              "use predict")
        P = np.asarray(self.head.predict_proba(X))
        return P[:, 1] if self.label_type == "binary" else P

    def predict_features(self, X: Any) -> np.ndarray:
        if self.label_type != "regression":
            raise ConfigError(f"expected a regression task for predict, got {self.task} ({self.label_type}): "
                              "use predict_proba")
        return np.asarray(self.head.predict(X))


def make_estimator(label_type: str, head: str, seed: int, log1p: bool) -> Any:
    """The unfitted head for a label type: binary and regression heads by name; multilabel has one
    (one-vs-rest logistic regression, ``lr``)."""
    if label_type == "binary":
        return make_head(head, seed, log1p)
    if label_type == "regression":
        return make_regressor(head, seed, log1p)
    if label_type == "multilabel":
        if head != "lr":
            raise ConfigError(f"expected head lr (one-vs-rest) for a multilabel task, got {head!r}")
        return make_multilabel_head(seed)
    raise ConfigError(f"expected a label type with a head (binary, regression, multilabel), got {label_type!r}")


def fit_pipeline(task: TaskSpec, representation: str, head: str, data: TaskData, *, seed: int = 0,
                 train_index: np.ndarray | None = None, tuning_index: np.ndarray | None = None,
                 y_train: np.ndarray | None = None, head_params: Mapping[str, Any] | None = None,
                 target: Target | None = None) -> FittedPipeline:
    """Fit ``representation``'s featurizer on ``data``'s train rows and ``head`` on its features,
    early-stopped or tuned on the tuning rows.

    The head may learn from a subset of rows (``train_index``/``tuning_index``: few-shot), from other
    targets for the train rows (``y_train``: a label-shuffle control) or with parameters set
    (``head_params``, e.g. ``{"head__c_grid": (0.1,)}``); the featurizer is the same either way.
    ``target`` passes an already fitted target encoder (multilabel categories)."""
    target = target or make_target(task.label_type).fit(data.parts[S.TRAIN])
    featurizer = data.featurizer(representation)
    X_train, X_tune = data.matrix(representation, S.TRAIN), data.matrix(representation, S.TUNING)
    y = target.encode(data.parts[S.TRAIN]) if y_train is None else y_train
    y_tune = target.encode(data.parts[S.TUNING])
    if train_index is not None:
        X_train, y = X_train[train_index], y[train_index]
    if tuning_index is not None:
        X_tune, y_tune = X_tune[tuning_index], y_tune[tuning_index]
    estimator = make_estimator(task.label_type, head, seed, get_representation(representation).raw_counts)
    if head_params:
        estimator.set_params(**head_params)
    if task.label_type == "multilabel":
        estimator.fit(X_train, y)  # the tuning split sets per-category thresholds instead
    else:
        estimator.fit(X_train, y, X_val=X_tune, y_val=y_tune)
    return FittedPipeline(task.name, task.label_type, representation, head, featurizer, estimator, target)
