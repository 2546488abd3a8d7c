"""Validate and normalize an existing MEDS dataset (``ehrpredict ingest meds IN_DIR OUT_DIR``).

The output has the same layout and guarantees as a MIMIC-IV ingestion: shards per split sorted by
subject and time, ``subject_splits.parquet`` (kept from the input, or assigned with the seed),
``codes.parquet`` with a description for every code (the input's own first), and a data-quality
report. Rows without a subject or code are quarantined; exact duplicate rows are quarantined.
"""

from __future__ import annotations

import json
from pathlib import Path

import meds
import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.dataset import shard_files
from ehrpredict.errors import DataError, SchemaError
from ehrpredict.ingest import engine as E
from ehrpredict.ingest.mimic4 import IngestResult
from ehrpredict.ingest.output import staged_output, validate_dataset, write_json, write_metadata
from ehrpredict.ingest.quality import QualityReport, TableReport
from ehrpredict.ingest.shards import ShardLayout, ShardWriter, assign_splits, finalize_all
from ehrpredict.vocab.codes import build_code_metadata
from ehrpredict.vocab.dictionaries import Dictionaries
from ehrpredict.vocab.kinds import CODE_KINDS_KEY, code_kinds

DEFAULT_SUBJECTS_PER_SHARD = 10_000


def _read_shard(path: Path) -> pl.DataFrame:
    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for non-Parquet files
        raise DataError(f"{path}: expected a Parquet file, got an unreadable file ({exc})") from exc
    try:
        meds.DataSchema.validate(schema)
    except Exception as exc:
        raise SchemaError(f"{path}: expected the MEDS data schema, got: {exc}") from exc
    frame = pl.read_parquet(path)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _normalize(frame: pl.DataFrame) -> pl.DataFrame:
    """Cast to ehrpredict's event schema, keeping provenance columns that exist."""
    return frame.select(
        (pl.col(c) if c in frame.columns else pl.lit(None)).cast(dtype).alias(c)
        for c, dtype in S.EVENT_SCHEMA.items()
    )


def normalize_meds(
    in_dir: str | Path, out_dir: str | Path, *, seed: int = 0, overwrite: bool = False
) -> IngestResult:
    in_dir, out_dir = Path(in_dir).absolute(), Path(out_dir).absolute()
    files = shard_files(in_dir)
    frames = {str(p.relative_to(in_dir)): p for p in files}
    subject_ids: set[int] = set()
    for path in files:
        ids = _read_shard(path).get_column(S.SUBJECT_ID).drop_nulls().unique().to_list()
        subject_ids.update(int(i) for i in ids)
    splits_path = in_dir / S.SPLITS_FILE
    if splits_path.exists():
        splits = pl.read_parquet(splits_path).select(
            pl.col(S.SUBJECT_ID).cast(pl.Int64), pl.col(S.SPLIT).cast(pl.String)
        )
        missing = subject_ids - set(splits.get_column(S.SUBJECT_ID).to_list())
        if missing:
            example = sorted(missing)[:5]
            raise DataError(f"{splits_path}: expected a split for every subject, got none for {example}")
    else:
        splits = assign_splits(sorted(subject_ids), seed)

    report = QualityReport(source=str(in_dir))
    with staged_output(out_dir, overwrite=overwrite) as staging:
        layout = ShardLayout.plan(splits, DEFAULT_SUBJECTS_PER_SHARD)
        writer = ShardWriter(staging / "_intermediate", layout)
        quarantine = E.QuarantineSink(staging / S.QUARANTINE_FILE)
        for name, path in frames.items():
            _stream_shard(name, _read_shard(path), writer, quarantine, report)
        writer.close()
        code_counts = finalize_all(writer, staging, report, lambda: quarantine, dedupe=False)
        quarantine.close()
        # MEDS input has no kept-but-flagged rows; the empty file keeps the output layout uniform.
        E.QuarantineSink(staging / S.FLAGGED_FILE).close()
        report.n_subjects = len(subject_ids)
        report.n_events = int(code_counts.get_column(S.CODE_COUNT).sum())
        codes = _codes(in_dir, code_counts)
        dataset = _dataset_json(in_dir)
        # The kinds the input declares (ehrpredict's own by default), stated in the output for every reader.
        kinds = code_kinds(dataset, source=str(in_dir / S.DATASET_FILE))
        write_metadata(
            staging, dataset_name=str(dataset.get("dataset_name", in_dir.name)),
            dataset_version=str(dataset.get("dataset_version", "unknown")), splits=splits, codes=codes,
            extra={"ehrpredict": {"source": "meds", "seed": seed, "input_dataset": dataset,
                                  CODE_KINDS_KEY: kinds.to_json()}},
        )
        validate_dataset(staging)
        payload = report.to_json()
        write_json(staging / S.QUALITY_REPORT_FILE, payload)
    totals = payload["totals"]
    return IngestResult(
        out_dir=out_dir, n_subjects=report.n_subjects, n_events=report.n_events,
        n_codes=codes.height, n_quarantined=int(totals["rows_quarantined"]), n_flagged=0, skipped=False,
        report=payload,
    )


def _stream_shard(name: str, frame: pl.DataFrame, writer: ShardWriter, quarantine: E.QuarantineSink,
                  report: QualityReport) -> None:
    """Quarantine unusable rows of one input shard and send the rest to the shard writer.

    Rows are accounted per source table when the input carries a ``table`` provenance column (as
    ehrpredict's own output does), else per input file.
    """
    dropped = [c for c in frame.columns if c not in S.EVENT_SCHEMA]
    source = pl.col(S.TABLE).cast(pl.String) if S.TABLE in frame.columns else pl.lit(None, pl.String)
    frame = frame.with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(E.ROW),
        pl.struct(sorted(frame.columns)).hash(seed=0).alias(E.ROW_HASH),
        source.fill_null(f"meds/{name}").alias("_source"),
    )
    reason = (
        pl.when(pl.col(S.SUBJECT_ID).is_null()).then(pl.lit("missing subject_id"))
        .when(pl.col(S.CODE).is_null()).then(pl.lit("missing code"))
        .otherwise(None)
    )
    frame = frame.with_columns(reason.alias(E.REASON))
    for table, n_rows in frame.group_by("_source").agg(pl.len()).sort("_source").iter_rows():
        stats = report.tables.setdefault(table, TableReport(table, name))
        if name not in stats.file.split(", "):
            stats.file = f"{stats.file}, {name}"
        stats.rows_read += n_rows
    bad = frame.filter(pl.col(E.REASON).is_not_null())
    if not bad.is_empty():
        record_cols = [c for c in bad.columns if not c.startswith("_")]
        quarantine.write(bad.select(
            pl.col("_source").alias(S.Q_TABLE), pl.lit(name).alias(S.Q_FILE), pl.col(E.ROW).alias(S.Q_ROW),
            pl.col(E.REASON).alias(S.Q_REASON), pl.lit(None, pl.String).alias(S.Q_FIELD),
            pl.lit(None, pl.String).alias(S.Q_VALUE),
            pl.struct(record_cols).struct.json_encode().alias(S.Q_RECORD),
        ))
        for table, r, n in bad.group_by("_source", E.REASON).len().iter_rows():
            report.tables[table].quarantined[r] += n
    good = frame.filter(pl.col(E.REASON).is_null()).with_columns(pl.col("_source").alias(S.TABLE))
    events = _normalize(good).with_columns(
        good.get_column(E.ROW), good.get_column(E.ROW_HASH), pl.lit(0, pl.Int32).alias(E.ORDER)
    )
    writer.write(events)
    if dropped:
        report.not_mapped[f"columns {', '.join(dropped)} of {name}"] = "extra columns not kept"


def _codes(in_dir: Path, code_counts: pl.DataFrame) -> pl.DataFrame:
    """Descriptions from the input's codes.parquet first, then vocabularies and readable fallbacks."""
    built = build_code_metadata(code_counts, Dictionaries())
    given_path = in_dir / S.CODES_FILE
    if not given_path.exists():
        return built
    given = pl.read_parquet(given_path)
    keep = [c for c in (S.CODE, S.DESCRIPTION, S.PARENT_CODES) if c in given.columns]
    given = given.select(keep).unique(S.CODE, keep="first").rename(
        {c: f"_given_{c}" for c in keep if c != S.CODE}
    )
    merged = built.join(given, on=S.CODE, how="left")
    fill = []
    for column in (S.DESCRIPTION, S.PARENT_CODES):
        if f"_given_{column}" in merged.columns:
            given_col = pl.col(f"_given_{column}")
            usable = given_col.is_not_null() & (
                given_col.list.len() > 0 if column == S.PARENT_CODES else given_col.str.len_chars() > 0
            )
            fill.append(pl.when(usable).then(given_col).otherwise(pl.col(column)).alias(column))
    return merged.with_columns(fill).select(built.columns)


def _dataset_json(in_dir: Path) -> dict[str, object]:
    path = in_dir / S.DATASET_FILE
    if not path.exists():
        return {}
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: expected JSON, got invalid JSON at line {exc.lineno}") from exc
    return payload if isinstance(payload, dict) else {}

