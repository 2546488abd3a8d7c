"""Building blocks shared by the MIMIC-IV table specs: code and text expressions, timing helpers, the
lookups other tables join against, and the checks on admission and ED-stay references."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from ehrpredict import schema as S
from ehrpredict.ingest.spec import Check, Prepare

c = pl.col


def code(*parts: str | pl.Expr) -> pl.Expr:
    """Join code parts with ``//``, skipping null parts: ``code("LAB", c("itemid"), c("valueuom"))``."""
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in parts]
    return pl.concat_str(exprs, separator=S.CODE_SEPARATOR, ignore_nulls=True)


def text_unless_numeric(raw: str, numeric: str) -> pl.Expr:
    """The raw text of a value only when it has no numeric reading (avoids storing "7.4" twice)."""
    return pl.when(c(numeric).is_null()).then(c(raw)).otherwise(None)


def joined_text(*columns: str, separator: str = "; ") -> pl.Expr:
    return pl.concat_str([c(x) for x in columns], separator=separator, ignore_nulls=True)


def latest(time: str | pl.Expr, *recorded: str | pl.Expr) -> pl.Expr:
    """When a row's content was first known: its own ``time``, or a later moment at which it was
    recorded (``storetime``, ``entertime``...), whichever is later. Null when ``time`` is null, so
    whether a row has an event still depends on its own time, not on when it was stored.

        >>> latest("starttime", "storetime")  # starttime 12:49, stored 17:39 → 17:39  # doctest: +SKIP
    """
    own = c(time) if isinstance(time, str) else time
    later = [c(r) if isinstance(r, str) else r for r in recorded]
    # max_horizontal skips nulls: a row without a storetime keeps its own time.
    return pl.when(own.is_not_null()).then(pl.max_horizontal(own, *later))


def _empty_ids(name: str) -> pl.Series:
    return pl.Series(name, [], dtype=pl.Int64)


@dataclass(frozen=True)
class TimeIndex:
    """A lean id → datetime map (16 bytes per id), sorted by id and searched by bisection.

    A hash join against it would rebuild a hash table of every id for each batch: measured 1.7 s per
    40,000-row batch against 13.6M ids (the size of MIMIC-IV's pharmacy), against 0.04 s by bisection.
    """

    ids: pl.Series = field(default_factory=lambda: _empty_ids("id"))
    times: pl.Series = field(default_factory=lambda: pl.Series("time", [], dtype=pl.Datetime("us")))

    @classmethod
    def build(cls, frame: pl.DataFrame, id_column: str, time_column: str) -> TimeIndex:
        """From ``id_column, time_column`` rows; an id given twice keeps its latest time."""
        # Sorting puts an id's rows side by side, latest last, so keeping the last of each run is a
        # linear pass. Measured on 13.6M ids: 0.5 s and +0.5 GB peak, against 10 s and +1.0 GB for a
        # group-by max.
        frame = frame.drop_nulls().sort(id_column, time_column)
        last = pl.col(id_column) != pl.col(id_column).shift(-1)
        frame = frame.filter(last.fill_null(True))
        return cls(frame.get_column(id_column).set_sorted(), frame.get_column(time_column))

    def lookup(self, keys: pl.Series) -> pl.Series:
        """The time of each key, null for keys (and null keys) not in the index."""
        if self.ids.is_empty():
            return pl.Series(keys.name, [None] * len(keys), dtype=self.times.dtype)
        position = self.ids.search_sorted(keys.fill_null(self.ids[0]), side="left").clip(0, len(self.ids) - 1)
        found = (self.ids.gather(position) == keys).fill_null(False)
        return pl.select(pl.when(found).then(self.times.gather(position))).to_series().alias(keys.name)


@dataclass(frozen=True)
class Lookups:
    """What other tables need from tables processed before them: the admissions, ED stays and death
    times (read whole first), the ids of admissions and stays that were quarantined, and when each
    pharmacy order was entered or verified (built while pharmacy streams, before prescriptions)."""

    admissions: pl.DataFrame  # hadm_id, admission_subject_id, dischtime
    edstays: pl.DataFrame  # stay_id, ed_subject_id, ed_intime, ed_outtime
    death_times: pl.DataFrame  # subject_id, deathtime (latest in-hospital death time)
    quarantined_admissions: pl.Series = field(default_factory=lambda: _empty_ids(S.HADM_ID))
    quarantined_icu_stays: pl.Series = field(default_factory=lambda: _empty_ids(S.STAY_ID))
    quarantined_ed_stays: pl.Series = field(default_factory=lambda: _empty_ids(S.STAY_ID))
    pharmacy_times: TimeIndex = field(default_factory=TimeIndex)

    @classmethod
    def empty(cls) -> Lookups:
        return cls(
            admissions=pl.DataFrame(
                schema={S.HADM_ID: pl.Int64, "admission_subject_id": pl.Int64, "dischtime": pl.Datetime("us")}
            ),
            edstays=pl.DataFrame(
                schema={S.STAY_ID: pl.Int64, "ed_subject_id": pl.Int64, "ed_intime": pl.Datetime("us"),
                        "ed_outtime": pl.Datetime("us")}
            ),
            death_times=pl.DataFrame(schema={S.SUBJECT_ID: pl.Int64, "deathtime": pl.Datetime("us")}),
        )


def join_admission(lookups: Lookups) -> Prepare:
    def prepare(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(lookups.admissions, on=S.HADM_ID, how="left", maintain_order="left")

    return prepare


def join_edstay(lookups: Lookups) -> Prepare:
    def prepare(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(lookups.edstays, on=S.STAY_ID, how="left", maintain_order="left")

    return prepare


ENDS_BEFORE_START = "interval ends before it starts"


def ends_before_start(start: str, end: str) -> Check:
    """Quarantine a stay whose end precedes its start: its length would be negative."""
    return Check(ENDS_BEFORE_START, c(end) < c(start), field=end)


def admission_checks(lookups: Lookups) -> tuple[Check, ...]:
    """For tables timed by their admission (billing codes): the admission must exist, be this subject's,
    and not be quarantined. The first check names the quarantined case, which the second would
    otherwise report as an unknown admission."""
    return (
        Check("admission was quarantined", c(S.HADM_ID).is_in(lookups.quarantined_admissions), field=S.HADM_ID),
        Check("unknown admission (hadm_id not in admissions)", c("dischtime").is_null(), field=S.HADM_ID),
        Check("admission belongs to another subject", c("admission_subject_id") != c(S.SUBJECT_ID),
              field=S.HADM_ID),
    )


def ed_stay_checks(lookups: Lookups) -> tuple[Check, ...]:
    """For tables timed by their ED stay (triage, ED diagnoses), as :func:`admission_checks`."""
    return (
        Check("ED stay was quarantined", c(S.STAY_ID).is_in(lookups.quarantined_ed_stays), field=S.STAY_ID),
        Check("unknown ED stay (stay_id not in edstays)", c("ed_intime").is_null(), field=S.STAY_ID),
        Check("ED stay belongs to another subject", c("ed_subject_id") != c(S.SUBJECT_ID), field=S.STAY_ID),
    )
