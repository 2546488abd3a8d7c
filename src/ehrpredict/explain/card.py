"""An explanation card per label row: the prediction, the factors that moved it most, and the timeline
events behind those factors.

    >>> cards = explain_rows(pipeline, "out/meds", labels.head(3), k=5)             # doctest: +SKIP
    >>> print(cards[0].summary())                                                   # doctest: +SKIP
    >>> Path("card.html").write_text(cards[0].to_html())                            # doctest: +SKIP

A factor's contribution is exact (:mod:`ehrpredict.explain.contributions`): on the log-odds scale for a
binary task, in the prediction's unit for a regression. The calibrated probability and the decision come
from what a bundle keeps (a calibrator and a threshold), passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError, SchemaError
from ehrpredict.events.source import EventSource, as_source
from ehrpredict.explain.contributions import LOG_ODDS, Contributions, Factor, contributions, name_index, top_factors
from ehrpredict.explain.excerpt import FactorEvents, factor_events
from ehrpredict.explain.factors import COUNT, FeatureName, describe_factor
from ehrpredict.features.combine import Concatenated, concatenate
from ehrpredict.features.text import TextFeaturizer
from ehrpredict.pipeline import FittedPipeline
from ehrpredict.reporting.html import STYLE
from ehrpredict.text.serialize import describe_codes
from ehrpredict.vocab.kinds import code_kinds

Calibrator = Callable[[np.ndarray], np.ndarray]
CARD_STYLE = STYLE + """
.up{color:#b2182b}.down{color:#2166ac}
td.text{text-align:left}
.card{border:1px solid #ccc;border-radius:6px;padding:0.5rem 1rem;margin-bottom:1.5rem}
"""


@dataclass(frozen=True)
class CardFactor:
    """One factor as the card shows it: its sentence, its signed contribution and the featurizer's value."""

    feature: str
    text: str
    contribution: float
    value: float


@dataclass(frozen=True)
class ExplanationCard:
    """One label row explained. ``probability``: the model's (binary tasks); ``calibrated_probability``
    and ``decision`` (at ``threshold``) when a calibrator and threshold were given. ``excerpt``: the
    events behind the factors that name a code, in the order of ``up`` then ``down``."""

    task: str
    label_type: str
    subject_id: int
    prediction_time: datetime
    base_value: float
    raw_score: float
    scale: str
    probability: float | None
    calibrated_probability: float | None
    threshold: float | None
    decision: bool | None
    up: tuple[CardFactor, ...]
    down: tuple[CardFactor, ...]
    excerpt: tuple[FactorEvents, ...]

    def _headline(self) -> list[str]:
        if self.label_type == "binary":
            lines = [f"Predicted risk {self.probability:.3f} (score {self.raw_score:+.3f} log-odds; "
                     f"base {self.base_value:+.3f})"]
            if self.calibrated_probability is not None:
                lines.append(f"Calibrated risk {self.calibrated_probability:.3f}")
        else:
            lines = [f"Predicted value {self.raw_score:.3f} (base {self.base_value:.3f})"]
        if self.threshold is not None:
            lines.append(f"Threshold {self.threshold:.3f}: {'at or above (flagged)' if self.decision else 'below'}")
        return lines

    def _what(self) -> str:
        return "risk" if self.label_type == "binary" else "prediction"

    def _factor_text(self, feature: str) -> str:
        return next(f.text for f in (*self.up, *self.down) if f.feature == feature)

    def summary(self) -> str:
        """Plain text for a terminal."""
        unit = " (log-odds)" if self.scale == LOG_ODDS else ""
        lines = [f"{self.task}: subject {self.subject_id} at {self.prediction_time}", *self._headline()]
        for title, factors in ((f"Pushing the {self._what()} up{unit}:", self.up),
                               (f"Pushing the {self._what()} down{unit}:", self.down)):
            lines.append(title)
            lines += [f"  {f.contribution:+.3f}  {f.text}" for f in factors] or ["  (none)"]
        if self.excerpt:
            lines.append("Timeline behind these factors (events at or before the prediction time):")
        for item in self.excerpt:
            lines.append(f"  {self._factor_text(item.feature)}")
            lines += [f"    {_time(e.time)}  {e.description}{f': {e.value}' if e.value else ''}" for e in item.events]
            if not item.events:
                lines.append(f"    (no events in {item.window})")
            elif item.n_events > len(item.events):
                lines.append(f"    ... {item.n_events - len(item.events)} older events in {item.window}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """A self-contained HTML page (no scripts, fonts or requests); every text from the data escaped."""
        title = escape(f"{self.task}: subject {self.subject_id} at {self.prediction_time}")
        head = "".join(f"<p>{escape(line)}</p>" for line in self._headline())
        unit = " (log-odds)" if self.scale == LOG_ODDS else ""
        tables = "".join(_factor_table(f"Pushing the {self._what()} {way}{unit}", factors, css)
                         for way, factors, css in (("up", self.up, "up"), ("down", self.down, "down")))
        excerpt = "".join(self._excerpt_html(item) for item in self.excerpt)
        if excerpt:
            excerpt = "<h2>Timeline behind these factors</h2><p class=muted>Events at or before the prediction " \
                      "time, within each factor's window, newest first.</p>" + excerpt
        body = f"<div class=card><h1>{title}</h1>{head}{tables}{excerpt}</div>"
        return (f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title>"
                f"<style>{CARD_STYLE}</style></head><body>{body}</body></html>\n")

    def _excerpt_html(self, item: FactorEvents) -> str:
        heading = f"<h3>{escape(self._factor_text(item.feature))}</h3>"
        if not item.events:
            return heading + f"<p class=muted>No events in {escape(item.window)}.</p>"
        rows = "".join(f"<tr><td>{escape(_time(e.time))}</td><td class=text>{escape(e.description)}</td>"
                       f"<td>{escape(e.value or '')}</td></tr>" for e in item.events)
        more = (f"<p class=muted>{item.n_events - len(item.events)} older events in {escape(item.window)} not "
                f"shown.</p>" if item.n_events > len(item.events) else "")
        return f"{heading}<table><tr><th>time</th><th>event</th><th>value</th></tr>{rows}</table>{more}"


def _time(time: datetime | None) -> str:
    return "static" if time is None else time.strftime("%Y-%m-%d %H:%M")


def _factor_table(title: str, factors: tuple[CardFactor, ...], css: str) -> str:
    if not factors:
        return f"<h2>{escape(title)}</h2><p class=muted>None.</p>"
    rows = "".join(f"<tr><td class={css}>{f.contribution:+.3f}</td><td class=text>{escape(f.text)}</td></tr>"
                   for f in factors)
    return f"<h2>{escape(title)}</h2><table><tr><th>contribution</th><th>factor</th></tr>{rows}</table>"


def _text_part(featurizer: Any) -> TextFeaturizer | None:
    parts = [part for _, part in featurizer.parts] if isinstance(featurizer, Concatenated) else [featurizer]
    return next((part for part in parts if isinstance(part, TextFeaturizer)), None)


def _features(pipeline: FittedPipeline, source: EventSource, labels: pl.DataFrame) -> tuple[Any, sp.csr_matrix]:
    """The head's input and the featurizer's values before a combination's log transform (made from the
    blocks themselves: log1p clips values below -0.99, which expm1 could not take back)."""
    featurizer = pipeline.featurizer
    if not isinstance(featurizer, Concatenated):
        X = pipeline.features(source, labels)
        return X, sp.csr_matrix(X, dtype=np.float64)
    blocks = [part.transform(labels, source=source) for _, part in featurizer.parts]
    raw = sp.hstack([sp.csr_matrix(b, dtype=np.float64) for b in blocks], format="csr")
    return concatenate(blocks, featurizer.log_transform), raw


def _checked_labels(labels: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in (S.SUBJECT_ID, S.PREDICTION_TIME) if c not in labels.columns]
    if missing:
        raise SchemaError(f"expected label rows with columns {S.SUBJECT_ID} and {S.PREDICTION_TIME}, got "
                          f"{labels.columns} (missing {', '.join(missing)})")
    return labels


def explain_rows(pipeline: FittedPipeline, source: EventSource | str | Path, labels: pl.DataFrame, k: int = 5,
                 calibrate: Calibrator | None = None, threshold: float | None = None,
                 max_events: int = 10) -> list[ExplanationCard]:
    """One :class:`ExplanationCard` per label row: the ``k`` factors that raised the score most and the
    ``k`` that lowered it most, with up to ``max_events`` events behind each factor that names a code.

    ``calibrate`` maps the model's probabilities to calibrated ones (binary tasks); ``threshold`` decides
    on the calibrated probability when there is one, else on the model's (a regression: on its prediction)."""
    if calibrate is not None and pipeline.label_type != "binary":
        raise ConfigError(f"expected a binary task for a calibrator, got {pipeline.task} ({pipeline.label_type})")
    source = as_source(source)
    labels = _checked_labels(labels)
    X, raw = _features(pipeline, source, labels)
    c = contributions(pipeline, X, raw)
    probability = pipeline.predict_proba_features(X) if pipeline.label_type == "binary" else None
    calibrated = None if calibrate is None or probability is None else np.asarray(calibrate(probability), float)
    decided = calibrated if calibrated is not None else probability if probability is not None else c.score()
    tops = [top_factors(c, row, k) for row in range(c.n_rows)]
    features = [[f.feature for f in (*t.up, *t.down)] for t in tops]
    text = _text_part(pipeline.featurizer)
    dictionary = source.codes()

    def describe(codes: Iterable[str]) -> Mapping[str, str]:
        return describe_codes(codes, dictionary, None if text is None else text.serializer_)

    codes = {code for names in features for name in names if (code := FeatureName.parse(name).code)}
    descriptions = describe(codes)
    kinds = code_kinds(source.metadata())
    excerpts = factor_events(pipeline.featurizer, source, labels, features, describe, max_events)
    index = name_index(c.feature_names)
    cards = []
    for row, (top, excerpt) in enumerate(zip(tops, excerpts, strict=True)):
        def card_factor(f: Factor, row: int = row) -> CardFactor:
            count = count_of(c, index, row, f.feature)
            return CardFactor(f.feature, describe_factor(f.feature, f.value, descriptions, kinds, count),
                              f.contribution, f.value)

        cards.append(ExplanationCard(
            pipeline.task, pipeline.label_type, int(labels.item(row, S.SUBJECT_ID)),
            labels.item(row, S.PREDICTION_TIME), float(c.base[row]), float(c.score()[row]), c.scale,
            None if probability is None else float(probability[row]),
            None if calibrated is None else float(calibrated[row]), threshold,
            None if threshold is None else bool(decided[row] >= threshold),
            tuple(map(card_factor, top.up)), tuple(map(card_factor, top.down)),
            tuple(excerpt[name] for name in features[row] if name in excerpt)))
    return cards


def count_of(c: Contributions, index: Mapping[str, int], row: int, feature: str) -> float | None:
    """The row's count of a value statistic's code in its window (None for other features, or when the
    featurizer has no such column), so that an absent value reads "not measured"."""
    parsed = FeatureName.parse(feature)
    if parsed.stat is None or parsed.stat == COUNT:
        return None
    column = index.get(f"{parsed.code}|{parsed.window}|{COUNT}")
    return None if column is None else float(c.raw_values[row, column])
