"""Patient timelines serialized to readable text, deterministically, for a text encoder to embed.

Two formats (``FORMATS``):

- ``markdown``: one section per kind of information, newest first, times relative to the prediction
  time ("5 hours before", never a date: MIMIC dates are shifted and meaningless)::

      ## Demographics
      - Age: 67 years
      - Sex: F

      ## Lab results
      - Creatinine (Blood, Chemistry) [mg/dL]: 1.8 (5 hours before, abnormal); 1.1 (2 days before, normal)

  Sections: demographics, vital signs and body metrics, lab results (the most frequent items in the
  train split, their last few values with the dataset's flag), conditions, medications, procedures,
  visits, and excerpts of the most recent notes (``include_notes``).
- ``recent_codes``: the description of each code's most recent occurrence, newest first, one a line.

Which lab and vital items may be shown is learned by ``fit`` on the label rows of the train split
(:mod:`ehrpredict.text.selection`), never from the held-out split; ``serialize`` then writes any rows.
Every code is shown as its description from ``metadata/codes.parquet``, the raw code only where
there is none. Every event goes through :func:`~ehrpredict.events.cutoff.events_at_or_before`, so
nothing after the prediction time reaches the text (nor the fitted selection). A token budget cuts
the oldest lines first (demographics are never cut) and records what it cut
(:mod:`ehrpredict.text.budget`). ``SERIALIZER_VERSION`` changes whenever the text for the same
input changes.

    >>> serializer = TimelineSerializer(SerializerConfig(max_tokens=256))              # doctest: +SKIP
    >>> serializer.fit(train_labels, source="out/meds")                                # doctest: +SKIP
    >>> print(serializer.serialize(labels, source="out/meds")[0].text)                 # doctest: +SKIP

Lab flags: MIMIC-IV records only whether a lab value was flagged (``LAB_FLAG//<itemid>//abnormal``,
kept by ingestion) and no reference ranges, so a value shows the flag it has, ``normal`` when its
item carries flags in the fitted rows' histories but this value was not flagged, and nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import polars as pl

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError, DataError, SchemaError
from ehrpredict.events.cutoff import (
    DEFAULT_CODING_DELAY,
    KNOWN_AT,
    PREDICTION_TIME,
    ROW_INDEX,
    coding_delay_for,
    events_at_or_before,
)
from ehrpredict.events.source import EventSource, ShardRef, as_source
from ehrpredict.executor import Executor, local
from ehrpredict.tasks.spec import parse_duration
from ehrpredict.text.budget import _DROP, _J, _SEC, approx_tokens, drop_by_length, drop_by_tokenizer
from ehrpredict.text.sections import (
    _CID,
    _DESC,
    _FLAG,
    _FLAGGABLE,
    _ITEM,
    _ITEM_ID,
    _KIND,
    _LINE,
    _RANK,
    _TEXT_KINDS,
    BIRTH,
    CONDITION,
    CONDITIONS,
    DEMOGRAPHICS,
    FLAG,
    LAB,
    LABS,
    MEDICATION,
    MEDICATIONS,
    NOTE,
    NOTES,
    OTHER,
    PROCEDURE,
    PROCEDURES,
    RECENT_CODES,
    STATIC,
    VISIT,
    VISITS,
    VITAL,
    VITALS,
    Section,
    code_kind,
    demographics,
    measurements,
    notes,
    occurrences,
    recent_codes,
    render,
    run_position,
    visits,
)
from ehrpredict.text.selection import ItemSelection, count_items, select_items
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS, CodeKinds, code_kinds

# 1.1: the lab and vital items shown (and which labs read "normal") are learned on the fitted rows,
# no longer taken from the whole dataset's code counts in codes.parquet.
SERIALIZER_VERSION = "1.1"
FORMATS = ("markdown", "recent_codes")

__all__ = [
    "FORMATS",
    "SERIALIZER_VERSION",
    "ItemSelection",
    "Section",
    "SerializedTimeline",
    "SerializerConfig",
    "TimelineSerializer",
    "approx_tokens",
    "describe_codes",
    "serialize_subject",
]


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
        return render(sections)

    @property
    def text(self) -> str:
        return render(self.sections)


@dataclass(frozen=True)
class SerializerConfig:
    """How timelines are written. Every knob changes the text, so all of them belong in cache keys.

    ``max_items``: lab and vital items shown per section (the most frequent ones the patient has,
    among the section's ``4 * max_items`` most frequent in the rows the serializer was fitted on: see
    :mod:`ehrpredict.text.selection`); ``values_per_item``: their last values shown; ``max_lines``:
    lines kept per other section before the token budget applies (the newest); ``max_notes`` and
    ``note_chars``: how many of the most recent notes are excerpted and how long an excerpt is;
    ``max_recent_codes``: lines of the ``recent_codes`` format; ``coding_delay``: billing codes
    (conditions and procedures from ICD, DRG, HCPCS) appear only this long after their time, the
    discharge of their stay (see :mod:`ehrpredict.events.cutoff`).
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
    coding_delay: str = DEFAULT_CODING_DELAY

    def __post_init__(self) -> None:
        parse_duration(self.coding_delay, "coding_delay")
        if self.format not in FORMATS:
            raise ConfigError(f"expected format one of {', '.join(FORMATS)}, got {self.format!r}")
        if not isinstance(self.include_notes, bool):
            raise ConfigError(f"expected include_notes true or false, got {self.include_notes!r}")
        for name in ("max_tokens", "values_per_item", "max_items", "max_lines", "max_notes", "note_chars",
                     "max_recent_codes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"expected {name} a whole number >= 1, got {value!r}")


class _Vocabulary:
    """Descriptions of codes (from a source's code dictionary; none for a MEDS dataset without one:
    raw codes are shown), and which prefixes feed which section (the dataset's code kinds)."""

    def __init__(self, codes: pl.DataFrame, kinds: CodeKinds) -> None:
        self.kinds = kinds
        blank = pl.col(S.DESCRIPTION).str.strip_chars() == ""
        self.codes = codes.select(
            S.CODE, pl.when(blank).then(None).otherwise(pl.col(S.DESCRIPTION)).alias(S.DESCRIPTION),
        ).unique(S.CODE, keep="first")

    def extended(self, codes: pl.DataFrame) -> _Vocabulary:
        """These descriptions, plus those of ``codes`` for codes described there and not here."""
        other = _Vocabulary(codes, self.kinds).codes.drop_nulls(S.DESCRIPTION)
        described = self.codes.drop_nulls(S.DESCRIPTION)
        if other.is_empty() or other.join(described, on=S.CODE, how="anti").is_empty():
            return self
        return _Vocabulary(pl.concat([described, other.join(described, on=S.CODE, how="anti")]), self.kinds)

    def describe(self, codes: Iterable[str]) -> dict[str, str]:
        """Each of ``codes`` as the text names it: its description, the code itself where there is none."""
        wanted = pl.DataFrame({S.CODE: list(codes)}, schema={S.CODE: pl.String}).unique()
        named = wanted.join(self.codes, on=S.CODE, how="left").select(S.CODE, pl.coalesce(S.DESCRIPTION, S.CODE))
        return dict(named.iter_rows())

    def table(self, codes: pl.Series, selection: ItemSelection | None) -> pl.DataFrame:
        """One row per distinct code of a shard: integer id (rank of the code), kind, description (or
        the raw code), and for labs and lab flags the item id and flag.

        With a ``selection``, vital and lab items outside it become ``OTHER`` (MIMIC-IV has over a
        thousand chart items, mostly device settings) and the others get their rank in it."""
        table = pl.DataFrame({S.CODE: codes}).unique().sort(S.CODE).with_row_index(_CID)
        table = table.join(self.codes, on=S.CODE, how="left").sort(_CID)
        parts = pl.col(S.CODE).str.split(S.CODE_SEPARATOR)
        table = table.with_columns(
            code_kind(self.kinds).alias(_KIND),
            pl.coalesce(S.DESCRIPTION, S.CODE).alias(_DESC),
            parts.list.get(1, null_on_oob=True).alias(_ITEM),
            parts.list.get(2, null_on_oob=True).fill_null("flagged").alias(_FLAG),
        )
        if selection is None:
            return table
        table = table.join(selection.ranks(), on=S.CODE, how="left").sort(_CID)
        unselected = pl.col(_KIND).is_in([VITAL, LAB]) & pl.col(_RANK).is_null()
        flaggable = (pl.col(_KIND) == LAB) & pl.col(_ITEM).is_in(pl.Series(selection.flagged_labs, dtype=pl.String)
                                                                 .implode())
        return table.with_columns(
            pl.when(unselected).then(pl.lit(OTHER, pl.Int8)).otherwise(pl.col(_KIND)).alias(_KIND),
        ).with_columns(flaggable.alias(_FLAGGABLE), pl.col(_ITEM).rank("dense").cast(pl.Int64).alias(_ITEM_ID))


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

    ``fit`` learns which lab and vital items to show from the rows it is given (the train split's), and
    keeps the code descriptions and billing vocabularies of its source: the fitted serializer holds no
    path, and serializes rows of any :class:`~ehrpredict.events.source.EventSource`. ``count_tokens``
    measures the token budget; default :func:`approx_tokens`. Shards are read one at a time (only the
    label rows' subjects) and every section is aggregated in polars per shard.
    """

    def __init__(self, config: SerializerConfig = SerializerConfig(),
                 count_tokens: Callable[[str], int] | None = None) -> None:
        if not isinstance(config, SerializerConfig):
            raise ConfigError(f"expected a SerializerConfig, got {type(config).__name__}")
        self.config = config
        self.count_tokens = count_tokens or approx_tokens
        self._columns = [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE]

    def fit(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
            executor: Executor | None = None) -> TimelineSerializer:
        """Learn the lab and vital items to show: per section the ``4 * max_items`` with the most values
        in ``labels``' histories (events at or before their prediction times), and which labs carry flags.
        Also kept: the code descriptions of ``source`` and its vocabularies coded after discharge."""
        source = as_source(source)
        self.vocabulary_ = _Vocabulary(source.codes(), code_kinds(source.metadata()))
        self.coding_delay_ = coding_delay_for(source.metadata(), parse_duration(self.config.coding_delay,
                                                                                "coding_delay"))
        rows = _label_rows(labels)
        if rows.is_empty():
            raise DataError("expected label rows to learn which labs and vitals to show (the train split's), got none")
        # The union of a subject's label rows' histories is its history at its latest prediction time:
        # pairing each subject once counts every event once, however many label rows the subject has.
        latest = rows.group_by(S.SUBJECT_ID).agg(pl.col(PREDICTION_TIME).max()).sort(S.SUBJECT_ID).with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW_INDEX))
        valued = (pl.col(_KIND) == FLAG) | pl.any_horizontal(pl.col(S.NUMERIC_VALUE, S.TEXT_VALUE).is_not_null())
        counts = [c for c in (executor or local()).map(partial(self._count_shard, source, latest, valued),
                                                          source.shards()) if c is not None]
        self.selection_ = select_items(counts, rows.height, candidates=4 * self.config.max_items)
        return self

    def _count_shard(self, source: EventSource, rows: pl.DataFrame, valued: pl.Expr,
                     shard: ShardRef) -> pl.DataFrame | None:
        read = self._read(source, rows, shard)
        if read is None:
            return None
        events, shard_rows = read
        table = self.vocabulary_.table(events.get_column(S.CODE), selection=None)
        known = self._known(self._coded(events, table, [VITAL, LAB, FLAG]).filter(valued), shard_rows)
        return count_items(known, table)

    def texts(self, labels: pl.DataFrame, *, source: EventSource | str | Path) -> list[str]:
        return [timeline.text for timeline in self.serialize(labels, source=source)]

    def serialize(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  progress: Callable[[int], None] | None = None,
                  executor: Executor | None = None) -> list[SerializedTimeline]:
        """One timeline per label row, in the labels' order. ``progress`` gets the number done so far.
        Codes are described as in the dictionary the serializer was fitted with, and as in ``source``'s
        own dictionary for codes that one lacks."""
        if not hasattr(self, "selection_"):
            raise ConfigError("expected a fitted TimelineSerializer (call fit with the train split's label rows "
                              "first: it learns which labs and vitals to show), got an unfitted one")
        source = as_source(source)
        vocabulary = self.vocabulary_.extended(source.codes())
        rows = _label_rows(labels)
        done: list[SerializedTimeline | None] = [None] * rows.height
        n_done = 0
        work = partial(self._serialize_from, source, rows, vocabulary)
        for shard, serialized in zip(source.shards(), (executor or local()).map(work, source.shards()), strict=True):
            for row, timeline in serialized:
                if done[row] is not None:
                    raise DataError(f"expected each subject in one shard, got subject {timeline.subject_id} "
                                    f"in several (one is {shard})")
                done[row] = timeline
                n_done += 1
            if progress is not None and serialized:
                progress(n_done)
        missing = rows.filter(pl.Series([t is None for t in done], dtype=pl.Boolean))
        if not missing.is_empty():  # subjects without any event: demographics only ("Age: unknown")
            no_events = pl.DataFrame(schema={c: S.EVENT_SCHEMA[c] for c in self._columns})
            for row, timeline in self._serialize_shard(no_events, missing, vocabulary):
                done[row] = timeline
            if progress is not None:
                progress(rows.height)
        return [t for t in done if t is not None]

    def _read(self, source: EventSource, rows: pl.DataFrame, shard: ShardRef
              ) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """The events of ``rows``' subjects in ``shard`` and their label rows (None: no such subject)."""
        events = source.read(shard, self._columns, rows.get_column(S.SUBJECT_ID).unique())
        if events.is_empty():
            return None
        events = self.coding_delay_.apply(events)  # before codes become ids: it reads the code
        return events, rows.join(events.select(S.SUBJECT_ID).unique(), on=S.SUBJECT_ID, how="semi")

    def _serialize_from(self, source: EventSource, rows: pl.DataFrame, vocabulary: _Vocabulary,
                        shard: ShardRef) -> list[tuple[int, SerializedTimeline]]:
        read = self._read(source, rows, shard)
        return [] if read is None else self._serialize_shard(*read, vocabulary)

    @staticmethod
    def _coded(events: pl.DataFrame, table: pl.DataFrame, kinds: list[int] | None) -> pl.DataFrame:
        """``events`` of ``kinds`` (None: all) with integer code ids and kinds; text values only where shown."""
        events = events.join(table.select(S.CODE, _CID, _KIND), on=S.CODE, how="left").with_columns(
            pl.when(pl.col(S.TIME).is_null()).then(pl.lit(STATIC, pl.Int8)).otherwise(pl.col(_KIND)).alias(_KIND))
        if kinds is not None:
            events = events.filter(pl.col(_KIND).is_in(kinds))
        text = pl.when(pl.col(_KIND).is_in(_TEXT_KINDS)).then(pl.col(S.TEXT_VALUE))
        known_at = [KNOWN_AT] if KNOWN_AT in events.columns else []
        return events.select(S.SUBJECT_ID, S.TIME, _CID, _KIND, pl.col(S.NUMERIC_VALUE).cast(pl.Float32),
                             text.cast(pl.String).alias(S.TEXT_VALUE), *known_at)

    @staticmethod
    def _known(events: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
        """The events each label row may use. The serializer's one call of the cutoff: ``fit`` and
        ``serialize`` both go through here."""
        return events_at_or_before(events, rows)

    def _serialize_shard(self, events: pl.DataFrame, rows: pl.DataFrame, vocabulary: _Vocabulary
                         ) -> list[tuple[int, SerializedTimeline]]:
        table = vocabulary.table(events.get_column(S.CODE), self.selection_)
        known = self._known(self._coded(events, table, self._wanted_kinds()), rows)
        return self._assemble(known, rows, table)

    def _wanted_kinds(self) -> list[int] | None:
        if self.config.format == "recent_codes":
            return None
        kinds = [STATIC, BIRTH, VITAL, LAB, FLAG, CONDITION, MEDICATION, PROCEDURE, VISIT]
        return [*kinds, NOTE] if self.config.include_notes else kinds

    def _sections(self, known: pl.LazyFrame, table: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
        config = self.config
        if config.format == "recent_codes":
            return {RECENT_CODES: recent_codes(known, table, config.max_recent_codes)}
        sections = {
            VITALS: measurements(known, VITAL, table, config.max_items, config.values_per_item),
            LABS: measurements(known, LAB, table, config.max_items, config.values_per_item),
            CONDITIONS: occurrences(known, CONDITION, table, config.max_lines, detail=False),
            MEDICATIONS: occurrences(known, MEDICATION, table, config.max_lines, detail=True),
            PROCEDURES: occurrences(known, PROCEDURE, table, config.max_lines, detail=False),
            VISITS: visits(known, table, config.max_lines),
        }
        if config.include_notes:
            sections[NOTES] = notes(known, table, config.max_notes, config.note_chars)
        return sections

    def _assemble(self, known: pl.DataFrame, rows: pl.DataFrame, table: pl.DataFrame
                  ) -> list[tuple[int, SerializedTimeline]]:
        bullet = "- " if self.config.format == "markdown" else ""
        # One lazy graph for every section, so polars runs independent sections in parallel.
        known_lf, table_lf = known.lazy(), table.lazy()
        demographics_lf = demographics(known_lf, rows.lazy(), table_lf, bullet)
        frames = self._sections(known_lf, table_lf)
        titles = list(frames)
        lines_lf = pl.concat([frame.with_columns(pl.lit(i, pl.Int32).alias(_SEC), run_position(ROW_INDEX).alias(_J))
                              for i, frame in enumerate(frames.values())])
        if self.count_tokens is approx_tokens:
            lines_lf = drop_by_length(lines_lf, demographics_lf, titles, 4 * self.config.max_tokens)
        demographic_lines, lines = pl.collect_all([demographics_lf, lines_lf])
        if self.count_tokens is not approx_tokens:
            lines = drop_by_tokenizer(lines, demographic_lines, titles, self.count_tokens, self.config.max_tokens)
        lines = lines.sort(ROW_INDEX, _SEC, _J)
        kept = lines.filter(~pl.col(_DROP)).group_by(ROW_INDEX, _SEC, maintain_order=True).agg(_LINE)
        cut = lines.filter(pl.col(_DROP)).group_by(ROW_INDEX, _SEC, maintain_order=True).len()
        demo_by_row = dict(demographic_lines.group_by(ROW_INDEX, maintain_order=True).agg(_LINE).iter_rows())
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


def describe_codes(codes: Iterable[str], dictionary: pl.DataFrame,
                   fitted: TimelineSerializer | None = None) -> dict[str, str]:
    """Code → the words a timeline's text uses for it: the description in ``fitted``'s dictionary (when a
    fitted serializer is given), else in ``dictionary`` (a source's ``code, description`` table), else
    the code itself.

    >>> dictionary = pl.DataFrame({"code": ["LAB//50912//mg/dL", "X"], "description": ["Creatinine [mg/dL]", " "]})
    >>> describe_codes(["LAB//50912//mg/dL", "X", "Y"], dictionary) == {
    ...     "LAB//50912//mg/dL": "Creatinine [mg/dL]", "X": "X", "Y": "Y"}
    True
    """
    if fitted is not None and hasattr(fitted, "vocabulary_"):
        return fitted.vocabulary_.extended(dictionary).describe(codes)
    return _Vocabulary(dictionary, DEFAULT_CODE_KINDS).describe(codes)


def serialize_subject(dataset: str | Path, task: str | Path, subject_id: int,
                      config: SerializerConfig = SerializerConfig(),
                      count_tokens: Callable[[str], int] | None = None) -> list[SerializedTimeline]:
    """The timelines of one subject's label rows of ``task`` (a built-in name or a YAML file), by
    prediction time: what a text model reads for them (``ehrpredict serialize``). The serializer is
    fitted on the task's train-split label rows, as the text representation is."""
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
    train = _train_rows(Path(dataset), labels, spec.name)
    serializer = TimelineSerializer(config, count_tokens=count_tokens).fit(train, source=dataset)
    return serializer.serialize(mine, source=dataset)


def _train_rows(dataset: Path, labels: pl.DataFrame, task: str) -> pl.DataFrame:
    path = dataset / S.SPLITS_FILE
    if not path.exists():
        raise DataError(f"expected {path} (subject splits): the text shows the labs and vitals most frequent in "
                        "the train split, got no such file")
    splits = pl.read_parquet(path, columns=[S.SUBJECT_ID, S.SPLIT])
    train = labels.join(splits.filter(pl.col(S.SPLIT) == S.TRAIN), on=S.SUBJECT_ID, how="semi")
    if train.is_empty():
        raise DataError(f"expected label rows of task {task} in the train split to learn which labs and vitals to "
                        f"show, got none (of {labels.height:,} label rows)")
    return train
