"""Patient timelines serialized to readable text, deterministically, for a text encoder to embed.

Two formats (``FORMATS``):

- ``markdown``: one section per kind of information, newest first, times relative to the prediction
  time ("5 hours before", never a date: MIMIC dates are shifted and meaningless)::

      ## Demographics
      - Age: 67 years
      - Sex: F

      ## Lab results
      - Creatinine (Blood, Chemistry) [mg/dL]: 1.8 (5 hours before, abnormal); 1.1 (2 days before, normal)

  Sections: demographics, vital signs and body metrics, lab results (the most frequent items, their
  last few values with the dataset's flag), conditions, medications, procedures, visits, and excerpts
  of the most recent notes (``include_notes``).
- ``recent_codes``: the description of each code's most recent occurrence, newest first, one a line.

Every code is shown as its description from ``metadata/codes.parquet``, the raw code only where
there is none. Every event goes through :func:`~ehrpredict.features.cutoff.events_at_or_before`, so
nothing after the prediction time reaches the text. A token budget cuts the oldest lines first
(demographics are never cut) and records what it cut. ``SERIALIZER_VERSION`` changes whenever the
text for the same input changes; it is part of embedding cache keys.

    >>> serializer = TimelineSerializer("out/meds", SerializerConfig(max_tokens=256))  # doctest: +SKIP
    >>> print(serializer.serialize(labels)[0].text)                                    # doctest: +SKIP

Lab flags: MIMIC-IV records only whether a lab value was flagged (``LAB_FLAG//<itemid>//abnormal``,
kept by ingestion) and no reference ranges, so a value shows the flag it has, ``normal`` when its
item carries flags in this dataset but this value was not flagged, and nothing otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from ehrpredict import schema as S
from ehrpredict.dataset import shard_files
from ehrpredict.errors import ConfigError, DataError, SchemaError
from ehrpredict.features.cutoff import PREDICTION_TIME, ROW_INDEX, events_at_or_before

SERIALIZER_VERSION = "1.0"
FORMATS = ("markdown", "recent_codes")

DEMOGRAPHICS = "Demographics"
VITALS = "Vital signs and body metrics"
LABS = "Lab results"
CONDITIONS = "Conditions"
MEDICATIONS = "Medications"
PROCEDURES = "Procedures"
VISITS = "Visits"
NOTES = "Notes"
RECENT_CODES = "Recent codes"

# Which code vocabularies (the part before the first "//") feed which markdown section.
VITAL_PREFIXES = ("CHART", "ED_TRIAGE", "ED_VITAL", "OMR")
LAB_PREFIX = "LAB"
FLAG_PREFIX = "LAB_FLAG"
CONDITION_PREFIXES = ("ICD10CM", "ICD9CM", "DRG")
# PHARMACY is left out: it repeats every MEDICATION order of the same drug.
MEDICATION_PREFIXES = ("MEDICATION", "EMAR", "ED_MEDRECON", "ED_PYXIS", "INPUT_START")
PROCEDURE_PREFIXES = ("ICD10PCS", "ICD9PROC", "HCPCS", "ICU_PROCEDURE_START")
VISIT_PREFIXES = ("HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE", "ICU_ADMISSION", "ICU_DISCHARGE", "ED_ARRIVAL",
                  "ED_DISPOSITION", "ED_TRIAGE")  # bare ED_TRIAGE carries the chief complaint
NOTE_PREFIX = "NOTE"

# Working columns. Codes become integer ids (their rank in the shard's sorted codes) before events
# are paired with label rows, so sorting and grouping the large paired frame never touches strings.
_CID = "_cid"
_KIND = "_kind"
_ITEM = "_item"
_ITEM_ID = "_item_id"  # integer id of _item, to group flags without strings
_FLAG = "_flag"
_FLAGGABLE = "_flaggable"
_LINE = "_line"
_T = "_t"  # the line's recency: time of the newest event it shows
_VALUE = "_value"
_DESC = "_desc"
_N = "_n"
_MAX_CODES = 1 << 24  # distinct codes per shard, far above any real vocabulary; keeps a combined sort key in int64

# What an event is for. Static (null time) and birth feed demographics; OTHER only recent_codes.
STATIC, BIRTH, VITAL, LAB, FLAG, CONDITION, MEDICATION, PROCEDURE, VISIT, NOTE, OTHER = range(11)
_TEXT_KINDS = (VITAL, LAB, MEDICATION, VISIT, NOTE)  # kinds whose text_value the text shows


def approx_tokens(text: str) -> int:
    """The default token count: ``ceil(len(text) / 4)``, about what BPE/WordPiece encoders give for
    English clinical text. Cheap and deterministic; pass the encoder's tokenizer for exact budgets.

    >>> approx_tokens("12345")
    2
    """
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...]


def _render(sections: tuple[Section, ...] | list[Section]) -> str:
    return "\n\n".join(f"## {s.title}\n" + "\n".join(s.lines) for s in sections if s.lines)


@dataclass(frozen=True)
class SerializedTimeline:
    """The text of one label row, kept as sections so that occlusion can remove a section or a line."""

    subject_id: int
    prediction_time: datetime
    format: str
    sections: tuple[Section, ...]
    truncated: tuple[tuple[str, int], ...]  # (section title, lines cut by the token budget)

    def render(self, omit_section: str | None = None, omit_line: tuple[str, int] | None = None) -> str:
        """The text, optionally without one section or one line (``(section title, line index)``).

        >>> t = SerializedTimeline(1, datetime(2150, 1, 1), "markdown",
        ...                        (Section("A", ("- x", "- y")), Section("B", ("- z",))), ())
        >>> t.render(omit_line=("A", 0))
        '## A\\n- y\\n\\n## B\\n- z'
        """
        titles = [s.title for s in self.sections]
        for title in [omit_section, omit_line[0] if omit_line else None]:
            if title is not None and title not in titles:
                raise ConfigError(f"expected a section of this timeline ({', '.join(titles)}), got {title!r}")
        sections = [s for s in self.sections if s.title != omit_section]
        if omit_line is not None:
            title, index = omit_line
            section = next(s for s in self.sections if s.title == title)
            if not 0 <= index < len(section.lines):
                raise ConfigError(f"expected a line index in 0..{len(section.lines) - 1} of section {title!r}, "
                                  f"got {index}")
            lines = section.lines[:index] + section.lines[index + 1:]
            sections = [Section(title, lines) if s.title == title else s for s in sections]
        return _render(sections)

    @property
    def text(self) -> str:
        return _render(self.sections)


@dataclass(frozen=True)
class SerializerConfig:
    """How timelines are written. Every knob changes the text, so all of them belong in cache keys.

    ``max_items``: lab and vital items shown per section (the dataset's most frequent ones the patient
    has, among the section's ``4 * max_items`` most frequent in the dataset); ``values_per_item``:
    their last values shown; ``max_lines``: lines kept per other section before the token budget
    applies (the newest); ``max_notes`` and ``note_chars``: how many of the most recent notes are
    excerpted and how long an excerpt is; ``max_recent_codes``: lines of the ``recent_codes`` format.
    """

    format: str = "markdown"
    max_tokens: int = 512
    include_notes: bool = True
    values_per_item: int = 3
    max_items: int = 12
    max_lines: int = 30
    max_notes: int = 2
    note_chars: int = 300
    max_recent_codes: int = 200

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"expected format one of {', '.join(FORMATS)}, got {self.format!r}")
        if not isinstance(self.include_notes, bool):
            raise ConfigError(f"expected include_notes true or false, got {self.include_notes!r}")
        for name in ("max_tokens", "values_per_item", "max_items", "max_lines", "max_notes", "note_chars",
                     "max_recent_codes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected {name} a whole number >= 1, got {value!r}")


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


def _run_position(*keys: str) -> pl.Expr:
    """0, 1, 2, ... within each run of equal ``keys`` of a frame sorted by them (cheaper than ``over``)."""
    index = pl.int_range(pl.len(), dtype=pl.Int64)
    new = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    return index - pl.when(new).then(index).otherwise(None).forward_fill()


def _newest_first(frame: pl.LazyFrame, limit: int, *keys: str) -> pl.LazyFrame:
    """Rows sorted per label row by time (newest first) then ``keys``; the first ``limit`` per row."""
    ordered = frame.sort([ROW_INDEX, S.TIME, *keys], descending=[False, True, *[False] * len(keys)],
                         nulls_last=True)
    return ordered.filter(_run_position(ROW_INDEX) < limit)


def _lines(frame: pl.LazyFrame, line: pl.Expr) -> pl.LazyFrame:
    return frame.select(ROW_INDEX, line.alias(_LINE), pl.col(S.TIME).alias(_T))


def _kind() -> pl.Expr:
    prefix = pl.col(S.CODE).str.replace(S.CODE_SEPARATOR + ".*", "")
    nested = pl.col(S.CODE).str.contains(S.CODE_SEPARATOR, literal=True)
    return (
        pl.when(pl.col(S.CODE) == S.BIRTH_CODE).then(BIRTH)
        .when(prefix.is_in(VITAL_PREFIXES) & nested).then(VITAL)
        .when(prefix == LAB_PREFIX).then(LAB)
        .when(prefix == FLAG_PREFIX).then(FLAG)
        .when(prefix.is_in(CONDITION_PREFIXES)).then(CONDITION)
        .when(prefix.is_in(MEDICATION_PREFIXES)).then(MEDICATION)
        .when(prefix.is_in(PROCEDURE_PREFIXES)).then(PROCEDURE)
        .when(prefix.is_in(VISIT_PREFIXES)).then(VISIT)  # bare ED_TRIAGE (chief complaint); its vitals are nested
        .when(prefix == NOTE_PREFIX).then(NOTE)
        .otherwise(OTHER).cast(pl.Int8)
    )


# --- sections -----------------------------------------------------------------------------------------


class _Vocabulary:
    """What the serializer needs from ``metadata/codes.parquet``: descriptions, frequencies, flaggable labs."""

    def __init__(self, root: Path) -> None:
        path = root / S.CODES_FILE
        columns = [S.CODE, S.DESCRIPTION, S.CODE_COUNT]
        if path.exists():
            available = pl.read_parquet_schema(path)
            codes = pl.read_parquet(path, columns=[c for c in columns if c in available])
        else:  # a MEDS dataset without code metadata: raw codes everywhere
            codes = pl.DataFrame(schema={S.CODE: pl.String})
        if S.DESCRIPTION not in codes.columns:
            codes = codes.with_columns(pl.lit(None, pl.String).alias(S.DESCRIPTION))
        if S.CODE_COUNT not in codes.columns:
            codes = codes.with_columns(pl.lit(0, pl.Int64).alias(S.CODE_COUNT))
        blank = pl.col(S.DESCRIPTION).str.strip_chars() == ""
        self.codes = codes.select(
            S.CODE,
            pl.when(blank).then(None).otherwise(pl.col(S.DESCRIPTION)).alias(S.DESCRIPTION),
            pl.col(S.CODE_COUNT).cast(pl.Int64).fill_null(0).alias(_N),
        ).unique(S.CODE, keep="first")
        flags = self.codes.filter(pl.col(S.CODE).str.starts_with(FLAG_PREFIX + S.CODE_SEPARATOR))
        self.flaggable = flags.select(pl.col(S.CODE).str.split(S.CODE_SEPARATOR).list.get(1).alias(_ITEM)).unique()

    def table(self, codes: pl.Series, candidates: int) -> pl.DataFrame:
        """One row per distinct code of a shard: integer id (rank of the code), kind, description (or
        the raw code), frequency, and for labs and lab flags the item id and flag.

        Only the ``candidates`` most frequent vital and lab items of the dataset can be shown (MIMIC-IV
        has over a thousand chart items, mostly device settings); the others become ``OTHER``."""
        table = pl.DataFrame({S.CODE: codes}).unique().sort(S.CODE).with_row_index(_CID)
        table = table.join(self.codes, on=S.CODE, how="left").sort(_CID)
        parts = pl.col(S.CODE).str.split(S.CODE_SEPARATOR)
        table = table.with_columns(
            _kind().alias(_KIND),
            pl.coalesce(S.DESCRIPTION, S.CODE).alias(_DESC),
            pl.col(_N).fill_null(0),
            parts.list.get(1, null_on_oob=True).alias(_ITEM),
            parts.list.get(2, null_on_oob=True).fill_null("flagged").alias(_FLAG),
        )
        measured = pl.col(_KIND).is_in([VITAL, LAB])
        rank = (pl.lit(_MAX_CODES, pl.Int64) * -pl.col(_N) + pl.col(_CID).cast(pl.Int64)).rank("dense").over(_KIND)
        table = table.with_columns(
            pl.when(measured & (rank > candidates)).then(pl.lit(OTHER, pl.Int8)).otherwise(pl.col(_KIND)).alias(_KIND))
        flaggable = pl.col(_ITEM).is_in(self.flaggable.get_column(_ITEM).implode())
        return table.with_columns(((pl.col(_KIND) == LAB) & flaggable).alias(_FLAGGABLE),
                                  pl.col(_ITEM).rank("dense").cast(pl.Int64).alias(_ITEM_ID))


def _described(frame: pl.LazyFrame, table: pl.LazyFrame, *columns: str) -> pl.LazyFrame:
    return frame.join(table.select(_CID, _DESC, *columns), on=_CID, how="left")


def _measurements(known: pl.LazyFrame, kind: int, table: pl.LazyFrame, config: SerializerConfig) -> pl.LazyFrame:
    """One line per item (the ``max_items`` most frequent in the dataset that the patient has): its last
    ``values_per_item`` values, newest first, each with when it was and, for labs, its flag."""
    values = known.filter((pl.col(_KIND) == kind)
                          & (pl.col(S.NUMERIC_VALUE).is_not_null() | pl.col(S.TEXT_VALUE).is_not_null()))
    # The last k values per item: rank by time (ties share a rank, so the cut does not depend on row
    # order), then order the few survivors fully and keep k.
    recent = pl.col(S.TIME).rank("min", descending=True).over(ROW_INDEX, _CID) <= config.values_per_item
    values = values.filter(recent).sort([ROW_INDEX, _CID, S.TIME, S.NUMERIC_VALUE, S.TEXT_VALUE],
                                        descending=[False, False, True, False, False], nulls_last=True)
    values = values.filter(_run_position(ROW_INDEX, _CID) < config.values_per_item)
    # The max_items items most frequent in the dataset: rank (frequency desc, code id) within the row.
    frequent = (pl.lit(_MAX_CODES, pl.Int64) * -pl.col(_N) + pl.col(_CID).cast(pl.Int64)).rank("dense").over(ROW_INDEX)
    values = values.join(table.select(_CID, _N), on=_CID).filter(frequent <= config.max_items)
    note = pl.lit("")
    if kind == LAB:
        values = values.join(table.select(_CID, _ITEM_ID, _FLAGGABLE), on=_CID, how="left")
        values = values.join(_lab_flags(known, values, table), on=[ROW_INDEX, _ITEM_ID, S.TIME], how="left")
        note = (pl.when(pl.col(_FLAG).is_not_null()).then(pl.concat_str([pl.lit(", "), pl.col(_FLAG)]))
                .when(pl.col(_FLAGGABLE)).then(pl.lit(", normal")).otherwise(pl.lit("")))
    entry = pl.concat_str([_value(), pl.lit(" ("), _ago(), note, pl.lit(")")])
    lines = values.with_columns(entry.alias(_VALUE)).group_by([ROW_INDEX, _CID], maintain_order=True).agg(
        pl.col(_VALUE).str.join("; "), pl.col(S.TIME).max())
    lines = _described(_newest_first(lines, config.max_items, _CID), table)
    return _lines(lines, pl.concat_str([pl.lit("- "), pl.col(_DESC), pl.lit(": "), pl.col(_VALUE)]))


def _lab_flags(known: pl.LazyFrame, values: pl.LazyFrame, table: pl.LazyFrame) -> pl.LazyFrame:
    """``LAB_FLAG//<itemid>//<flag>`` events at the shown values' times: flags per (label row, item, time)."""
    flags = known.filter(pl.col(_KIND) == FLAG).select(ROW_INDEX, S.TIME, _CID)
    flags = flags.join(values.select(ROW_INDEX, S.TIME).unique(), on=[ROW_INDEX, S.TIME], how="semi")
    flags = flags.join(table.select(_CID, _ITEM_ID, _FLAG), on=_CID)
    return flags.group_by(ROW_INDEX, _ITEM_ID, S.TIME).agg(pl.col(_FLAG).unique().sort().str.join(", "))


def _occurrences(known: pl.LazyFrame, kind: int, table: pl.LazyFrame, limit: int, detail: bool) -> pl.LazyFrame:
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


def _visits(known: pl.LazyFrame, table: pl.LazyFrame, limit: int) -> pl.LazyFrame:
    """Every admission, discharge, ICU and ED event, newest first (with admission source, chief complaint)."""
    events = _described(_newest_first(known.filter(pl.col(_KIND) == VISIT), limit, _CID, S.TEXT_VALUE), table)
    text = pl.concat_str([pl.lit(", "), pl.col(S.TEXT_VALUE)]).fill_null("")
    return _lines(events, pl.concat_str([pl.lit("- "), pl.col(_DESC), text, pl.lit(" ("), _ago(), pl.lit(")")]))


def _notes(known: pl.LazyFrame, table: pl.LazyFrame, config: SerializerConfig) -> pl.LazyFrame:
    """The most recent notes, one line each: kind, when, and the first ``note_chars`` characters."""
    notes = known.filter((pl.col(_KIND) == NOTE) & pl.col(S.TEXT_VALUE).is_not_null())
    notes = _described(_newest_first(notes, config.max_notes, _CID, S.TEXT_VALUE), table)
    # Collapse whitespace on a bounded prefix only: notes run to many kilobytes.
    flat = (pl.col(S.TEXT_VALUE).str.slice(0, 2 * config.note_chars).str.replace_all(r"\s+", " ")
            .str.strip_chars())
    longer = (flat.str.len_chars() > config.note_chars) | (pl.col(S.TEXT_VALUE).str.len_chars() > 2 * config.note_chars)
    excerpt = pl.concat_str([flat.str.slice(0, config.note_chars).str.strip_chars_end(),
                             pl.when(longer).then(pl.lit(" …")).otherwise(pl.lit(""))])
    return _lines(notes, pl.concat_str([pl.lit("- "), pl.col(_DESC), pl.lit(" ("), _ago(), pl.lit("): "), excerpt]))


def _recent_codes(known: pl.LazyFrame, table: pl.LazyFrame, limit: int) -> pl.LazyFrame:
    codes = known.filter(~pl.col(_KIND).is_in([STATIC, BIRTH])).group_by(ROW_INDEX, _CID).agg(pl.col(S.TIME).max())
    return _lines(_described(_newest_first(codes, limit, _CID), table), pl.col(_DESC))


def _demographics(known: pl.LazyFrame, rows: pl.LazyFrame, table: pl.LazyFrame, bullet: str) -> pl.LazyFrame:
    """Per label row: the age (from ``MEDS_BIRTH``, else "unknown") and one line per static code (sex)."""
    birth = known.filter(pl.col(_KIND) == BIRTH).group_by(ROW_INDEX).agg(pl.col(S.TIME).min().alias("_birth"))
    birth = rows.select(ROW_INDEX, PREDICTION_TIME).join(birth, on=ROW_INDEX, how="left")
    stamp = "%m%d%H%M%S"
    not_yet = (pl.col(PREDICTION_TIME).dt.strftime(stamp) < pl.col("_birth").dt.strftime(stamp)).cast(pl.Int64)
    age = pl.col(PREDICTION_TIME).dt.year().cast(pl.Int64) - pl.col("_birth").dt.year().cast(pl.Int64) - not_yet
    years = pl.concat_str([age.cast(pl.String), pl.lit(" years")]).fill_null("unknown")
    ages = birth.select(ROW_INDEX, pl.lit(-1, pl.Int64).alias(_CID),
                        pl.concat_str([pl.lit(f"{bullet}Age: "), years]).alias(_LINE))
    static = known.filter(pl.col(_KIND) == STATIC).select(ROW_INDEX, pl.col(_CID).cast(pl.Int64)).unique()
    static = _described(static, table.with_columns(pl.col(_CID).cast(pl.Int64)))
    static = static.select(ROW_INDEX, _CID, pl.concat_str([pl.lit(bullet), pl.col(_DESC)]).alias(_LINE))
    return pl.concat([ages, static]).sort(ROW_INDEX, _CID).select(ROW_INDEX, _LINE)


# --- assembly -----------------------------------------------------------------------------------------

_SEC = "_section"  # index of a line's section
_J = "_j"  # index of a line in its section (newest first)
_DROP = "_dropped"
_Candidate = tuple[str, list[str], list[int]]  # one label row's section before the budget: title, lines, times


def _drop_by_length(lines: pl.LazyFrame, demographics: pl.LazyFrame, titles: list[str],
                    max_chars: int) -> pl.LazyFrame:
    """``lines`` with ``_dropped``: what the budget cuts under :func:`approx_tokens`, all label rows at once.

    Lines go oldest first (ties: earlier section, later line), so every section loses its tail. A line
    costs its length plus a newline; a section's first line (dropped last) also its ``## title`` line
    and the blank line before it. A line is dropped while the text without the ones before it is too long.
    """
    headers = pl.LazyFrame({_SEC: range(len(titles)), "_header": [5 + len(t) for t in titles]},
                           schema={_SEC: pl.Int32, "_header": pl.Int64})
    cost = pl.col(_LINE).str.len_chars().cast(pl.Int64) + 1 + pl.when(pl.col(_J) == 0).then(pl.col("_header"))
    demo = demographics.group_by(ROW_INDEX).agg(
        (pl.col(_LINE).str.len_chars().cast(pl.Int64).sum() + pl.len() + 3 + len(DEMOGRAPHICS)).alias("_demo"))
    ordered = (lines.join(headers, on=_SEC).join(demo, on=ROW_INDEX, how="left")
               .with_columns(cost.fill_null(pl.col(_LINE).str.len_chars().cast(pl.Int64) + 1).alias("_cost"))
               .sort([ROW_INDEX, _T, _SEC, _J], descending=[False, False, False, True]))
    total = pl.col("_demo") + pl.col("_cost").sum().over(ROW_INDEX)
    before = pl.col("_cost").cum_sum().over(ROW_INDEX) - pl.col("_cost")
    return ordered.with_columns((total - before > max_chars).alias(_DROP)).drop("_header", "_demo", "_cost")


def _drop_order(candidates: list[_Candidate]) -> list[int]:
    """Section index of each line in the order the budget drops them (as :func:`_drop_by_length`)."""
    order = sorted((t, i, -j) for i, (_, _, times) in enumerate(candidates) for j, t in enumerate(times))
    return [i for _, i, _ in order]


def _cut_by_bisection(demographics: Section, candidates: list[_Candidate], count_tokens: Callable[[str], int],
                      max_tokens: int, chars_per_token: float) -> Counter[int]:
    """The fewest lines to drop, in drop order, for the text to fit (any tokenizer whose count falls as
    lines are dropped). The search starts where the budget in characters (at ``chars_per_token``, the
    dataset's ratio) says it should, then gallops and bisects on the shortened texts: two or three
    tokenizer calls per text, none on the (long) full text, instead of a bisection's seven."""
    drop = _drop_order(candidates)
    lines = sorted(((t, i, -j, len(line) + 1) for i, (_, section, times) in enumerate(candidates)
                    for j, (line, t) in enumerate(zip(section, times, strict=True))))
    excess = len(_render(_kept(demographics, candidates, Counter()))) - max_tokens * chars_per_token
    hint, removed = 0, 0
    while hint < len(lines) and removed < excess:
        removed += lines[hint][3]
        hint += 1

    def fits(k: int) -> bool:
        return count_tokens(_render(_kept(demographics, candidates, Counter(drop[:k])))) <= max_tokens

    return Counter(drop[:_smallest_fitting(fits, len(drop), hint)])


def _smallest_fitting(fits: Callable[[int], bool], n: int, hint: int) -> int:
    """Smallest k in [0, n] with ``fits(k)``, for ``fits`` false below some k and true from it on;
    ``n`` (dropping everything) is the fallback. Gallops from ``hint``, then bisects."""
    k = min(max(hint, 0), n)
    if fits(k):
        low, high, step = k - 1, k, 1  # the answer lies in (low, high]
        while low >= 0 and fits(low):
            high, low, step = low, max(low - 2 * step, -1), 2 * step
    else:
        low, high, step = k, min(k + 1, n), 1
        while high < n and not fits(high):
            low, high, step = high, min(high + 2 * step, n), 2 * step
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high


def _chars_per_token(texts: list[str], count_tokens: Callable[[str], int]) -> float:
    """Characters per token of a tokenizer on this kind of text (a sample of whole texts)."""
    tokens = sum(count_tokens(text) for text in texts)
    return sum(len(text) for text in texts) / tokens if tokens else 4.0


def _kept(demographics: Section, candidates: list[_Candidate], cut: Counter[int]) -> tuple[Section, ...]:
    kept = [Section(title, tuple(lines[:len(lines) - cut[i]])) for i, (title, lines, _) in enumerate(candidates)]
    return (demographics, *(s for s in kept if s.lines))


def _label_rows(labels: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in (S.SUBJECT_ID, PREDICTION_TIME) if c not in labels.columns]
    if missing:
        raise SchemaError(f"expected labels with columns {S.SUBJECT_ID} and {PREDICTION_TIME}, got "
                          f"{labels.columns} (missing {', '.join(missing)})")
    if not isinstance(labels.schema[PREDICTION_TIME], pl.Datetime):
        raise SchemaError(f"expected {PREDICTION_TIME} of type Datetime, got {labels.schema[PREDICTION_TIME]}")
    nulls = labels.select(pl.col(S.SUBJECT_ID, PREDICTION_TIME).null_count()).row(0)
    if any(nulls):
        raise DataError(f"expected no nulls in {S.SUBJECT_ID} and {PREDICTION_TIME}, got {nulls[0]} and {nulls[1]}")
    return labels.select(
        pl.col(S.SUBJECT_ID).cast(pl.Int64), pl.col(PREDICTION_TIME).cast(pl.Datetime("us")),
        pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_INDEX),
    )


class TimelineSerializer:
    """Serialize the timelines of label rows (``subject_id``, ``prediction_time``) of a MEDS dataset.

    ``count_tokens`` measures the token budget; default :func:`approx_tokens`. Shards are read one at
    a time (only the label rows' subjects) and every section is aggregated in polars per shard.
    """

    def __init__(self, dataset: str | Path, config: SerializerConfig = SerializerConfig(),
                 count_tokens: Callable[[str], int] | None = None) -> None:
        if not isinstance(config, SerializerConfig):
            raise ConfigError(f"expected a SerializerConfig, got {type(config).__name__}")
        self.dataset = Path(dataset)
        self.config = config
        self.count_tokens = count_tokens or approx_tokens
        self._files = shard_files(self.dataset)
        self._vocab = _Vocabulary(self.dataset)
        self._columns = [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE]

    def texts(self, labels: pl.DataFrame) -> list[str]:
        return [timeline.text for timeline in self.serialize(labels)]

    def serialize(self, labels: pl.DataFrame, progress: Callable[[int], None] | None = None
                  ) -> list[SerializedTimeline]:
        """One timeline per label row, in the labels' order. ``progress`` gets the number done so far."""
        rows = _label_rows(labels)
        done: list[SerializedTimeline | None] = [None] * rows.height
        subjects = rows.get_column(S.SUBJECT_ID).unique().implode()
        n_done = 0
        for path in self._files:
            events = pl.scan_parquet(path).select(self._columns).filter(pl.col(S.SUBJECT_ID).is_in(subjects)).collect()
            if events.is_empty():
                continue
            shard_rows = rows.join(events.select(S.SUBJECT_ID).unique(), on=S.SUBJECT_ID, how="semi")
            for row, timeline in self._serialize_shard(events, shard_rows):
                if done[row] is not None:
                    raise DataError(f"expected each subject in one shard, got subject {timeline.subject_id} "
                                    f"in several (one is {path})")
                done[row] = timeline
            n_done += shard_rows.height
            if progress is not None:
                progress(n_done)
        missing = rows.filter(pl.Series([t is None for t in done], dtype=pl.Boolean))
        if not missing.is_empty():  # subjects without any event: demographics only ("Age: unknown")
            no_events = pl.DataFrame(schema={c: S.EVENT_SCHEMA[c] for c in self._columns})
            for row, timeline in self._serialize_shard(no_events, missing):
                done[row] = timeline
            if progress is not None:
                progress(rows.height)
        return [t for t in done if t is not None]

    def _serialize_shard(self, events: pl.DataFrame, rows: pl.DataFrame) -> list[tuple[int, SerializedTimeline]]:
        table = self._vocab.table(events.get_column(S.CODE), candidates=4 * self.config.max_items)
        events = events.join(table.select(S.CODE, _CID, _KIND), on=S.CODE, how="left").with_columns(
            pl.when(pl.col(S.TIME).is_null()).then(pl.lit(STATIC, pl.Int8)).otherwise(pl.col(_KIND)).alias(_KIND))
        wanted = self._wanted_kinds()
        if wanted is not None:
            events = events.filter(pl.col(_KIND).is_in(wanted))
        text = pl.when(pl.col(_KIND).is_in(_TEXT_KINDS)).then(pl.col(S.TEXT_VALUE))
        events = events.select(S.SUBJECT_ID, S.TIME, _CID, _KIND, pl.col(S.NUMERIC_VALUE).cast(pl.Float32),
                               text.cast(pl.String).alias(S.TEXT_VALUE))
        known = events_at_or_before(events, rows)
        return self._assemble(known, rows, table)

    def _wanted_kinds(self) -> list[int] | None:
        if self.config.format == "recent_codes":
            return None
        kinds = [STATIC, BIRTH, VITAL, LAB, FLAG, CONDITION, MEDICATION, PROCEDURE, VISIT]
        return [*kinds, NOTE] if self.config.include_notes else kinds

    def _sections(self, known: pl.LazyFrame, table: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
        config = self.config
        if config.format == "recent_codes":
            return {RECENT_CODES: _recent_codes(known, table, config.max_recent_codes)}
        sections = {
            VITALS: _measurements(known, VITAL, table, config),
            LABS: _measurements(known, LAB, table, config),
            CONDITIONS: _occurrences(known, CONDITION, table, config.max_lines, detail=False),
            MEDICATIONS: _occurrences(known, MEDICATION, table, config.max_lines, detail=True),
            PROCEDURES: _occurrences(known, PROCEDURE, table, config.max_lines, detail=False),
            VISITS: _visits(known, table, config.max_lines),
        }
        if config.include_notes:
            sections[NOTES] = _notes(known, table, config)
        return sections

    def _assemble(self, known: pl.DataFrame, rows: pl.DataFrame, table: pl.DataFrame
                  ) -> list[tuple[int, SerializedTimeline]]:
        bullet = "- " if self.config.format == "markdown" else ""
        # One lazy graph for every section, so polars runs independent sections in parallel.
        known_lf, table_lf = known.lazy(), table.lazy()
        demographics_lf = _demographics(known_lf, rows.lazy(), table_lf, bullet)
        frames = self._sections(known_lf, table_lf)
        titles = list(frames)
        lines_lf = pl.concat([frame.with_columns(pl.lit(i, pl.Int32).alias(_SEC), _run_position(ROW_INDEX).alias(_J))
                              for i, frame in enumerate(frames.values())])
        if self.count_tokens is approx_tokens:
            lines_lf = _drop_by_length(lines_lf, demographics_lf, titles, 4 * self.config.max_tokens)
        demographics, lines = pl.collect_all([demographics_lf, lines_lf])
        if self.count_tokens is not approx_tokens:
            lines = self._drop_by_tokenizer(lines, demographics, titles)
        lines = lines.sort(ROW_INDEX, _SEC, _J)
        kept = lines.filter(~pl.col(_DROP)).group_by(ROW_INDEX, _SEC, maintain_order=True).agg(_LINE)
        cut = lines.filter(pl.col(_DROP)).group_by(ROW_INDEX, _SEC, maintain_order=True).len()
        demo_by_row = dict(demographics.group_by(ROW_INDEX, maintain_order=True).agg(_LINE).iter_rows())
        kept_by_row: dict[int, list[Section]] = {}
        for row, section, section_lines in kept.iter_rows():
            kept_by_row.setdefault(row, []).append(Section(titles[section], tuple(section_lines)))
        cut_by_row: dict[int, list[tuple[str, int]]] = {}
        for row, section, n in cut.iter_rows():
            cut_by_row.setdefault(row, []).append((titles[section], n))
        out = []
        for subject, prediction_time, row in rows.iter_rows():
            sections = (Section(DEMOGRAPHICS, tuple(demo_by_row[row])), *kept_by_row.get(row, ()))
            out.append((row, SerializedTimeline(subject, prediction_time, self.config.format, sections,
                                                tuple(cut_by_row.get(row, ())))))
        return out

    def _drop_by_tokenizer(self, lines: pl.DataFrame, demographics: pl.DataFrame, titles: list[str]) -> pl.DataFrame:
        """``lines`` with ``_dropped`` for a caller's tokenizer: each label row bisected in Python."""
        demo_by_row = dict(demographics.group_by(ROW_INDEX, maintain_order=True).agg(_LINE).iter_rows())
        grouped = lines.sort(ROW_INDEX, _SEC, _J).with_columns(pl.col(_T).dt.epoch("us")).group_by(
            ROW_INDEX, _SEC, maintain_order=True).agg(_LINE, _T)
        candidates: dict[int, list[_Candidate]] = {}
        for row, section, section_lines, times in grouped.iter_rows():
            candidates.setdefault(row, [(title, [], []) for title in titles])[section] = (
                titles[section], section_lines, times)
        cuts: list[tuple[int, int, int]] = []
        sample = [_render(_kept(Section(DEMOGRAPHICS, tuple(demo_by_row[row])), row_candidates, Counter()))
                  for row, row_candidates in itertools.islice(candidates.items(), 16)]
        ratio = _chars_per_token(sample, self.count_tokens)
        for row, row_candidates in candidates.items():
            cut = _cut_by_bisection(Section(DEMOGRAPHICS, tuple(demo_by_row[row])), row_candidates,
                                    self.count_tokens, self.config.max_tokens, ratio)
            cuts.extend((row, section, n) for section, n in cut.items())
        cut_frame = pl.DataFrame(cuts, schema={ROW_INDEX: pl.Int64, _SEC: pl.Int32, "_cut": pl.Int64}, orient="row")
        n_lines = pl.len().over(ROW_INDEX, _SEC)
        return lines.join(cut_frame, on=[ROW_INDEX, _SEC], how="left").with_columns(
            (pl.col(_J) >= n_lines - pl.col("_cut").fill_null(0)).alias(_DROP)).drop("_cut")


def serialize_subject(dataset: str | Path, task: str | Path, subject_id: int,
                      config: SerializerConfig = SerializerConfig(),
                      count_tokens: Callable[[str], int] | None = None) -> list[SerializedTimeline]:
    """The timelines of one subject's label rows of ``task`` (a built-in name or a YAML file), by
    prediction time: what a text model reads for them (``ehrpredict serialize``)."""
    from ehrpredict.tasks.labeler import label_many
    from ehrpredict.tasks.spec import load_task

    spec = load_task(task)
    labels = label_many(dataset, [spec])[spec.name].labels
    mine = labels.filter(pl.col(S.SUBJECT_ID) == subject_id).sort(PREDICTION_TIME)
    if mine.is_empty():
        n = labels.height
        raise DataError(f"expected subject {subject_id} among the labeled subjects, got none: subject {subject_id} "
                        f"has no label rows for task {spec.name} (the task has {n:,} label row{'s' * (n != 1)} "
                        f"from {labels.get_column(S.SUBJECT_ID).n_unique():,} subjects on {dataset})")
    return TimelineSerializer(dataset, config, count_tokens=count_tokens).serialize(mine)
