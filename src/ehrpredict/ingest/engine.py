"""The streaming engine: apply a :class:`TableSpec` to batches of raw rows.

Each batch yields events for rows that pass every check and quarantine records (with the reason, the
offending field and the whole raw row) for rows that do not, so every row read is accounted for.
Kept rows with a recorded problem (a flag) also give flag records, in the same layout.
Memory is bounded by the batch size: files are read as a stream of blocks, never whole.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import IO, Any, TypeVar

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.errors import DataError, SchemaError
from ehrpredict.ingest.spec import Check, TableSpec, raw_text

ROW = "_row"  # 1-based data row number in the source file
ROW_HASH = "_row_hash"  # hash of the whole raw row, to find exact duplicate rows later
ORDER = "_order"  # table position * 64 + event position: with ROW, a deterministic tie-break
REASON = "_reason"
FIELD = "_field"
FLAG = "_flag_"  # _flag_<i>: flag i of the batch holds for the row
# Columns of the subject lookup every non-patient table is checked against.
SHARD = "_shard"  # output shard of the subject, carried by the subject lookup
BIRTH_FLOOR = "_birth_floor"
DEATH_LIMIT = "_death_limit"
KNOWN = "_known_subject"

T = TypeVar("T")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S")
END_OF_DAY = pl.duration(hours=23, minutes=59, seconds=59)


def read_header(path: Path) -> list[str]:
    """The column names of a CSV or gzipped CSV, with a clear error for unreadable files."""
    try:
        with _open_text(path) as f:
            line = f.readline()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: expected a readable CSV file, got an error: {exc}") from exc
    if not line.strip():
        raise SchemaError(f"{path}: expected a header row, got an empty file")
    return next(csv.reader([line]))


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


@dataclass
class RawBatch:
    """Raw rows (all strings) with their source row numbers, plus rows the CSV parser rejected."""

    frame: pl.DataFrame
    malformed: list[tuple[int | None, str]]
    bytes_read: int


def iter_raw_batches(path: Path, block_size: int = 8 << 20) -> Iterator[RawBatch]:
    """Stream a CSV(.gz) as string-typed batches of all its columns. Malformed lines are
    collected, not dropped. Decompression and parsing run one batch ahead in a background thread
    (pyarrow releases the GIL), overlapping with the caller's processing of the previous batch."""
    header = read_header(path)
    malformed: list[tuple[int | None, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        # pyarrow numbers rows from 1 with the header as row 1; ours are data rows from 1.
        malformed.append((None if row.number is None else row.number - 1, row.text))
        return "skip"

    raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below; the generator owns it
    stream = pa.input_stream(raw, compression="gzip" if path.suffix == ".gz" else None)
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=True,
        null_values=[""],  # MIMIC has real values like "NA"; only empty fields are missing
        quoted_strings_can_be_null=True,
    )
    # Quoted fields may hold newlines (notes, comments): slower parsing, but never a split row.
    parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid)

    def produce() -> Iterator[tuple[pa.RecordBatch, list[tuple[int | None, str]], int]]:
        # Single-threaded parsing is as fast here (decompression dominates) and is what lets
        # pyarrow report the row number of a malformed row.
        reader = pacsv.open_csv(
            stream, read_options=pacsv.ReadOptions(block_size=block_size, use_threads=False),
            parse_options=parse, convert_options=convert,
        )
        for record_batch in reader:
            yield record_batch, malformed.copy(), raw.tell()
            malformed.clear()

    offset = 0
    try:
        for record_batch, bad_rows, position in _prefetch(produce()):
            frame = pl.DataFrame(pl.from_arrow(record_batch))
            frame = frame.with_columns(_row_numbers(offset, frame.height, bad_rows).alias(ROW))
            offset += frame.height + len(bad_rows)
            yield RawBatch(frame, bad_rows, position)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise DataError(f"{path}: expected a well-formed CSV file, got: {exc}") from exc
    finally:
        stream.close()
        raw.close()
    if malformed:
        yield RawBatch(pl.DataFrame(), malformed.copy(), 0)


def _row_numbers(offset: int, n_valid: int, malformed: list[tuple[int | None, str]]) -> pl.Series:
    """Source row numbers of a batch's valid rows: the batch covers rows offset+1.. and the
    malformed rows pyarrow skipped inside it keep their own numbers."""
    if not malformed:
        return pl.int_range(offset + 1, offset + n_valid + 1, dtype=pl.Int64, eager=True)
    skipped = {n for n, _ in malformed if n is not None}
    numbers = [n for n in range(offset + 1, offset + n_valid + len(malformed) + 1) if n not in skipped]
    return pl.Series(numbers[:n_valid], dtype=pl.Int64)


def _prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead; re-raise its errors here."""
    queue: Queue[tuple[str, object]] = Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(("item", item))
            queue.put(("done", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(("error", exc))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "done":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            thread.join(timeout=0.05)


def require_columns(path: Path, header: list[str], spec: TableSpec) -> None:
    missing = [c for c in spec.required_columns if c not in header]
    if missing:
        raise SchemaError(
            f"{path}: expected columns {', '.join(missing)} for table {spec.name}, "
            f"got header [{', '.join(header)}]"
        )


def parse_time_expr(raw: pl.Expr, formats: tuple[str, ...] = TIME_FORMATS) -> pl.Expr:
    """Parse MIMIC timestamps; unparseable text becomes null (and is caught by a check)."""
    return pl.coalesce([raw.str.strptime(pl.Datetime("us"), fmt, strict=False) for fmt in formats])


def _time_formats(raw: pl.DataFrame, column: str) -> tuple[str, ...]:
    """Only the main format when it parses every value of this batch; the fallbacks cost a full
    pass each, so they run only for batches that need them."""
    main = raw.select(
        (pl.col(column).is_not_null()
         & pl.col(column).str.strptime(pl.Datetime("us"), TIME_FORMATS[0], strict=False).is_null()).any()
    ).item()
    return TIME_FORMATS if main else TIME_FORMATS[:1]


def _parse_date(raw: pl.Expr) -> pl.Expr:
    day = raw.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    # Accept "2180-08-06" and "2180-08-06 00:00:00" (MIMIC writes date columns both ways).
    ok = (raw.str.len_chars() == 10) | raw.str.ends_with(" 00:00:00")
    return pl.when(ok).then(day.cast(pl.Datetime("us")) + END_OF_DAY).otherwise(None)


UNPARSEABLE_NUMBER = "unparseable number in an optional field (row kept without it)"


@dataclass(frozen=True)
class Parsed:
    """A batch after parsing and checking: every row with its quarantine reason (null if valid), one
    boolean column ``_flag_<i>`` per entry of ``flags`` and the parse failures counted per field."""

    frame: pl.DataFrame
    flags: tuple[Check, ...] = ()
    unparseable: dict[str, int] = field(default_factory=dict)


def parse_batch(
    spec: TableSpec, raw: pl.DataFrame, subjects: pl.DataFrame | None
) -> Parsed:
    """Parse typed fields, run ``prepare``, join the subject lookup and evaluate every check and flag.

    ``subjects`` is None only for the table that defines subjects (patients).
    """
    # A duplicate row equals an earlier row in every field, so the hash covers all raw columns;
    # after it, only the columns the spec uses are kept.
    row_hash = pl.struct([c for c in raw.columns if c != ROW]).hash(seed=0).alias(ROW_HASH)
    keep = [*spec.columns(raw.columns), ROW]
    frame = raw.select(*keep, row_hash)
    frame = frame.with_columns([pl.lit(None, pl.String).alias(c) for c in spec.missing_optional(raw.columns)])
    # The text of optional numbers stays available under raw_text(name), e.g. for a pain score "unable".
    frame = frame.with_columns([pl.col(c).alias(raw_text(c)) for c in spec.numerics])

    ints = [S.SUBJECT_ID, *spec.integers]
    ints += [c for c in (spec.hadm_column, spec.stay_column) if c and c not in ints]
    conversions: list[tuple[str, pl.Expr]] = [
        *((c, pl.col(c).cast(pl.Int64, strict=False)) for c in ints),
        *((c, parse_time_expr(pl.col(c), _time_formats(frame, c))) for c in spec.datetimes),
        *((c, _parse_date(pl.col(c))) for c in spec.dates),
        *((c, pl.col(c).cast(pl.Float64, strict=False)) for c in spec.numerics),
    ]
    checks: list[Check] = [
        Check("missing subject_id", pl.col(S.SUBJECT_ID).is_null() & ~pl.col(f"_bad_{S.SUBJECT_ID}"), S.SUBJECT_ID)
    ]
    flags: list[Check] = []
    bad_flags = []
    for name, parsed in conversions:
        flag = f"_bad_{name}"
        bad_flags.append((pl.col(name).is_not_null() & parsed.is_null()).alias(flag))
        if name in spec.numerics and name not in spec.required_numerics:
            # An optional number that does not parse leaves the row usable (a lab's text value, an
            # infusion's start), so the row is kept, without the number, and flagged.
            flags.append(Check(UNPARSEABLE_NUMBER, pl.col(flag), name, unparseable=True))
            continue
        reason = "unparseable time" if name in spec.datetimes or name in spec.dates else (
            "non-numeric value where one is required" if name in spec.numerics
            else "unparseable integer"
        )
        checks.append(Check(reason, pl.col(flag), name, unparseable=True))
    frame = frame.with_columns(bad_flags).with_columns([e.alias(n) for n, e in conversions])
    for name in spec.required_numerics:
        checks.append(
            Check("missing required numeric value", pl.col(name).is_null() & ~pl.col(f"_bad_{name}"), name)
        )

    if spec.prepare is not None:
        frame = spec.prepare(frame)
    if subjects is not None:
        frame = frame.join(subjects, on=S.SUBJECT_ID, how="left", maintain_order="left")
        checks.append(Check("unknown subject (not in patients)", pl.col(KNOWN).is_null(), S.SUBJECT_ID))
    checks.extend(spec.checks)
    for event in spec.events:
        if event.required and event.time is not None:
            checks.append(Check(f"missing time for {event.label}", event.time.is_null(), None))
    if subjects is not None:
        # Plausibility is judged on when the row happened (its earliest own timestamp: a culture
        # drawn before death whose result was stored days later is valid), or on its event times
        # when it has no timestamp of its own (diagnoses are timed at discharge).
        own = [pl.col(c) for c in (*spec.datetimes, *spec.dates)]
        times = own or [e.time for e in spec.events if e.time is not None]
        when = pl.min_horizontal(times)
        checks.append(Check("event before birth", (when < pl.col(BIRTH_FLOOR)).fill_null(False), None))
        checks.append(Check("event long after death", (when > pl.col(DEATH_LIMIT)).fill_null(False), None))
    flags.extend(spec.flags)
    flags.extend(Check(ref.reason, pl.col(ref.column).is_in(ref.ids), ref.column) for ref in spec.dropped_references)
    frame = frame.with_columns(
        *_first_failure(checks),
        *(check.failed.fill_null(False).alias(f"{FLAG}{i}") for i, check in enumerate(flags)),
    )
    # Cleared only now: the checks and flags above saw the reference.
    frame = frame.with_columns(
        pl.when(pl.col(ref.column).is_in(ref.ids)).then(None).otherwise(pl.col(ref.column)).alias(ref.column)
        for ref in spec.dropped_references
    )
    return Parsed(frame, tuple(flags), _count_unparseable(frame, [*checks, *flags]))


def _count_unparseable(frame: pl.DataFrame, rules: list[Check]) -> dict[str, int]:
    """Per field, the rows whose value is present but does not parse, whatever else is wrong with them."""
    by_field = [(r.field, r.failed) for r in rules if r.unparseable and r.field is not None]
    if not by_field:
        return {}
    counts = frame.select(
        [failed.fill_null(False).sum().alias(str(i)) for i, (_, failed) in enumerate(by_field)]
    ).row(0)
    out: dict[str, int] = {}
    for (name, _), n in zip(by_field, counts, strict=True):
        if n:
            out[str(name)] = out.get(str(name), 0) + int(n)
    return out


def _first_failure(checks: list[Check]) -> list[pl.Expr]:
    reason: pl.Expr = pl.lit(None, pl.String)
    field: pl.Expr = pl.lit(None, pl.String)
    for check in reversed(checks):  # build the chain so the first listed check wins
        failed = check.failed.fill_null(False)
        reason = pl.when(failed).then(pl.lit(check.reason)).otherwise(reason)
        field = pl.when(failed).then(pl.lit(check.field, pl.String)).otherwise(field)
    return [reason.alias(REASON), field.alias(FIELD)]


def events_of(spec: TableSpec, valid: pl.DataFrame, table_order: int = 0) -> pl.DataFrame:
    """The events of rows that passed every check, with row number and hash kept for dedup and an
    order key (``table_order``, event position) that makes the final sort deterministic."""
    hadm = pl.col(spec.hadm_column) if spec.hadm_column else pl.lit(None, pl.Int64)
    stay = pl.col(spec.stay_column) if spec.stay_column else pl.lit(None, pl.Int64)
    parts = []
    for position, event in enumerate(spec.events):
        keep = pl.lit(True) if event.when is None else event.when.fill_null(False)
        if event.time is not None:
            keep = keep & event.time.is_not_null()
        part = valid.select(
            pl.col(S.SUBJECT_ID),
            (event.time if event.time is not None else pl.lit(None)).cast(pl.Datetime("us")).alias(S.TIME),
            event.code.alias(S.CODE),
            (event.numeric if event.numeric is not None else pl.lit(None)).cast(pl.Float32).alias(S.NUMERIC_VALUE),
            (event.text if event.text is not None else pl.lit(None)).cast(pl.String).alias(S.TEXT_VALUE),
            hadm.cast(pl.Int64).alias(S.HADM_ID),
            stay.cast(pl.Int64).alias(S.STAY_ID),
            pl.lit(spec.name).alias(S.TABLE),
            pl.col(ROW),
            pl.col(ROW_HASH),
            pl.lit(table_order * 64 + position, pl.Int32).alias(ORDER),
            *([pl.col(SHARD)] if SHARD in valid.columns else []),
            keep.alias("_keep"),
        )
        parts.append(part.filter(pl.col("_keep")).drop("_keep"))
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame()


def quarantine_of(
    spec: TableSpec, file: str, raw: pl.DataFrame, parsed: Parsed
) -> pl.DataFrame:
    """Quarantine records for rows with a reason: the raw value of the failing field and the row."""
    bad = parsed.frame.filter(pl.col(REASON).is_not_null()).select(ROW, REASON, FIELD)
    return _records(spec, file, raw, bad)


def flags_of(spec: TableSpec, file: str, raw: pl.DataFrame, parsed: Parsed) -> pl.DataFrame:
    """Flag records of the kept rows: one per flag that holds (a row may have several), by row."""
    if not parsed.flags:
        return pl.DataFrame(schema=S.QUARANTINE_SCHEMA)
    names = [f"{FLAG}{i}" for i in range(len(parsed.flags))]
    # One pass over the batch; the per-flag passes below see only the (usually few) flagged rows.
    kept = parsed.frame.filter(pl.col(REASON).is_null() & pl.any_horizontal(names))
    parts = [
        kept.filter(pl.col(f"{FLAG}{i}")).select(
            ROW, pl.lit(check.reason).alias(REASON), pl.lit(check.field, pl.String).alias(FIELD)
        )
        for i, check in enumerate(parsed.flags)
    ]
    return _records(spec, file, raw, pl.concat(parts).sort(ROW, maintain_order=True))


def _records(spec: TableSpec, file: str, raw: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame:
    """Records (table, file, row, reason, field, raw value of the field, whole raw row as JSON)."""
    if rows.is_empty():
        return pl.DataFrame(schema=S.QUARANTINE_SCHEMA)
    columns = [c for c in raw.columns if c != ROW]
    rows = rows.join(raw, on=ROW, how="left", maintain_order="left")
    choices: list[pl.Expr] = [pl.when(pl.col(FIELD) == c).then(pl.col(c)) for c in columns]
    value = pl.coalesce(choices or [pl.lit(None, pl.String)])
    return rows.select(
        pl.lit(spec.name).alias(S.Q_TABLE),
        pl.lit(file).alias(S.Q_FILE),
        pl.col(ROW).alias(S.Q_ROW),
        pl.col(REASON).alias(S.Q_REASON),
        pl.col(FIELD).alias(S.Q_FIELD),
        value.cast(pl.String).alias(S.Q_VALUE),
        pl.struct(columns).struct.json_encode().alias(S.Q_RECORD),
    )


def malformed_records(spec: TableSpec, file: str, rows: list[tuple[int | None, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            S.Q_TABLE: [spec.name] * len(rows),
            S.Q_FILE: [file] * len(rows),
            S.Q_ROW: [n for n, _ in rows],
            S.Q_REASON: ["malformed CSV row (wrong number of fields)"] * len(rows),
            S.Q_FIELD: [None] * len(rows),
            S.Q_VALUE: [None] * len(rows),
            S.Q_RECORD: [text for _, text in rows],
        },
        schema=S.QUARANTINE_SCHEMA,
    )


def duplicate_records(duplicates: pl.DataFrame, tables: dict[str, Any]) -> pl.DataFrame:
    """Quarantine records for exact duplicate rows found when a shard is finalized."""
    return duplicates.select(
        pl.col(S.TABLE).alias(S.Q_TABLE),
        pl.col(S.TABLE).replace_strict({k: t.file for k, t in tables.items()}, return_dtype=pl.String)
        .alias(S.Q_FILE),
        pl.col(ROW).alias(S.Q_ROW),
        pl.lit("duplicate row").alias(S.Q_REASON),
        pl.lit(None, pl.String).alias(S.Q_FIELD),
        pl.format("same fields as row {}", pl.col("kept_row")).alias(S.Q_VALUE),
        pl.lit(None, pl.String).alias(S.Q_RECORD),
    )


class QuarantineSink:
    """Appends quarantine (or flag) records to one Parquet file, creating it even when there are none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._schema = pl.DataFrame(schema=S.QUARANTINE_SCHEMA).to_arrow().schema
        self._writer = pq.ParquetWriter(path, self._schema, compression="zstd")

    def write(self, records: pl.DataFrame) -> None:
        if not records.is_empty():
            self._writer.write_table(records.select(list(S.QUARANTINE_SCHEMA)).to_arrow().cast(self._schema))

    def close(self) -> None:
        self._writer.close()


def concat_parquet(parts: list[Path], out: Path, schema: pa.Schema) -> None:
    """Concatenate Parquet files in the given order, one row group at a time (bounded memory)."""
    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for part in parts:
            source = pq.ParquetFile(part)
            for i in range(source.num_row_groups):
                writer.write_table(source.read_row_group(i).cast(schema))
