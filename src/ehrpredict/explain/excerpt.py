"""The timeline behind a factor: the events of its code within its window before the prediction time.

Events are read from the source and pass the counts featurizer's own cutoff: its fitted coding delay
(billing codes only ``coding_delay_`` after their time) and :func:`~ehrpredict.events.cutoff.events_at_or_before`,
so an excerpt shows exactly the events the feature could use, never one after the prediction time. With
roll-up, a parent code's factor shows the events of its children.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.events.cutoff import PREDICTION_TIME, ROW_INDEX, events_at_or_before
from ehrpredict.events.source import EventSource
from ehrpredict.explain.factors import FeatureName, format_number, split_unit, window_words
from ehrpredict.features.combine import Concatenated

FEATURE = "_feature"
FEATURE_CODE = "_feature_code"
WINDOW_US = "_window_us"  # the window's length in microseconds; null: all history
_COLUMNS = [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE]
_MICROSECOND = timedelta(microseconds=1)
PARENT = "_parent"  # the parent column of a counts featurizer's fitted roll-up table (``parents_``)


@dataclass(frozen=True)
class TimelineEvent:
    """One event as the excerpt shows it: when, what (the code's description) and its value."""

    time: datetime | None  # None: a static event
    code: str
    description: str
    value: str | None


@dataclass(frozen=True)
class FactorEvents:
    """The events behind one factor (newest first, at most the number asked for), and how many there were."""

    feature: str
    window: str  # in words: "24 h", "all history"
    events: tuple[TimelineEvent, ...]
    n_events: int


def counts_part(featurizer: Any) -> Any | None:
    """The fitted counts featurizer of a pipeline (itself or a part of a combination), or None."""
    parts = [part for _, part in featurizer.parts] if isinstance(featurizer, Concatenated) else [featurizer]
    return next((part for part in parts if hasattr(part, "coding_delay_") and hasattr(part, "windows_")), None)


def _wanted(features: Sequence[Sequence[str]]) -> pl.DataFrame:
    """Label row, feature, code and window length of every factor with a code."""
    rows: list[tuple[int, str, str, int | None]] = []
    for row, names in enumerate(features):
        for name in names:
            parsed = FeatureName.parse(name)
            if parsed.code is None:
                continue
            length = parsed.window_length()
            rows.append((row, name, parsed.code, None if length is None else length // _MICROSECOND))
    return pl.DataFrame(rows, schema={ROW_INDEX: pl.Int64, FEATURE: pl.String, FEATURE_CODE: pl.String,
                                      WINDOW_US: pl.Int64}, orient="row")


def _known(source: EventSource, counts: Any, rows: pl.DataFrame, codes: pl.Series) -> pl.DataFrame:
    """The events of ``codes`` (or of their children, with roll-up) each label row's features could use."""
    subjects = rows.get_column(S.SUBJECT_ID).unique()
    parents = getattr(counts, "parents_", None)
    known = []
    for shard in source.shards():
        events = source.read(shard, _COLUMNS, subjects).with_columns(pl.col(S.CODE).alias(FEATURE_CODE))
        if parents is not None:  # a parent's feature counts its children's events (as the featurizer does)
            rolled = events.join(parents, on=S.CODE).with_columns(pl.col(PARENT).alias(FEATURE_CODE))
            events = pl.concat([events, rolled.select(events.columns)])
        events = events.filter(pl.col(FEATURE_CODE).is_in(codes.implode()))
        # The coding delay is judged on the code the feature counts, as in the featurizer.
        delayed = counts.coding_delay_.apply(events.with_columns(pl.col(FEATURE_CODE).alias(S.CODE))
                                             ).with_columns(events.get_column(S.CODE))
        known.append(events_at_or_before(delayed, rows))
    return pl.concat(known) if known else pl.DataFrame()


def factor_events(featurizer: Any, source: EventSource, labels: pl.DataFrame, features: Sequence[Sequence[str]],
                  describe: Callable[[Iterable[str]], Mapping[str, str]], max_events: int = 10
                  ) -> list[dict[str, FactorEvents]]:
    """Per label row of ``labels``: feature → the events behind it (newest first, at most ``max_events``),
    for the ``features`` of that row that name a code; ``describe`` names the events' codes. Empty for a
    pipeline without a counts featurizer."""
    out: list[dict[str, FactorEvents]] = [{} for _ in range(labels.height)]
    counts = counts_part(featurizer)
    wanted = _wanted(features)
    if counts is None or wanted.is_empty():
        return out
    rows = labels.select(pl.col(S.SUBJECT_ID).cast(pl.Int64), pl.col(PREDICTION_TIME).cast(pl.Datetime("us"))
                         ).with_row_index(ROW_INDEX).with_columns(pl.col(ROW_INDEX).cast(pl.Int64))
    rows = rows.join(wanted.select(ROW_INDEX).unique(), on=ROW_INDEX, how="semi")
    known = _known(source, counts, rows, wanted.get_column(FEATURE_CODE).unique())
    if not known.is_empty():
        age = (pl.col(PREDICTION_TIME) - pl.col(S.TIME)).dt.total_microseconds()
        known = (known.join(wanted, on=[ROW_INDEX, FEATURE_CODE])
                 .filter(pl.col(WINDOW_US).is_null() | pl.col(S.TIME).is_null() | (age <= pl.col(WINDOW_US)))
                 .sort([ROW_INDEX, FEATURE, S.TIME, S.CODE], descending=[False, False, True, False], nulls_last=True))
        grouped = known.group_by(ROW_INDEX, FEATURE, maintain_order=True).agg(
            pl.len().alias("_n"), pl.struct(S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE).head(max_events))
        descriptions = describe(known.get_column(S.CODE).unique().to_list())
        for row, feature, n, events in grouped.iter_rows():
            shown = tuple(_event(e, descriptions) for e in events)
            out[row][feature] = FactorEvents(feature, _window(feature), shown, int(n))
    for row, feature in wanted.select(ROW_INDEX, FEATURE).iter_rows():
        out[row].setdefault(feature, FactorEvents(feature, _window(feature), (), 0))
    return out


def _window(feature: str) -> str:
    window = FeatureName.parse(feature).window
    return "" if window is None else window_words(window)


def _event(event: Mapping[str, Any], descriptions: Mapping[str, str]) -> TimelineEvent:
    code = event[S.CODE]
    description, unit = split_unit(descriptions.get(code, code))  # the unit goes with the value
    value = None
    if event[S.NUMERIC_VALUE] is not None:
        value = format_number(float(event[S.NUMERIC_VALUE])) + (f" {unit}" if unit else "")
    elif event[S.TEXT_VALUE] is not None:
        value = str(event[S.TEXT_VALUE])
    return TimelineEvent(event[S.TIME], code, description, value)
