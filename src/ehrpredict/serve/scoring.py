"""Scoring one patient at a time with a loaded bundle: the service's core, free of any web framework.

A request's events become an :class:`~ehrpredict.events.source.InMemoryEvents` source and its
prediction time a one-row label frame; the bundle scores them with the same featurizer, head,
calibrator and threshold ``ehrpredict predict`` uses (:meth:`Bundle.score_features`), so the
service's probability for a patient equals the file's. Factors come from the same
:func:`~ehrpredict.bundle.explain.explanation_frame` as ``predict --explain``.

    >>> model = ServedModel.load("models/long-los")                                 # doctest: +SKIP
    >>> result = model.score(events, datetime(2180, 7, 23, 12))                     # doctest: +SKIP
    >>> result.probability, result.decision                                          # doctest: +SKIP
"""

from __future__ import annotations

import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.bundle.explain import described, explanation_frame
from ehrpredict.bundle.model import Bundle, load_bundle
from ehrpredict.errors import DataError
from ehrpredict.events.cutoff import PREDICTION_TIME
from ehrpredict.events.source import InMemoryEvents

TOP_UNKNOWN = 20
MAX_FACTORS = 20
# A request without a subject id is one anonymous patient; it needs some id inside the frame.
ANONYMOUS_SUBJECT = 0


class InputError(DataError):
    """A request's content is wrong; ``path`` names the field (``events[3].time``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Factor:
    direction: str  # "up" raises the score, "down" lowers it
    rank: int
    feature: str
    factor: str  # the feature in words, with its value
    contribution: float  # log-odds (binary) or the prediction's unit (regression)
    value: float


@dataclass(frozen=True)
class UnknownCodes:
    """Codes of the input events the training subjects never had: the model ignores those events."""

    events: int
    distinct: int
    top: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PatientScore:
    subject_id: int
    prediction_time: datetime
    label_type: str
    events_used: int  # input events at or before the prediction time (static events included)
    probability: float | None = None  # binary: calibrated
    uncalibrated_probability: float | None = None
    decision: bool | None = None
    threshold: float | None = None
    prediction: float | None = None  # regression
    categories: tuple[str, ...] = ()  # multilabel: the categories at or above their thresholds
    category_probabilities: Mapping[str, float] = field(default_factory=dict)
    factors: tuple[Factor, ...] = ()
    unknown: UnknownCodes = UnknownCodes(0, 0, ())
    seconds: float = 0.0


@dataclass
class ServedModel:
    """A bundle loaded once for serving, with the set of codes it was trained on (for the unknown-codes
    report). Its training descriptions are read once too (:func:`~ehrpredict.bundle.explain.described`)."""

    bundle: Bundle
    known_codes: pl.Series

    @classmethod
    def load(cls, path: str | Path) -> ServedModel:
        bundle = load_bundle(path)
        return cls(bundle, bundle.training_codes.get_column(S.CODE).cast(pl.String))

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def explainable(self) -> bool:
        p = self.bundle.pipeline
        return p.representation != "text" and p.label_type != "multilabel"

    def score(self, events: pl.DataFrame, prediction_time: datetime, subject_id: int | None = None,
              explain: int = 5) -> PatientScore:
        """Score one patient's ``events`` (EVENT_SCHEMA columns; ``subject_id`` optional) at
        ``prediction_time``. Events after the prediction time are refused: a service that took them
        would be scoring on the future."""
        return self.score_many([(events, prediction_time, subject_id)], explain=explain)[0]

    def score_many(self, patients: Sequence[tuple[pl.DataFrame, datetime, int | None]], explain: int = 5
                   ) -> list[PatientScore]:
        """Several patients in one featurization (the batch endpoint): the same numbers as one by one."""
        start = clock.perf_counter()
        # Inside the frame each patient is its position: a batch may hold one subject at several times.
        frames, rows = [], []
        for i, (events, when, _) in enumerate(patients):
            frames.append(_patient_events(events, when, i, prefix=f"patients[{i}]." if len(patients) > 1 else ""))
            rows.append((i, when))
        events = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=S.EVENT_SCHEMA)
        # The bundle's training descriptions are the request's code dictionary (for a text model's text
        # and readable factors), completed once here rather than merged again per explanation.
        source = described(self.bundle, InMemoryEvents(events))
        labels = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, PREDICTION_TIME: pl.Datetime("us")}, orient="row")
        X = self.bundle.pipeline.features(source, labels)
        scores = self.bundle.score_features(X)
        factors = (explanation_frame(self.bundle, X, labels, source, explain)
                   if explain > 0 and self.explainable else None)
        seconds = (clock.perf_counter() - start) / max(len(rows), 1)
        results = []
        for i, (_, when, subject) in enumerate(patients):
            results.append(PatientScore(
                subject_id=ANONYMOUS_SUBJECT if subject is None else subject, prediction_time=when,
                label_type=self.bundle.pipeline.label_type, events_used=frames[i].height, **self._outputs(scores, i),
                factors=_factors(factors, i) if factors is not None else (),
                unknown=self._unknown(frames[i]), seconds=round(seconds, 6)))
        return results

    def _outputs(self, scores: Any, i: int) -> dict[str, Any]:
        label_type = self.bundle.pipeline.label_type
        if label_type == "binary":
            return {"probability": float(scores.probability[i]), "uncalibrated_probability": float(scores.raw[i]),
                    "decision": bool(scores.decision[i]), "threshold": self.bundle.threshold}
        if label_type == "regression":
            return {"prediction": float(scores.raw[i])}
        categories = self.bundle.categories
        chosen = np.flatnonzero(scores.decision[i])
        return {"categories": tuple(categories[j] for j in chosen),
                "category_probabilities": {c: float(p) for c, p in zip(categories, scores.raw[i], strict=True)}}

    def _unknown(self, events: pl.DataFrame) -> UnknownCodes:
        codes = events.get_column(S.CODE)
        unknown = codes.filter(~codes.is_in(self.known_codes.implode()))
        if unknown.is_empty():
            return UnknownCodes(0, 0, ())
        counts = unknown.value_counts(sort=True, name="n").head(TOP_UNKNOWN)
        return UnknownCodes(unknown.len(), unknown.n_unique(),
                            tuple((str(c), int(n)) for c, n in counts.iter_rows()))


def _patient_events(events: pl.DataFrame, when: datetime, subject_id: int, prefix: str = "") -> pl.DataFrame:
    """The patient's events with ``subject_id`` set, checked: none after the prediction time."""
    if events.is_empty():
        return pl.DataFrame(schema=S.EVENT_SCHEMA)
    if S.TIME in events.columns:
        late = events.get_column(S.TIME).cast(pl.Datetime("us")) > when
        if late.any():
            row = int(late.arg_true()[0])
            raise InputError(f"{prefix}events[{row}].time",
                             f"expected events at or before the prediction time {when.isoformat()}, got "
                             f"{events.item(row, S.TIME)} ({int(late.sum())} events after it)")
    # Checked and put in MEDS order once, when the request's source is made (score_many).
    return events.with_columns(pl.lit(subject_id, pl.Int64).alias(S.SUBJECT_ID))


def _factors(frame: pl.DataFrame, subject_id: int) -> tuple[Factor, ...]:
    mine = frame.filter(pl.col(S.SUBJECT_ID) == subject_id).head(MAX_FACTORS)
    return tuple(Factor(str(r["direction"]), int(r["rank"]), str(r["feature"]), str(r["factor"]),
                        float(r["contribution"]), float(r["value"])) for r in mine.iter_rows(named=True))
