"""Counts representation: time-windowed code counts and numeric aggregates, as a sparse matrix.

For each label row (subject, prediction_time) and each window before the prediction time (1 d, 7 d,
30 d, 365 d, all history): how often each code occurred, and for codes with values the last, mean,
min and max value. The vocabulary is learned on the rows given to ``fit`` (the train split) with a
minimum frequency; optional roll-up adds each code's parents (ICD categories, lab items). Billing
codes count only ``coding_delay`` after their time (see :mod:`ehrpredict.events.cutoff`).

    >>> featurizer = CountsFeaturizer().fit(train_labels, source="out/meds")  # doctest: +SKIP
    >>> X = featurizer.transform(held_out_labels, source="out/meds")  # a csr_matrix  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.events.cutoff import (
    DEFAULT_CODING_DELAY,
    PREDICTION_TIME,
    ROW_INDEX,
    CodingDelay,
    coding_delay_for,
    events_at_or_before,
)
from ehrpredict.events.source import EventSource, ShardRef, as_source
from ehrpredict.executor import Executor, local
from ehrpredict.tasks.spec import parse_duration

DEFAULT_WINDOWS = ("1d", "7d", "30d", "365d", "all")
STATS = ("count", "last", "mean", "min", "max")
WINDOW = "_window"


def _windows(spec: Sequence[str]) -> list[tuple[str, timedelta | None]]:
    if not spec:
        raise ConfigError("expected at least one window, got none")
    return [(w, None if w == "all" else parse_duration(w, "windows")) for w in spec]


class CountsFeaturizer(BaseEstimator):
    """From label rows (subject_id, prediction_time) and an :class:`~ehrpredict.events.source.EventSource`
    to a sparse matrix. What ``fit`` learns (the vocabulary, the billing vocabularies' delay, the code
    parents for roll-up) is kept; the events always come from the ``source`` given to each call."""

    def __init__(self, windows: Sequence[str] = DEFAULT_WINDOWS, min_count: int = 5, rollup: bool = False,
                 coding_delay: str = DEFAULT_CODING_DELAY) -> None:
        self.windows = windows
        self.min_count = min_count
        self.rollup = rollup
        self.coding_delay = coding_delay

    def fit(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
            executor: Executor | None = None) -> CountsFeaturizer:
        if self.min_count < 1:
            raise ConfigError(f"expected min_count >= 1, got {self.min_count}")
        source = as_source(source)
        self.windows_ = _windows(self.windows)
        self.coding_delay_ = coding_delay_for(source.metadata(), parse_duration(self.coding_delay, "coding_delay"))
        self.parents_ = _parents(source.codes()) if self.rollup else None
        # Per code: in how many label rows' histories it appears, and whether it ever carries a value.
        # A subject's events live in one shard, so per-shard counts of label rows add up.
        reader = _Reader(source, _rows(labels), self.parents_, None, self.coding_delay_)
        parts = [part for part in (executor or local()).map(partial(_code_summary, reader), source.shards())
                 if part is not None]
        summary = (pl.concat(parts).group_by(S.CODE).agg(pl.col("n").sum(), pl.col("numeric").any()) if parts
                   else pl.DataFrame(schema={S.CODE: pl.String, "n": pl.UInt32, "numeric": pl.Boolean}))
        vocab = summary.filter(pl.col("n") >= self.min_count).sort(S.CODE)
        names: list[str] = []
        for code, numeric in vocab.select(S.CODE, "numeric").iter_rows():
            for window, _ in self.windows_:
                names.extend(f"{code}|{window}|{stat}" for stat in (STATS if numeric else ("count",)))
        self.codes_ = vocab.get_column(S.CODE)
        self.feature_names_: np.ndarray = np.asarray(names)
        self.columns_ = pl.DataFrame({"_name": names, "_column": np.arange(len(names), dtype=np.int64)})
        return self

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_

    def transform(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  executor: Executor | None = None) -> sp.csr_matrix:
        check_is_fitted(self, "codes_")
        source = as_source(source)
        # Shard by shard, straight to numeric (row, column, value) triplets: the long frame with its
        # string columns never exists for the whole dataset at once, so memory follows one shard.
        reader = _Reader(source, _rows(labels), self.parents_, self.codes_, self.coding_delay_)
        work = partial(_shard_triplets, reader, self.windows_, self.columns_)
        triplets = [t for t in (executor or local()).map(work, source.shards()) if t is not None]
        frame = (pl.concat(triplets) if triplets else
                 pl.DataFrame(schema={ROW_INDEX: pl.Int64, "_column": pl.Int64, "value": pl.Float32}))
        matrix = sp.coo_matrix(
            (frame.get_column("value").to_numpy(),
             (frame.get_column(ROW_INDEX).to_numpy(), frame.get_column("_column").to_numpy())),
            shape=(labels.height, len(self.feature_names_)),
        )
        return matrix.tocsr()

    def describe(self) -> dict[str, Any]:
        """Learned state and settings, for a report."""
        return {"n_codes": len(self.codes_), "n_features": len(self.feature_names_),
                "windows": [w for w, _ in self.windows_], "coding_delay": str(self.coding_delay_.delay),
                "coded_after_discharge": list(self.coding_delay_.vocabularies), "rollup": self.rollup}


def _rows(labels: pl.DataFrame) -> pl.DataFrame:
    return labels.select(S.SUBJECT_ID, PREDICTION_TIME).with_row_index(ROW_INDEX).with_columns(
        pl.col(ROW_INDEX).cast(pl.Int64))


def _parents(codes: pl.DataFrame) -> pl.DataFrame:
    return (codes.select(S.CODE, S.PARENT_CODES).explode(S.PARENT_CODES, empty_as_null=True).drop_nulls()
            .rename({S.PARENT_CODES: "_parent"}))


@dataclass(frozen=True)
class _Reader:
    """What a per-shard function needs to read the events each label row may use from one shard."""

    source: EventSource
    rows: pl.DataFrame
    parents: pl.DataFrame | None
    codes: pl.Series | None
    delay: CodingDelay

    def known(self, shard: ShardRef) -> Iterator[pl.DataFrame]:
        """The events each label row may use (the single cutoff), in batches of subjects."""
        subjects = self.rows.get_column(S.SUBJECT_ID).unique()
        events = self.source.read(shard, [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE], subjects)
        if self.parents is not None:
            events = pl.concat([events, events.join(self.parents, on=S.CODE).drop(S.CODE)
                                .rename({"_parent": S.CODE}).select(events.columns)])
        if self.codes is not None:
            events = events.filter(pl.col(S.CODE).is_in(self.codes.implode()))
        events = self.delay.apply(events)
        for batch in _subject_batches(events, self.rows):
            yield events_at_or_before(events.join(batch, on=S.SUBJECT_ID, how="semi"),
                                      self.rows.join(batch, on=S.SUBJECT_ID, how="semi"))


def _code_summary(reader: _Reader, shard: ShardRef) -> pl.DataFrame | None:
    parts = [known.group_by(S.CODE).agg(pl.col(ROW_INDEX).n_unique().alias("n"),
                                        pl.col(S.NUMERIC_VALUE).is_not_null().any().alias("numeric"))
             for known in reader.known(shard)]
    return pl.concat(parts) if parts else None


def _shard_triplets(reader: _Reader, windows: list[tuple[str, timedelta | None]], columns: pl.DataFrame,
                    shard: ShardRef) -> pl.DataFrame | None:
    triplets = []
    for known in reader.known(shard):
        for long in _window_stats(known, windows):
            keyed = long.with_columns(
                pl.concat_str([pl.col(S.CODE), pl.col(WINDOW), pl.col("stat")], separator="|").alias("_name")
            ).join(columns, on="_name", how="inner")
            triplets.append(keyed.select(ROW_INDEX, "_column", pl.col("value").cast(pl.Float32)))
    return pl.concat(triplets) if triplets else None


# Pairing events with label rows repeats a subject's history once per label row; subjects are taken
# in batches whose pairs stay under this many rows, so memory does not grow with shard size.
MAX_PAIRS = 250_000


def _subject_batches(events: pl.DataFrame, rows: pl.DataFrame) -> Iterator[pl.DataFrame]:
    """Subjects of ``events`` in batches of at most ``MAX_PAIRS`` (event, label row) pairs (a subject
    larger than that forms a batch of its own)."""
    if events.is_empty():
        return
    per_subject = (
        events.group_by(S.SUBJECT_ID).len("n_events")
        .join(rows.group_by(S.SUBJECT_ID).len("n_rows"), on=S.SUBJECT_ID, how="inner")
        .sort(S.SUBJECT_ID)
        .with_columns((pl.col("n_events") * pl.col("n_rows")).cum_sum().alias("_pairs"))
    )
    batch = (per_subject.get_column("_pairs") - 1) // MAX_PAIRS
    for _, group in per_subject.select(S.SUBJECT_ID).with_columns(batch.alias("_batch")).group_by(
            "_batch", maintain_order=True):
        yield group.select(S.SUBJECT_ID)


def _window_stats(known: pl.DataFrame, windows: list[tuple[str, timedelta | None]]) -> list[pl.DataFrame]:
    out = []
    age = pl.col(PREDICTION_TIME) - pl.col(S.TIME)
    for name, length in windows:
        inside = known if length is None else known.filter(pl.col(S.TIME).is_null() | (age <= pl.lit(length)))
        value = pl.col(S.NUMERIC_VALUE).cast(pl.Float64)
        stats = inside.group_by(ROW_INDEX, S.CODE).agg(
            pl.len().cast(pl.Float64).alias("count"),
            # Ties in time are broken by value, so "last" does not depend on the order events arrive in.
            value.sort_by([pl.col(S.TIME), value]).drop_nulls().last().alias("last"),
            value.mean().alias("mean"), value.min().alias("min"), value.max().alias("max"),
        )
        long = stats.unpivot(index=[ROW_INDEX, S.CODE], on=list(STATS), variable_name="stat", value_name="value")
        out.append(long.drop_nulls("value").with_columns(pl.lit(name).alias(WINDOW)))
    return out
