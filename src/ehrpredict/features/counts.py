"""Counts representation: time-windowed code counts and numeric aggregates, as a sparse matrix.

For each label row (subject, prediction_time) and each window before the prediction time (1 d, 7 d,
30 d, 365 d, all history): how often each code occurred, and for codes with values the last, mean,
min and max value. The vocabulary is learned on the rows given to ``fit`` (the train split) with a
minimum frequency; optional roll-up adds each code's parents (ICD categories, lab items). Billing
codes count only ``coding_delay`` after their time (see :mod:`ehrpredict.events.cutoff`).

Two more columns follow the code columns, last and in this order, unless ``static_features`` leaves
them out: ``age_years`` (:data:`AGE_FEATURE`), completed years at the prediction time from the subject's
``MEDS_BIRTH`` event (:func:`ehrpredict.age.age_in_years`, the age tasks and subgroups use), and
``hours_since_visit_start`` (:data:`VISIT_HOURS_FEATURE`), hours from the most recent visit start (the
dataset's ``CodeKinds.visit_starts``: hospital admission, ICU admission, ED arrival) to the prediction
time. Both read only events through the single cutoff, like the counts.

Missing values are NaN, stored explicitly: a row whose subject has no birth event, or no visit start at
or before the prediction time, gets NaN in that column, never an absent (zero) entry, because 0 is a
real value (a prediction made at admission is 0 hours into the visit). Both columns are stored for every
row, zeros included. LightGBM treats NaN as missing; the linear heads impute it (0 after scaling, plus a
missing-indicator column: :func:`ehrpredict.models.preprocess.linear_preprocessing`). log1p, which a
counts+text combination applies to this block, keeps NaN as NaN and is monotone on the non-negative ages
and hours.

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
from ehrpredict.age import age_in_years
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
from ehrpredict.vocab.kinds import code_kinds

DEFAULT_WINDOWS = ("1d", "7d", "30d", "365d", "all")
STATS = ("count", "last", "mean", "min", "max")
WINDOW = "_window"
AGE_FEATURE = "age_years"
VISIT_HOURS_FEATURE = "hours_since_visit_start"
# static_features option → its column name; the columns follow this order whatever the option's order.
STATIC_FEATURES = {"age": AGE_FEATURE, "visit_hours": VISIT_HOURS_FEATURE}
DEFAULT_STATIC_FEATURES = ("age", "visit_hours")
_BIRTH = "_birth"
_VISIT_START = "_visit_start"
_TIME_DTYPE = S.EVENT_SCHEMA[S.TIME]


def static_feature_columns(spec: Sequence[str]) -> tuple[str, ...]:
    """The column names of the chosen static features, in :data:`STATIC_FEATURES` order.

    >>> static_feature_columns(("visit_hours", "age"))
    ('age_years', 'hours_since_visit_start')
    >>> static_feature_columns(("sex",))
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: expected static_features among ['age', 'visit_hours'], each once, got unknown 'sex'
    """
    if isinstance(spec, str):
        raise ConfigError(f"expected static_features as a tuple of names among {list(STATIC_FEATURES)}, "
                          f"got the string {spec!r}")
    unknown = [name for name in spec if name not in STATIC_FEATURES]
    repeated = sorted({name for name in spec if list(spec).count(name) > 1})
    if unknown or repeated:
        raise ConfigError(f"expected static_features among {list(STATIC_FEATURES)}, each once, got "
                          + "; ".join([f"unknown {', '.join(map(repr, unknown))}"] * bool(unknown)
                                      + [f"{', '.join(map(repr, repeated))} repeated"] * bool(repeated)))
    return tuple(column for name, column in STATIC_FEATURES.items() if name in spec)


def _windows(spec: Sequence[str]) -> list[tuple[str, timedelta | None]]:
    if not spec:
        raise ConfigError("expected at least one window, got none")
    return [(w, None if w == "all" else parse_duration(w, "windows")) for w in spec]


class CountsFeaturizer(BaseEstimator):
    """From label rows (subject_id, prediction_time) and an :class:`~ehrpredict.events.source.EventSource`
    to a sparse matrix. What ``fit`` learns (the vocabulary, the billing vocabularies' delay, the code
    parents for roll-up, the visit-start prefixes) is kept; the events always come from the ``source``
    given to each call. ``static_features``: which of ``"age"`` and ``"visit_hours"`` to append after the
    code columns (``()``: the code columns only)."""

    def __init__(self, windows: Sequence[str] = DEFAULT_WINDOWS, min_count: int = 5, rollup: bool = False,
                 coding_delay: str = DEFAULT_CODING_DELAY,
                 static_features: Sequence[str] = DEFAULT_STATIC_FEATURES) -> None:
        self.windows = windows
        self.min_count = min_count
        self.rollup = rollup
        self.coding_delay = coding_delay
        self.static_features = static_features

    def fit(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
            executor: Executor | None = None) -> CountsFeaturizer:
        if self.min_count < 1:
            raise ConfigError(f"expected min_count >= 1, got {self.min_count}")
        source = as_source(source)
        self.windows_ = _windows(self.windows)
        self.static_features_: tuple[str, ...] = static_feature_columns(self.static_features)
        self.coding_delay_ = coding_delay_for(source.metadata(), parse_duration(self.coding_delay, "coding_delay"))
        self.visit_starts_: tuple[str, ...] = (code_kinds(source.metadata()).visit_starts
                                               if VISIT_HOURS_FEATURE in self.static_features_ else ())
        self.parents_ = _parents(source.codes()) if self.rollup else None
        # Per code: in how many label rows' histories it appears, and whether it ever carries a value.
        # A subject's events live in one shard, so per-shard counts of label rows add up.
        reader = _Reader(source, _rows(labels), self.parents_, None, self.coding_delay_, None)
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
        self.columns_ = pl.DataFrame({"_name": names, "_column": np.arange(len(names), dtype=np.int64)})
        self.feature_names_: np.ndarray = np.asarray([*names, *self.static_features_])
        return self

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_

    def transform(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  executor: Executor | None = None) -> sp.csr_matrix:
        check_is_fitted(self, "codes_")
        source = as_source(source)
        # Shard by shard, straight to numeric (row, column, value) triplets: the long frame with its
        # string columns never exists for the whole dataset at once, so memory follows one shard.
        static = _Static(AGE_FEATURE in self.static_features_, self.visit_starts_) if self.static_features_ else None
        reader = _Reader(source, _rows(labels), self.parents_, self.codes_, self.coding_delay_, static)
        work = partial(_shard_triplets, reader, self.windows_, self.columns_)
        parts = list((executor or local()).map(work, source.shards()))
        triplets = [t for t, _ in parts if t is not None]
        frame = (pl.concat(triplets) if triplets else
                 pl.DataFrame(schema={ROW_INDEX: pl.Int64, "_column": pl.Int64, "value": pl.Float32}))
        rows, columns, values = (frame.get_column(ROW_INDEX).to_numpy(), frame.get_column("_column").to_numpy(),
                                 frame.get_column("value").to_numpy())
        if static is not None:
            block = _static_block(labels, [times for _, times in parts if times is not None], self.static_features_)
            n, k = block.shape
            rows = np.concatenate([rows, np.repeat(np.arange(n, dtype=np.int64), k)])
            columns = np.concatenate([columns, np.tile(np.arange(self.columns_.height, self.columns_.height + k), n)])
            values = np.concatenate([values, block.ravel()])
        matrix = sp.coo_matrix((values, (rows, columns)), shape=(labels.height, len(self.feature_names_)))
        return matrix.tocsr()

    def describe(self) -> dict[str, Any]:
        """Learned state and settings, for a report."""
        return {"n_codes": len(self.codes_), "n_features": len(self.feature_names_),
                "windows": [w for w, _ in self.windows_], "coding_delay": str(self.coding_delay_.delay),
                "coded_after_discharge": list(self.coding_delay_.vocabularies), "rollup": self.rollup,
                "static_features": list(self.static_features_), "visit_starts": list(self.visit_starts_)}


def _rows(labels: pl.DataFrame) -> pl.DataFrame:
    return labels.select(S.SUBJECT_ID, PREDICTION_TIME).with_row_index(ROW_INDEX).with_columns(
        pl.col(ROW_INDEX).cast(pl.Int64))


def _parents(codes: pl.DataFrame) -> pl.DataFrame:
    return (codes.select(S.CODE, S.PARENT_CODES).explode(S.PARENT_CODES, empty_as_null=True).drop_nulls()
            .rename({S.PARENT_CODES: "_parent"}))


@dataclass(frozen=True)
class _Static:
    """Which events the static features read: the birth event (``age``) and visit starts (their prefixes)."""

    age: bool
    visit_starts: tuple[str, ...]

    def is_visit_start(self) -> pl.Expr:
        code = pl.col(S.CODE)
        return pl.any_horizontal(pl.lit(False), *((code == p) | code.str.starts_with(p + S.CODE_SEPARATOR)
                                                  for p in self.visit_starts))

    def is_read(self) -> pl.Expr:
        return ((pl.col(S.CODE) == S.BIRTH_CODE) & pl.lit(self.age)) | self.is_visit_start()

    def times(self, known: pl.DataFrame) -> pl.DataFrame:
        """Per label row with either: the birth time and the latest visit start in ``known`` (events
        already through the cutoff)."""
        timed = known.filter(pl.col(S.TIME).is_not_null())
        birth = pl.col(S.TIME).filter(pl.col(S.CODE) == S.BIRTH_CODE).min() if self.age else pl.lit(None, _TIME_DTYPE)
        start = pl.col(S.TIME).filter(self.is_visit_start()).max()
        return (timed.filter(self.is_read()).group_by(ROW_INDEX)
                .agg(birth.cast(_TIME_DTYPE).alias(_BIRTH), start.cast(_TIME_DTYPE).alias(_VISIT_START)))


@dataclass(frozen=True)
class _Reader:
    """What a per-shard function needs to read the events each label row may use from one shard."""

    source: EventSource
    rows: pl.DataFrame
    parents: pl.DataFrame | None
    codes: pl.Series | None
    delay: CodingDelay
    static: _Static | None

    def known(self, shard: ShardRef) -> Iterator[pl.DataFrame]:
        """The events each label row may use (the single cutoff), in batches of subjects."""
        subjects = self.rows.get_column(S.SUBJECT_ID).unique()
        events = self.source.read(shard, [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE], subjects)
        if self.parents is not None:
            events = pl.concat([events, events.join(self.parents, on=S.CODE).drop(S.CODE)
                                .rename({"_parent": S.CODE}).select(events.columns)])
        if self.codes is not None:
            kept = pl.col(S.CODE).is_in(self.codes.implode())
            events = events.filter(kept if self.static is None else kept | self.static.is_read())
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
                    shard: ShardRef) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """The code columns' (row, column, value) triplets of one shard, and per label row the times the
    static features need (:meth:`_Static.times`; None without static features)."""
    triplets, times = [], []
    for known in reader.known(shard):
        # One query per batch (every window's statistics, keyed to columns): planned and run once, which
        # matters when a batch is one patient (the service) as much as when it is thousands.
        keyed = [long.with_columns(
            pl.concat_str([pl.col(S.CODE), pl.col(WINDOW), pl.col("stat")], separator="|").alias("_name")
        ).join(columns.lazy(), on="_name", how="inner")  # the inner join also drops the birth and visit-start
                 .select(ROW_INDEX, "_column", pl.col("value").cast(pl.Float32))  # events read for static features
                 for long in _window_stats(known.lazy(), windows)]
        triplets.append(pl.concat(keyed).collect())
        if reader.static is not None:
            times.append(reader.static.times(known))
    return (pl.concat(triplets) if triplets else None), (pl.concat(times) if times else None)


def _static_block(labels: pl.DataFrame, times: list[pl.DataFrame], names: tuple[str, ...]) -> np.ndarray:
    """One row per label row, one column per static feature (``names``), NaN where it is unknown."""
    rows = _rows(labels)
    empty = pl.DataFrame(schema={ROW_INDEX: pl.Int64, _BIRTH: _TIME_DTYPE, _VISIT_START: _TIME_DTYPE})
    # A subject's events are in one shard, but nothing breaks if a row's times come from several.
    found = pl.concat([empty, *times], how="vertical_relaxed").group_by(ROW_INDEX).agg(
        pl.col(_BIRTH).min(), pl.col(_VISIT_START).max())
    joined = rows.join(found, on=ROW_INDEX, how="left").sort(ROW_INDEX)
    hours = (pl.col(PREDICTION_TIME) - pl.col(_VISIT_START)).dt.total_microseconds() / 3_600_000_000
    expressions = {AGE_FEATURE: age_in_years(pl.col(PREDICTION_TIME), pl.col(_BIRTH)), VISIT_HOURS_FEATURE: hours}
    return (joined.select(expressions[name].cast(pl.Float32).fill_null(float("nan")).alias(name) for name in names)
            .to_numpy().astype(np.float32, copy=False).reshape(labels.height, len(names)))


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


def _window_stats(known: pl.LazyFrame, windows: list[tuple[str, timedelta | None]]) -> list[pl.LazyFrame]:
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
