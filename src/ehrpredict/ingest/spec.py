"""Declarative mapping of a source table to MEDS events.

A :class:`TableSpec` says which columns a source table must have, how its text fields are parsed
(times, date-only fields, numbers) and which events each row produces. The streaming engine
(:mod:`ehrpredict.ingest.engine`) applies a spec to batches of rows; a spec never reads files itself.

Every column arrives as a string. Parsing replaces a column by its typed value under the same name,
and the engine compares raw and parsed values to find fields that were present but unparseable.

A row ends in one of three ways: its events are written; it is quarantined (a ``check`` failed: no
events, the row goes to ``quarantine.parquet``); or its events are written *and* it is flagged (a
``flag`` held: the problem and the whole row go to ``flagged.parquet``). Nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# A hook that adds derived columns (for example a join against admissions to get the discharge time)
# to a parsed batch. It must keep every row: rows that cannot be completed get nulls, and a check
# (see `Check`) turns those into quarantine reasons.
Prepare = Callable[[pl.DataFrame], pl.DataFrame]


def raw_text(numeric: str) -> str:
    """The column holding the source text of ``numeric`` (one of ``TableSpec.numerics``), which parsing
    replaces by its number: ``text_unless_numeric(raw_text("pain"), "pain")`` keeps "unable" as text."""
    return f"_raw_{numeric}"


@dataclass(frozen=True)
class Check:
    """A row-level rule: where ``failed`` is true the row is quarantined (in ``TableSpec.checks``) or
    kept and flagged (in ``TableSpec.flags``) with ``reason`` and the offending ``field``.

    ``unparseable`` marks a rule that is a parse failure of ``field`` (a value that should be a
    number but is not), so the report counts it per field with the engine's own parse failures.
    """

    reason: str
    failed: pl.Expr
    field: str | None = None
    unparseable: bool = False


@dataclass(frozen=True)
class DroppedReference:
    """Ids in ``column`` whose defining row was quarantined (an admission, an ICU or ED stay).

    A row carrying one of them keeps its events, because it stands on its own (a lab result is still a
    lab result), but the reference is cleared (its events get a null ``hadm_id``/``stay_id``) and the
    row is flagged with ``reason``, so no event points at an admission or stay that is not in the data.
    """

    column: str
    ids: pl.Series
    reason: str


@dataclass(frozen=True)
class EventSpec:
    """One event produced by each row (or by the rows where ``when`` holds).

    ``required`` events must have a time; a row whose required event has none is quarantined.
    Optional events with a null time are simply absent (an empty ``deathtime`` is not a death).
    ``static`` events have no time by design (sex) and are kept with a null time.
    """

    code: pl.Expr
    time: pl.Expr | None
    numeric: pl.Expr | None = None
    text: pl.Expr | None = None
    when: pl.Expr | None = None
    required: bool = False
    label: str = "event"


@dataclass(frozen=True)
class TableSpec:
    """How one source table becomes events. ``name`` is ``module/table``, e.g. ``hosp/labevents``."""

    name: str
    required_columns: tuple[str, ...]
    events: tuple[EventSpec, ...]
    optional_columns: tuple[str, ...] = ()
    datetimes: tuple[str, ...] = ()
    # Date-only fields are placed at the end of their day (23:59:59): the fact is known on that day,
    # but not at which moment, so the end of the day is the earliest time it is certainly known.
    dates: tuple[str, ...] = ()
    numerics: tuple[str, ...] = ()
    required_numerics: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    hadm_column: str | None = "hadm_id"
    stay_column: str | None = None
    prepare: Prepare | None = None
    checks: tuple[Check, ...] = ()
    flags: tuple[Check, ...] = ()
    dropped_references: tuple[DroppedReference, ...] = ()
    description: str = ""

    @property
    def module(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split("/", 1)[1]

    def used_columns(self) -> set[str]:
        """Every column an expression of this spec refers to (derived columns included)."""
        exprs: list[pl.Expr] = [check.failed for check in (*self.checks, *self.flags)]
        for event in self.events:
            exprs += [e for e in (event.code, event.time, event.numeric, event.text, event.when) if e is not None]
        names = {name for expr in exprs for name in expr.meta.root_names()}
        names |= {*self.datetimes, *self.dates, *self.numerics, *self.integers}
        names |= {ref.column for ref in self.dropped_references}
        return names | {c for c in (self.hadm_column, self.stay_column) if c}

    def columns(self, header: list[str]) -> list[str]:
        """Columns of ``header`` to read: the required ones and the optional ones actually used.

        Reading only these keeps memory and time down; the duplicate-row check compares exactly
        these columns (two rows that differ only in fields ehrpredict ignores are duplicates).
        """
        wanted = set(self.required_columns) | (set(self.optional_columns) & self.used_columns())
        return [c for c in header if c in wanted]

    def missing_optional(self, header: list[str]) -> list[str]:
        """Used optional columns absent from this file (older/newer MIMIC versions): read as null."""
        return sorted((set(self.optional_columns) & self.used_columns()) - set(header))


@dataclass(frozen=True)
class UnmappedTable:
    """A known source table that ehrpredict deliberately does not turn into events, and why."""

    name: str
    reason: str
