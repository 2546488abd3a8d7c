"""Counts representation: time-windowed code counts and numeric aggregates, as a sparse matrix.

For each label row (subject, prediction_time) and each window before the prediction time (1 d, 7 d,
30 d, 365 d, all history): how often each code occurred, and for codes with values the last, mean,
min and max value. The vocabulary is learned on the rows given to ``fit`` (the train split) with a
minimum frequency; optional roll-up adds each code's parents (ICD categories, lab items). Billing
codes count only ``coding_delay`` after their time (see :mod:`ehrpredict.events.cutoff`).

    >>> featurizer = CountsFeaturizer("out/meds").fit(train_labels)  # doctest: +SKIP
    >>> X = featurizer.transform(held_out_labels)  # a scipy.sparse.csr_matrix  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

from ehrpredict import schema as S
from ehrpredict.dataset import shard_files
from ehrpredict.errors import ConfigError
from ehrpredict.events.cutoff import (
    DEFAULT_CODING_DELAY,
    PREDICTION_TIME,
    ROW_INDEX,
    coding_delay,
    events_at_or_before,
)
from ehrpredict.tasks.spec import parse_duration

DEFAULT_WINDOWS = ("1d", "7d", "30d", "365d", "all")
STATS = ("count", "last", "mean", "min", "max")
WINDOW = "_window"


def _windows(spec: Sequence[str]) -> list[tuple[str, timedelta | None]]:
    if not spec:
        raise ConfigError("expected at least one window, got none")
    return [(w, None if w == "all" else parse_duration(w, "windows")) for w in spec]


class CountsFeaturizer(BaseEstimator, TransformerMixin):
    """scikit-learn transformer from a labels frame (subject_id, prediction_time) to a sparse matrix."""

    def __init__(self, dataset: str | Path, windows: Sequence[str] = DEFAULT_WINDOWS, min_count: int = 5,
                 rollup: bool = False, coding_delay: str = DEFAULT_CODING_DELAY) -> None:
        self.dataset = dataset
        self.windows = windows
        self.min_count = min_count
        self.rollup = rollup
        self.coding_delay = coding_delay

    def fit(self, labels: pl.DataFrame, y: object = None) -> CountsFeaturizer:
        if self.min_count < 1:
            raise ConfigError(f"expected min_count >= 1, got {self.min_count}")
        self.windows_ = _windows(self.windows)
        self.coding_delay_ = coding_delay(self.dataset, parse_duration(self.coding_delay, "coding_delay"))
        # Per code: in how many label rows' histories it appears, and whether it ever carries a value.
        # A subject's events live in one shard, so per-shard counts of label rows add up.
        parts = [
            known.group_by(S.CODE).agg(pl.col(ROW_INDEX).n_unique().alias("n"),
                                       pl.col(S.NUMERIC_VALUE).is_not_null().any().alias("numeric"))
            for known in self._known(labels)
        ]
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

    def transform(self, labels: pl.DataFrame) -> sp.csr_matrix:
        # Shard by shard, straight to numeric (row, column, value) triplets: the long frame with its
        # string columns never exists for the whole dataset at once, so memory follows one shard.
        triplets = []
        for known in self._known(labels, self.codes_):
            for long in _window_stats(known, self.windows_):
                keyed = long.with_columns(
                    pl.concat_str([pl.col(S.CODE), pl.col(WINDOW), pl.col("stat")], separator="|").alias("_name")
                ).join(self.columns_, on="_name", how="inner")
                triplets.append(keyed.select(ROW_INDEX, "_column", pl.col("value").cast(pl.Float32)))
        frame = (pl.concat(triplets) if triplets else
                 pl.DataFrame(schema={ROW_INDEX: pl.Int64, "_column": pl.Int64, "value": pl.Float32}))
        matrix = sp.coo_matrix(
            (frame.get_column("value").to_numpy(),
             (frame.get_column(ROW_INDEX).to_numpy(), frame.get_column("_column").to_numpy())),
            shape=(labels.height, len(self.feature_names_)),
        )
        return matrix.tocsr()

    def _known(self, labels: pl.DataFrame, codes: pl.Series | None = None) -> Iterator[pl.DataFrame]:
        """Per shard: the events each label row may use (the single cutoff), optionally only ``codes``."""
        rows = labels.select(S.SUBJECT_ID, PREDICTION_TIME).with_row_index(ROW_INDEX).with_columns(
            pl.col(ROW_INDEX).cast(pl.Int64)
        )
        subjects = rows.select(S.SUBJECT_ID).unique()
        parents = self._parents() if self.rollup else None
        for path in shard_files(self.dataset):
            events = pl.read_parquet(path, columns=[S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE])
            events = events.join(subjects, on=S.SUBJECT_ID, how="semi")
            if parents is not None:
                events = pl.concat([events, events.join(parents, on=S.CODE).drop(S.CODE).rename({"_parent": S.CODE})
                                    .select(events.columns)])
            if codes is not None:
                events = events.filter(pl.col(S.CODE).is_in(codes.implode()))
            events = self.coding_delay_.apply(events)
            for batch in _subject_batches(events, rows):
                yield events_at_or_before(events.join(batch, on=S.SUBJECT_ID, how="semi"),
                                          rows.join(batch, on=S.SUBJECT_ID, how="semi"))

    def _parents(self) -> pl.DataFrame:
        codes = pl.read_parquet(Path(self.dataset) / S.CODES_FILE, columns=[S.CODE, S.PARENT_CODES])
        return codes.explode(S.PARENT_CODES, empty_as_null=True).drop_nulls().rename({S.PARENT_CODES: "_parent"})


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
