"""What each part of a serialized timeline says: code kinds, and one polars builder per section.

Every builder reads ``known`` (a shard's events that each label row may use, already through the
single cutoff, with codes replaced by integer ids ``_CID`` and kinds ``_KIND``) and the shard's code
table, and returns lines: ``ROW_INDEX`` (the label row), ``_LINE`` (the text) and ``_T`` (the line's
recency, which the token budget cuts by). The underscored names are the working columns the
serializer's modules share.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ehrpredict import schema as S
from ehrpredict.age import age_in_years
from ehrpredict.events.cutoff import PREDICTION_TIME, ROW_INDEX
from ehrpredict.vocab.kinds import CodeKinds

DEMOGRAPHICS = "Demographics"
VITALS = "Vital signs and body metrics"
LABS = "Lab results"
CONDITIONS = "Conditions"
MEDICATIONS = "Medications"
PROCEDURES = "Procedures"
VISITS = "Visits"
NOTES = "Notes"
RECENT_CODES = "Recent codes"

# Working columns. Codes become integer ids (their rank in the shard's sorted codes) before events
# are paired with label rows, so sorting and grouping the large paired frame never touches strings.
_CID = "_cid"
_KIND = "_kind"
_ITEM = "_item"
_ITEM_ID = "_item_id"  # integer id of _item, to group flags without strings
_FLAG = "_flag"
_FLAGGABLE = "_flaggable"
_RANK = "_rank"  # a shown lab or vital item's rank in the fitted selection (0: the most frequent)
_LINE = "_line"
_T = "_t"  # the line's recency: time of the newest event it shows
_VALUE = "_value"
_DESC = "_desc"
_N = "_n"

# What an event is for. Static (null time) and birth feed demographics; OTHER only recent_codes.
STATIC, BIRTH, VITAL, LAB, FLAG, CONDITION, MEDICATION, PROCEDURE, VISIT, NOTE, OTHER = range(11)
_TEXT_KINDS = (VITAL, LAB, MEDICATION, VISIT, NOTE)  # kinds whose text_value the text shows


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]


def render(sections: tuple[Section, ...] | list[Section]) -> str:
    """The markdown text of ``sections``; a section without lines is left out."""
    return "\n\n".join(f"## {s.title}\n" + "\n".join(s.lines) for s in sections if s.lines)


# --- polars expressions -----------------------------------------------------------------------------


def _ago() -> pl.Expr:
    """How long before the prediction time an event was: minutes up to an hour, hours up to two days,
    days up to 60 days, months (30 days) up to two years, then years (365.25 days). Floored."""
    seconds = (pl.col(PREDICTION_TIME) - pl.col(S.TIME)).dt.total_seconds()
    minutes = seconds // 60
    days = seconds // 86_400
    number = (pl.when(minutes < 60).then(minutes).when(minutes < 48 * 60).then(minutes // 60)
              .when(days < 60).then(days).when(days < 730).then(days // 30)
              .otherwise((days / 365.25).floor().cast(pl.Int64)))
    unit = (pl.when(minutes < 60).then(pl.lit("minute")).when(minutes < 48 * 60).then(pl.lit("hour"))
            .when(days < 60).then(pl.lit("day")).when(days < 730).then(pl.lit("month")).otherwise(pl.lit("year")))
    text = pl.concat_str([number.cast(pl.String), pl.lit(" "), unit,
                          pl.when(number == 1).then(pl.lit(" before")).otherwise(pl.lit("s before"))])
    return (pl.when(seconds == 0).then(pl.lit("at prediction time"))
            .when(minutes < 1).then(pl.lit("under a minute before")).otherwise(text))


def _value() -> pl.Expr:
    """A value as the text shows it: float32 readings in their shortest form ("98.7", "139")."""
    number = pl.col(S.NUMERIC_VALUE).cast(pl.String).str.replace(r"\.0$", "")
    return pl.coalesce(number, pl.col(S.TEXT_VALUE))


def run_position(*keys: str) -> pl.Expr:
    """0, 1, 2, ... within each run of equal ``keys`` of a frame sorted by them (cheaper than ``over``)."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    new = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    return index - pl.when(new).then(index).otherwise(None).forward_fill()


def _newest_first(frame: pl.LazyFrame, limit: int, *keys: str) -> pl.LazyFrame:
    """Rows sorted per label row by time (newest first) then ``keys``; the first ``limit`` per row."""
    ordered = frame.sort([ROW_INDEX, S.TIME, *keys], descending=[False, True, *[False] * len(keys)],
                         nulls_last=True)
    return ordered.filter(run_position(ROW_INDEX) < limit)


def _lines(frame: pl.LazyFrame, line: pl.Expr) -> pl.LazyFrame:
    return frame.select(ROW_INDEX, line.alias(_LINE), pl.col(S.TIME).alias(_T))


def code_kind(kinds: CodeKinds) -> pl.Expr:
    """What each ``code`` is for, by its prefix (the part before the first ``//``): which prefixes feed
    which section is the dataset's :class:`~ehrpredict.vocab.kinds.CodeKinds`."""
    prefix = pl.col(S.CODE).str.replace(S.CODE_SEPARATOR + ".*", "")
    nested = pl.col(S.CODE).str.contains(S.CODE_SEPARATOR, literal=True)

    def among(prefixes: tuple[str, ...]) -> pl.Expr:
        return prefix.is_in(pl.Series(prefixes, dtype=pl.String).implode())

    return (
        pl.when(pl.col(S.CODE) == S.BIRTH_CODE).then(BIRTH)
        .when(among(kinds.vitals) & nested).then(VITAL)  # a bare code of a vital prefix (chief complaint) falls through
        .when(among(kinds.labs)).then(LAB)
        .when(among(kinds.lab_flags)).then(FLAG)
        .when(among(kinds.conditions)).then(CONDITION)
        .when(among(kinds.medications)).then(MEDICATION)
        .when(among(kinds.procedures)).then(PROCEDURE)
        .when(among(kinds.visits)).then(VISIT)
        .when(among(kinds.notes)).then(NOTE)
        .otherwise(OTHER).cast(pl.Int8)
    )


# --- sections -----------------------------------------------------------------------------------------


def _described(frame: pl.LazyFrame, table: pl.LazyFrame, *columns: str) -> pl.LazyFrame:
    return frame.join(table.select(_CID, _DESC, *columns), on=_CID, how="left")


def measurements(known: pl.LazyFrame, kind: int, table: pl.LazyFrame, max_items: int,
                 values_per_item: int) -> pl.LazyFrame:
    """One line per item (the ``max_items`` the patient has that rank first in the fitted selection,
    ``_RANK`` of ``table``): its last ``values_per_item`` values, newest first, each with when it was
    and, for labs, its flag."""
    values = known.filter((pl.col(_KIND) == kind)
                          & (pl.col(S.NUMERIC_VALUE).is_not_null() | pl.col(S.TEXT_VALUE).is_not_null()))
    # The last k values per item: rank by time (ties share a rank, so the cut does not depend on row
    # order), then order the few survivors fully and keep k.
    recent = pl.col(S.TIME).rank("min", descending=True).over(ROW_INDEX, _CID) <= values_per_item
    values = values.filter(recent).sort([ROW_INDEX, _CID, S.TIME, S.NUMERIC_VALUE, S.TEXT_VALUE],
                                        descending=[False, False, True, False, False], nulls_last=True)
    values = values.filter(run_position(ROW_INDEX, _CID) < values_per_item)
    # The max_items items of the row that rank first in the selection (ranks are distinct per kind).
    values = values.join(table.select(_CID, _RANK), on=_CID).filter(
        pl.col(_RANK).rank("dense").over(ROW_INDEX) <= max_items)
    note = pl.lit("")
    if kind == LAB:
        values = values.join(table.select(_CID, _ITEM_ID, _FLAGGABLE), on=_CID, how="left")
        values = values.join(_lab_flags(known, values, table), on=[ROW_INDEX, _ITEM_ID, S.TIME], how="left")
        note = (pl.when(pl.col(_FLAG).is_not_null()).then(pl.concat_str([pl.lit(", "), pl.col(_FLAG)]))
                .when(pl.col(_FLAGGABLE)).then(pl.lit(", normal")).otherwise(pl.lit("")))
    entry = pl.concat_str([_value(), pl.lit(" ("), _ago(), note, pl.lit(")")])
    lines = values.with_columns(entry.alias(_VALUE)).group_by([ROW_INDEX, _CID], maintain_order=True).agg(
        pl.col(_VALUE).str.join("; "), pl.col(S.TIME).max())
    lines = _described(_newest_first(lines, max_items, _CID), table)
    return _lines(lines, pl.concat_str([pl.lit("- "), pl.col(_DESC), pl.lit(": "), pl.col(_VALUE)]))


def _lab_flags(known: pl.LazyFrame, values: pl.LazyFrame, table: pl.LazyFrame) -> pl.LazyFrame:
    """``LAB_FLAG//<itemid>//<flag>`` events at the shown values' times: flags per (label row, item, time)."""
    flags = known.filter(pl.col(_KIND) == FLAG).select(ROW_INDEX, S.TIME, _CID)
    flags = flags.join(values.select(ROW_INDEX, S.TIME).unique(), on=[ROW_INDEX, S.TIME], how="semi")
    flags = flags.join(table.select(_CID, _ITEM_ID, _FLAG), on=_CID)
    return flags.group_by(ROW_INDEX, _ITEM_ID, S.TIME).agg(pl.col(_FLAG).unique().sort().str.join(", "))


def occurrences(known: pl.LazyFrame, kind: int, table: pl.LazyFrame, limit: int, detail: bool) -> pl.LazyFrame:
    """One line per code: when it last occurred, how often, and (``detail``) its latest text value."""
    events = known.filter(pl.col(_KIND) == kind)
    codes = events.group_by(ROW_INDEX, _CID).agg(pl.col(S.TIME).max(), pl.len().alias(_N),
                                                 pl.col(PREDICTION_TIME).first())
    if detail:  # the text of the latest occurrence (ties: the largest)
        latest = events.filter(pl.col(S.TIME) == pl.col(S.TIME).max().over(ROW_INDEX, _CID))
        codes = codes.join(latest.group_by(ROW_INDEX, _CID).agg(pl.col(S.TEXT_VALUE).max()), on=[ROW_INDEX, _CID])
    codes = _described(_newest_first(codes, limit, _CID), table)
    text = pl.concat_str([pl.lit(", "), pl.col(S.TEXT_VALUE)]).fill_null("") if detail else pl.lit("")
    times = pl.when(pl.col(_N) > 1).then(pl.concat_str([pl.lit(", "), pl.col(_N).cast(pl.String), pl.lit(" times")]))
    line = pl.concat_str([pl.lit("- "), pl.col(_DESC), text, pl.lit(" ("), _ago(), times.otherwise(pl.lit("")),
                          pl.lit(")")])
    return _lines(codes, line)


def visits(known: pl.LazyFrame, table: pl.LazyFrame, limit: int) -> pl.LazyFrame:
    """Every admission, discharge, ICU and ED event, newest first (with admission source, chief complaint)."""
    events = _described(_newest_first(known.filter(pl.col(_KIND) == VISIT), limit, _CID, S.TEXT_VALUE), table)
    text = pl.concat_str([pl.lit(", "), pl.col(S.TEXT_VALUE)]).fill_null("")
    return _lines(events, pl.concat_str([pl.lit("- "), pl.col(_DESC), text, pl.lit(" ("), _ago(), pl.lit(")")]))


def notes(known: pl.LazyFrame, table: pl.LazyFrame, max_notes: int, note_chars: int) -> pl.LazyFrame:
    """The most recent notes, one line each: kind, when, and the first ``note_chars`` characters."""
    recent = known.filter((pl.col(_KIND) == NOTE) & pl.col(S.TEXT_VALUE).is_not_null())
    recent = _described(_newest_first(recent, max_notes, _CID, S.TEXT_VALUE), table)
    # Collapse whitespace on a bounded prefix only: notes run to many kilobytes.
    flat = (pl.col(S.TEXT_VALUE).str.slice(0, 2 * note_chars).str.replace_all(r"\s+", " ")
            .str.strip_chars())
    longer = (flat.str.len_chars() > note_chars) | (pl.col(S.TEXT_VALUE).str.len_chars() > 2 * note_chars)
    excerpt = pl.concat_str([flat.str.slice(0, note_chars).str.strip_chars_end(),
                             pl.when(longer).then(pl.lit(" …")).otherwise(pl.lit(""))])
    return _lines(recent, pl.concat_str([pl.lit("- "), pl.col(_DESC), pl.lit(" ("), _ago(), pl.lit("): "), excerpt]))


def recent_codes(known: pl.LazyFrame, table: pl.LazyFrame, limit: int) -> pl.LazyFrame:
    codes = known.filter(~pl.col(_KIND).is_in([STATIC, BIRTH])).group_by(ROW_INDEX, _CID).agg(pl.col(S.TIME).max())
    return _lines(_described(_newest_first(codes, limit, _CID), table), pl.col(_DESC))


def demographics(known: pl.LazyFrame, rows: pl.LazyFrame, table: pl.LazyFrame, bullet: str) -> pl.LazyFrame:
    """Per label row: the age (from ``MEDS_BIRTH``, else "unknown") and one line per static code (sex)."""
    birth = known.filter(pl.col(_KIND) == BIRTH).group_by(ROW_INDEX).agg(pl.col(S.TIME).min().alias("_birth"))
    birth = rows.select(ROW_INDEX, PREDICTION_TIME).join(birth, on=ROW_INDEX, how="left")
    age = age_in_years(pl.col(PREDICTION_TIME), pl.col("_birth"))
    years = pl.concat_str([age.cast(pl.String), pl.lit(" years")]).fill_null("unknown")
    ages = birth.select(ROW_INDEX, pl.lit(-1, pl.Int64).alias(_CID),
                        pl.concat_str([pl.lit(f"{bullet}Age: "), years]).alias(_LINE))
    static = known.filter(pl.col(_KIND) == STATIC).select(ROW_INDEX, pl.col(_CID).cast(pl.Int64)).unique()
    static = _described(static, table.with_columns(pl.col(_CID).cast(pl.Int64)))
    static = static.select(ROW_INDEX, _CID, pl.concat_str([pl.lit(bullet), pl.col(_DESC)]).alias(_LINE))
    return pl.concat([ages, static]).sort(ROW_INDEX, _CID).select(ROW_INDEX, _LINE)
