"""A kept model: the fitted pipeline of a bundle with its calibrator and operating threshold.

:func:`load_bundle` checks the bundle's files (see :mod:`ehrpredict.bundle.files`), then rebuilds the
featurizer, head and calibrator from plain data. :meth:`Bundle.score` turns label rows of any event
source into :class:`Scores`; :func:`prediction_frame` lays them out in the MEDS prediction schema.

    >>> bundle = load_bundle("models/mortality")                                    # doctest: +SKIP
    >>> scores = bundle.score("out/meds", labels)                                   # doctest: +SKIP
    >>> scores.probability, scores.decision                                         # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from ehrpredict import schema as S
from ehrpredict.bundle.files import (
    CALIBRATION,
    TASK_FILE,
    TRAINING_CODES,
    BundleError,
    read_featurizer,
    read_head,
    read_json,
    read_manifest,
)
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import EventSource
from ehrpredict.executor import Executor
from ehrpredict.features.portable import featurizer_from_state
from ehrpredict.models.calibration import Calibrator, calibrator_from_json
from ehrpredict.models.portable import head_from_state
from ehrpredict.models.targets import MultilabelTarget, make_target
from ehrpredict.pipeline import FittedPipeline
from ehrpredict.tasks.spec import TaskSpec, parse_task

# The MEDS prediction schema (as meds-evaluation reads it) for binary tasks, and ours for the others.
PREDICTED_PROBABILITY = "predicted_boolean_probability"
PREDICTED_VALUE = "predicted_boolean_value"
PREDICTED_FLOAT = "predicted_float_value"
PREDICTED_CATEGORIES = "predicted_categorical_value"
PREDICTED_CATEGORY_PROBABILITIES = "predicted_category_probabilities"
UNCALIBRATED = "uncalibrated_probability"


def featurizer_parts(featurizer: Any) -> list[Any]:
    """A combination's part featurizers, or the featurizer itself."""
    return [part for _, part in featurizer.parts] if hasattr(featurizer, "parts") else [featurizer]


def feature_codes(featurizer: Any) -> set[str]:
    """The codes a fitted featurizer's columns are made of (the counts vocabulary; none for text)."""
    return {code for part in featurizer_parts(featurizer) if hasattr(part, "codes_") for code in part.codes_.to_list()}


def calibrated(calibrator: Calibrator, raw: np.ndarray) -> np.ndarray:
    """The bundle's published probability: the calibrator's output at float32 precision (the MEDS
    prediction schema's type, so the file meds-evaluation scores holds exactly these numbers), as
    float64. Thresholds are chosen on, and decisions made from, these same numbers."""
    return np.asarray(calibrator.transform(raw), dtype=np.float32).astype(np.float64)


@dataclass(frozen=True)
class Scores:
    """What a bundle says about label rows. Binary: ``raw`` (the head's probability), ``probability``
    (calibrated) and ``decision`` (calibrated probability ≥ threshold); regression: ``raw`` is the
    predicted value; multilabel: ``raw`` is (rows, categories) probabilities and ``decision`` the
    categories at or above their thresholds."""

    raw: np.ndarray
    probability: np.ndarray | None = None
    decision: np.ndarray | None = None


@dataclass
class Bundle:
    manifest: dict[str, Any]
    task: TaskSpec
    pipeline: FittedPipeline
    calibrator: Calibrator | None
    threshold: float | None
    category_thresholds: np.ndarray | None
    training_codes: pl.DataFrame  # code, n_events: every code of the training subjects' events
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["model_version"])

    @property
    def categories(self) -> tuple[str, ...]:
        target = self.pipeline.target
        return target.categories_ if isinstance(target, MultilabelTarget) else ()

    def score_features(self, X: Any) -> Scores:
        """:meth:`score` on features already made by the bundle's featurizer."""
        label_type = self.pipeline.label_type
        if label_type == "regression":
            return Scores(raw=self.pipeline.predict_features(X))
        raw = self.pipeline.predict_proba_features(X)
        if label_type == "multilabel":
            assert self.category_thresholds is not None
            return Scores(raw=raw, decision=raw >= self.category_thresholds[None, :])
        assert self.calibrator is not None and self.threshold is not None
        probability = calibrated(self.calibrator, raw)
        return Scores(raw=raw, probability=probability, decision=probability >= self.threshold)

    def use_embedding_cache(self, cache_dir: str | Path | None) -> None:
        """Where a text model's embeddings are cached (default: the user's embedding cache). Batched
        encoding is not bit-stable across batch compositions (~1e-7), so scores reproduce exactly what
        fit computed when they read the embeddings fit cached."""
        if cache_dir is None:
            return
        for part in featurizer_parts(self.pipeline.featurizer):
            if hasattr(part, "cache_dir"):
                part.cache_dir = Path(cache_dir)

    def probability(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated probability of the head's probabilities ``raw`` (binary bundles)."""
        if self.calibrator is None:
            raise ConfigError(f"expected a binary bundle with a calibrator, got {self.pipeline.label_type}")
        return calibrated(self.calibrator, raw)

    def score(self, source: EventSource | str | Path, labels: pl.DataFrame,
              executor: Executor | None = None) -> Scores:
        return self.score_features(self.pipeline.features(source, labels, executor))


def prediction_frame(bundle: Bundle, labels: pl.DataFrame, scores: Scores, with_uncalibrated: bool = False
                     ) -> pl.DataFrame:
    """``subject_id, prediction_time`` and the predictions in the MEDS prediction schema (binary:
    ``predicted_boolean_probability`` calibrated, ``predicted_boolean_value`` at the threshold), with
    the task's truth column when ``labels`` has it."""
    keys = labels.select(pl.col(S.SUBJECT_ID).cast(pl.Int64), pl.col(S.PREDICTION_TIME).cast(pl.Datetime("us")))
    label_type = bundle.pipeline.label_type
    columns: dict[str, Any] = {}
    truth = {"binary": S.BOOLEAN_VALUE, "regression": S.FLOAT_VALUE, "multilabel": S.CATEGORICAL_VALUE}[label_type]
    if label_type == "binary":
        assert scores.probability is not None and scores.decision is not None
        columns[PREDICTED_PROBABILITY] = pl.Series(scores.probability, dtype=pl.Float32)  # exact: see calibrated
        columns[PREDICTED_VALUE] = pl.Series(scores.decision, dtype=pl.Boolean)
        if with_uncalibrated:
            columns[UNCALIBRATED] = pl.Series(scores.raw, dtype=pl.Float64)
    elif label_type == "regression":
        columns[PREDICTED_FLOAT] = pl.Series(scores.raw, dtype=pl.Float64)
    else:
        assert scores.decision is not None
        categories = np.asarray(bundle.categories, dtype=object)
        columns[PREDICTED_CATEGORIES] = pl.Series(["|".join(categories[row]) for row in scores.decision],
                                                  dtype=pl.String)
        columns[PREDICTED_CATEGORY_PROBABILITIES] = pl.Series([row.tolist() for row in scores.raw],
                                                              dtype=pl.List(pl.Float64))
    frame = keys.with_columns(**columns)
    if truth in labels.columns:
        dtype = {S.BOOLEAN_VALUE: pl.Boolean, S.FLOAT_VALUE: pl.Float64, S.CATEGORICAL_VALUE: pl.String}[truth]
        frame = frame.with_columns(labels.get_column(truth).cast(dtype).alias(truth))
    return frame


def load_bundle(path: str | Path) -> Bundle:
    """A bundle written by ``ehrpredict fit``, checked (format version, every file's sha256) and
    rebuilt from plain data; a text model's encoder must be the one it was fitted with."""
    root = Path(path)
    manifest = read_manifest(root)
    try:
        task = parse_task(yaml.safe_load((root / TASK_FILE).read_text()), source=str(root / TASK_FILE))
    except (OSError, yaml.YAMLError) as exc:
        raise BundleError(f"expected the task definition {root / TASK_FILE}, got: {exc}") from exc
    except ConfigError as exc:
        raise BundleError(f"{root / TASK_FILE}: {exc}") from exc
    spec = manifest["model"]
    featurizer = featurizer_from_state(read_featurizer(root))
    head = head_from_state(read_head(root))
    target = make_target(task.label_type)
    calibrator, threshold, category_thresholds = None, None, None
    if task.label_type == "binary":
        calibration = read_json(root / CALIBRATION)
        calibrator = calibrator_from_json(calibration["calibrator"])
        threshold = float(calibration["threshold"]["value"])
    elif task.label_type == "multilabel":
        assert isinstance(target, MultilabelTarget)
        target.categories_ = tuple(str(c) for c in spec["categories"])
        category_thresholds = np.asarray(spec["category_thresholds"], dtype=np.float64)
        if len(category_thresholds) != len(target.categories_):
            raise BundleError(f"expected one threshold per category ({len(target.categories_)}), got "
                              f"{len(category_thresholds)} ({root / 'manifest.json'})")
    pipeline = FittedPipeline(task.name, task.label_type, str(spec["representation"]), str(spec["head"]),
                              featurizer, head, target)
    training_codes = pl.read_parquet(root / TRAINING_CODES)
    return Bundle(manifest, task, pipeline, calibrator, threshold, category_thresholds, training_codes, root)
