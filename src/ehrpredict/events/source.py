"""Where featurizers get their events at transform time: an :class:`EventSource`.

Two kinds, one interface:

- :class:`ParquetEvents`: a MEDS dataset on disk, read shard by shard (only the columns and subjects
  asked for), so memory follows one shard however large the dataset is;
- :class:`InMemoryEvents`: events already in memory for a handful of patients, e.g. what an API
  request carries, as one "shard".

A fitted featurizer keeps only what it learned (a vocabulary, a selection of labs, settings); the
events always come from the source it is handed, so the same fitted model scores a held-out split on
disk or one patient posted to a server, and gets the same numbers for the same events.

    >>> import datetime as dt
    >>> source = InMemoryEvents(pl.DataFrame({"subject_id": [7, 7], "code": ["MEDS_BIRTH", "LAB//1//mg/dL"],
    ...                                       "time": [dt.datetime(2100, 1, 1), dt.datetime(2150, 1, 1)],
    ...                                       "numeric_value": [None, 1.5]}))
    >>> [source.read(shard, ["code"]).height for shard in source.shards()]
    [2]

A shard reference is small and picklable (a path, or an index), so an executor can hand the reading of
a shard to another process (:mod:`ehrpredict.executor`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from ehrpredict import schema as S
from ehrpredict.dataset import shard_files
from ehrpredict.errors import DataError, SchemaError

ShardRef = str  # a shard's name within its source: a file path, or "memory"
CODES_SCHEMA: dict[str, pl.DataType] = {S.CODE: pl.String(), S.DESCRIPTION: pl.String(),
                                        S.PARENT_CODES: pl.List(pl.String())}
_REQUIRED = (S.SUBJECT_ID, S.TIME, S.CODE)


class EventSource(Protocol):
    """Events by shard, plus the dataset's code dictionary and metadata."""

    def shards(self) -> tuple[ShardRef, ...]:
        """Every shard; each subject's events are in exactly one."""
        ...

    def read(self, shard: ShardRef, columns: Sequence[str], subjects: pl.Series | None = None) -> pl.DataFrame:
        """``columns`` of the events of ``shard`` (only ``subjects``' when given), in MEDS order."""
        ...

    def codes(self) -> pl.DataFrame:
        """``code, description, parent_codes`` (empty when the source has no code dictionary)."""
        ...

    def metadata(self) -> Mapping[str, Any]:
        """The dataset metadata (``metadata/dataset.json``), empty when there is none."""
        ...


def _subset(frame: pl.LazyFrame, columns: Sequence[str], subjects: pl.Series | None) -> pl.LazyFrame:
    frame = frame.select(columns)
    if subjects is not None:
        frame = frame.filter(pl.col(S.SUBJECT_ID).is_in(subjects.cast(pl.Int64).implode()))
    return frame


@dataclass(frozen=True)
class ParquetEvents:
    """A MEDS dataset directory (``data/**/*.parquet``, ``metadata/``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def shards(self) -> tuple[ShardRef, ...]:
        return tuple(str(path) for path in shard_files(self.root))

    def read(self, shard: ShardRef, columns: Sequence[str], subjects: pl.Series | None = None) -> pl.DataFrame:
        frame = pl.scan_parquet(shard)
        present = frame.collect_schema().names()
        missing = [c for c in _REQUIRED if c in columns and c not in present]
        if missing:
            raise SchemaError(f"{shard}: expected MEDS event columns {', '.join(missing)}, got {present}")
        # Optional MEDS columns a shard lacks (text_value, provenance) read as nulls.
        frame = frame.with_columns(pl.lit(None, S.EVENT_SCHEMA[c]).alias(c) for c in columns
                                   if c not in present and c in S.EVENT_SCHEMA)
        return _subset(frame, columns, subjects).collect()

    def codes(self) -> pl.DataFrame:
        path = self.root / S.CODES_FILE
        if not path.exists():
            return pl.DataFrame(schema=CODES_SCHEMA)
        available = pl.read_parquet_schema(path)
        frame = pl.read_parquet(path, columns=[c for c in CODES_SCHEMA if c in available])
        return frame.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in CODES_SCHEMA.items()
                                  if c not in frame.columns).select(list(CODES_SCHEMA))

    def metadata(self) -> Mapping[str, Any]:
        path = self.root / S.DATASET_FILE
        if not path.exists():
            return {}
        try:
            loaded = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: expected JSON dataset metadata, got a parse error at line {exc.lineno}: "
                            f"{exc.msg}") from exc
        if not isinstance(loaded, dict):
            raise DataError(f"{path}: expected a JSON object, got {type(loaded).__name__}")
        return loaded

    def splits(self) -> pl.DataFrame:
        """``subject_id, split`` (``metadata/subject_splits.parquet``)."""
        path = self.root / S.SPLITS_FILE
        if not path.exists():
            raise DataError(f"expected {path} (subject splits: run ehrpredict ingest first), got no such file")
        return pl.read_parquet(path, columns=[S.SUBJECT_ID, S.SPLIT])

    def __str__(self) -> str:
        return str(self.root)


@dataclass(frozen=True)
class ShardView:
    """One shard of another source, as a source of its own (streaming: featurize shard by shard, so
    memory follows a shard, not the dataset). Codes and metadata are the whole source's."""

    source: EventSource
    shard: ShardRef

    def shards(self) -> tuple[ShardRef, ...]:
        return (self.shard,)

    def read(self, shard: ShardRef, columns: Sequence[str], subjects: pl.Series | None = None) -> pl.DataFrame:
        if shard != self.shard:
            raise DataError(f"expected the shard {self.shard!r} of this view, got {shard!r}")
        return self.source.read(shard, columns, subjects)

    def codes(self) -> pl.DataFrame:
        return self.source.codes()

    def metadata(self) -> Mapping[str, Any]:
        return self.source.metadata()


@dataclass(frozen=True, eq=False)
class InMemoryEvents:
    """Events in a polars frame (``subject_id``, ``time``, ``code``; ``numeric_value`` and
    ``text_value`` optional), with an optional code dictionary and dataset metadata.

    The frame is checked and put in MEDS order (by subject, then time, static events first; a stable
    sort keeps the given order among ties) once, when the source is made."""

    events: pl.DataFrame
    code_table: pl.DataFrame | None = None
    dataset_metadata: Mapping[str, Any] = field(default_factory=dict)

    SHARD = "memory"

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", _as_events(self.events))

    def shards(self) -> tuple[ShardRef, ...]:
        return (self.SHARD,)

    def read(self, shard: ShardRef, columns: Sequence[str], subjects: pl.Series | None = None) -> pl.DataFrame:
        if shard != self.SHARD:
            raise DataError(f"expected the shard {self.SHARD!r} of events held in memory, got {shard!r}")
        return _subset(self.events.lazy(), columns, subjects).collect()

    def codes(self) -> pl.DataFrame:
        return self._codes

    @cached_property
    def _codes(self) -> pl.DataFrame:
        if self.code_table is None:
            return pl.DataFrame(schema=CODES_SCHEMA)
        if S.CODE not in self.code_table.columns:
            raise SchemaError(f"expected a code table with a {S.CODE} column, got {self.code_table.columns}")
        frame = self.code_table.select([c for c in CODES_SCHEMA if c in self.code_table.columns])
        return frame.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in CODES_SCHEMA.items()
                                  if c not in frame.columns).select(list(CODES_SCHEMA))

    def metadata(self) -> Mapping[str, Any]:
        return self.dataset_metadata

    def __str__(self) -> str:
        n = self.events.get_column(S.SUBJECT_ID).n_unique()
        return f"{self.events.height:,} events of {n:,} subject{'s' * (n != 1)} in memory"


def _as_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Every MEDS event column with its dtype (absent optional ones as nulls), in MEDS order."""
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise SchemaError(f"expected events with columns {', '.join(_REQUIRED)}, got {frame.columns} "
                          f"(missing {', '.join(missing)})")
    for column in (S.SUBJECT_ID, S.CODE):
        nulls = frame.get_column(column).null_count()
        if nulls:
            row = int(frame.get_column(column).is_null().arg_true()[0])
            raise DataError(f"expected no null {column}, got {nulls} (first at row {row})")
    casts = [pl.col(column).cast(dtype, strict=True) if column in frame.columns else pl.lit(None, dtype).alias(column)
             for column, dtype in S.EVENT_SCHEMA.items()]
    try:  # one pass; only when it fails is each column tried alone, to name the one that does not convert
        events = frame.select(casts)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as first:
        for column, dtype in S.EVENT_SCHEMA.items():
            if column not in frame.columns:
                continue
            try:
                frame.select(pl.col(column).cast(dtype, strict=True))
            except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
                raise SchemaError(f"expected column {column} of type {dtype}, got {frame.schema[column]} "
                                  f"that does not convert ({exc})") from exc
        raise SchemaError(f"expected event columns that convert to the MEDS types, got: {first}") from first
    return events.sort([S.SUBJECT_ID, S.TIME], nulls_last=False, maintain_order=True)


def as_source(source: EventSource | str | Path) -> EventSource:
    """A source from a source or a MEDS dataset directory."""
    if isinstance(source, str | Path):
        return ParquetEvents(Path(source))
    return source
