"""Build in-memory MEDS event frames inline in tests, one readable tuple per event.

    >>> frame = events(
    ...     (1, None, "GENDER//F"),  # a static event has no time
    ...     (1, "2150-01-01 08:00", "HOSPITAL_ADMISSION//EW EMER.", None, 10),
    ...     (1, "2150-01-02 09:00", "LAB//50971//mEq/L", 6.1, 10),
    ... )
    >>> frame.height, frame.schema["numeric_value"]
    (3, Float32)
    >>> last_events(frame).row(0)
    (1, datetime.datetime(2150, 1, 2, 9, 0))

A row is ``(subject, time, code[, value[, hadm_id[, stay_id]]])``; ``time`` is ``"YYYY-MM-DD HH:MM"``
(seconds optional) or None for a static event; missing trailing fields are null.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from ehrpredict import schema as S

EventRow = tuple[object, ...]

_LAST_EVENT = "last_event"


def at(text: str) -> datetime:
    """``at("2150-01-01 08:00")`` → that datetime (the format the rows use)."""
    return datetime.fromisoformat(text)


def events(*rows: EventRow) -> pl.DataFrame:
    """A MEDS events frame (``schema.EVENT_SCHEMA`` columns and dtypes) from tuples, sorted by subject
    and time like a shard."""
    records = []
    for i, row in enumerate(rows):
        if not 3 <= len(row) <= 6:
            raise ValueError(f"expected (subject, time, code[, value[, hadm_id[, stay_id]]]) at row {i}, got {row!r}")
        subject, time, code, value, hadm, stay = (*row, None, None, None)[:6]
        records.append(
            {
                S.SUBJECT_ID: subject,
                S.TIME: None if time is None else at(str(time)),
                S.CODE: code,
                S.NUMERIC_VALUE: value,
                S.TEXT_VALUE: None,
                S.HADM_ID: hadm,
                S.STAY_ID: stay,
                S.TABLE: "test",
            }
        )
    if not records:
        return pl.DataFrame(schema=S.EVENT_SCHEMA)
    frame = pl.DataFrame(records, schema=S.EVENT_SCHEMA)
    return frame.sort(S.SUBJECT_ID, S.TIME, nulls_last=False, maintain_order=True)


def last_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Each subject's latest event time: the ``last_event`` frame ``label_events`` takes."""
    return frame.group_by(S.SUBJECT_ID).agg(pl.col(S.TIME).max().alias(_LAST_EVENT)).sort(S.SUBJECT_ID)


# --- encounters as the MIMIC-IV ingestion codes them (see ehrpredict.ingest.mimic4_tables) ----------


def born(subject: int, year: int) -> EventRow:
    """``MEDS_BIRTH`` on 1 January of ``year`` (how ingestion derives birth from anchor_age)."""
    return (subject, f"{year}-01-01 00:00", S.BIRTH_CODE)


def died(subject: int, time: str) -> EventRow:
    """``MEDS_DEATH`` at ``time`` (an in-hospital death is at its dischtime; ``dod`` alone at 23:59:59)."""
    return (subject, time, S.DEATH_CODE)


def admission(
    subject: int, hadm: int, admit: str, disch: str, to: str = "HOME", kind: str = "EW EMER."
) -> tuple[EventRow, EventRow]:
    """``HOSPITAL_ADMISSION//<kind>`` at ``admit`` and ``HOSPITAL_DISCHARGE//<to>`` at ``disch``
    (``to="DIED"`` for an in-hospital death), both with ``hadm_id``."""
    return (
        (subject, admit, f"HOSPITAL_ADMISSION//{kind}", None, hadm),
        (subject, disch, f"HOSPITAL_DISCHARGE//{to}", None, hadm),
    )


def icu_stay(
    subject: int, stay: int, hadm: int, intime: str, outtime: str, unit: str = "MICU"
) -> tuple[EventRow, EventRow]:
    """``ICU_ADMISSION//<unit>`` and ``ICU_DISCHARGE//<unit>`` with ``stay_id`` and ``hadm_id``."""
    return (
        (subject, intime, f"ICU_ADMISSION//{unit}", None, hadm, stay),
        (subject, outtime, f"ICU_DISCHARGE//{unit}", None, hadm, stay),
    )


def ed_stay(
    subject: int, stay: int, intime: str, outtime: str, disposition: str, hadm: int | None = None,
    transport: str = "WALK IN",
) -> tuple[EventRow, EventRow]:
    """``ED_ARRIVAL//<transport>`` and ``ED_DISPOSITION//<disposition>`` with ``stay_id`` (and the
    ``hadm_id`` of the admission it led to, if any)."""
    return (
        (subject, intime, f"ED_ARRIVAL//{transport}", None, hadm, stay),
        (subject, outtime, f"ED_DISPOSITION//{disposition}", None, hadm, stay),
    )
