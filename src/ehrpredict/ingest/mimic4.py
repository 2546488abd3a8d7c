"""MIMIC-IV (2.2 / 3.1, with ed and note modules when present) → MEDS 0.4.

    >>> from ehrpredict.ingest.mimic4 import ingest_mimic4, IngestConfig
    >>> result = ingest_mimic4("mimic-iv-2.2", "out/mimic_meds", IngestConfig(seed=0))  # doctest: +SKIP

Columns are read from each file's header, so version differences (a column renamed or added between
2.2 and 3.1) are detected rather than assumed: required columns must exist, optional ones are used
when present.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.executor import Executor
from ehrpredict.ingest import engine as E
from ehrpredict.ingest.mimic4_common import TimeIndex
from ehrpredict.ingest.mimic4_layout import check_headers, discover, version_hint
from ehrpredict.ingest.mimic4_tables import (
    UNMAPPED_TABLES,
    Lookups,
    pharmacy_entry_times,
    table_specs,
)
from ehrpredict.ingest.output import (
    COMPLETE_MARKER,
    read_marker,
    staged_output,
    validate_dataset,
    write_json,
    write_metadata,
)
from ehrpredict.ingest.quality import QualityReport, TableReport
from ehrpredict.ingest.shards import ShardLayout, ShardWriter, assign_splits, finalize_all
from ehrpredict.ingest.spec import TableSpec
from ehrpredict.vocab.codes import build_code_metadata
from ehrpredict.vocab.dictionaries import Dictionaries, load_mimic_dictionaries, warm_package_vocabularies
from ehrpredict.vocab.kinds import CODE_KINDS_KEY, DEFAULT_CODE_KINDS

# Rough source rows per compressed byte, used only to size shards so memory stays flat.
ROWS_PER_GZ_BYTE = 1 / 8
ROWS_PER_CSV_BYTE = 1 / 100
DUPLICATES_PART = "999-duplicates"  # quarantine part of the exact duplicate rows, found last
STREAM_WORKERS = 1  # tables streamed at once: 2 was no faster on 2 cores (Polars and Arrow already use
# both) and raised the peak by ~0.4 GB on the x100 copy


_EMPTY_LOOKUPS = Lookups.empty()


@dataclass(frozen=True)
class IngestConfig:
    """Settings of one ingestion. Same input + same config → byte-identical output."""

    seed: int = 0
    death_grace_days: float = 2.0  # events later than this after death are quarantined
    target_events_per_shard: int = 1_000_000  # bounds the memory of finalizing one shard
    subjects_per_shard: int | None = None  # overrides the estimate from input size
    block_size: int = 8 << 20  # bytes of CSV per streamed batch (larger: more memory, no faster)

    def __post_init__(self) -> None:
        if self.death_grace_days < 0:
            raise ConfigError(f"expected death_grace_days >= 0, got {self.death_grace_days}")
        if self.target_events_per_shard < 1:
            raise ConfigError(f"expected target_events_per_shard >= 1, got {self.target_events_per_shard}")
        if self.subjects_per_shard is not None and self.subjects_per_shard < 1:
            raise ConfigError(f"expected subjects_per_shard >= 1, got {self.subjects_per_shard}")
        if self.block_size < 1 << 16:
            raise ConfigError(f"expected block_size >= 65536 bytes, got {self.block_size}")


@dataclass(frozen=True)
class IngestResult:
    out_dir: Path
    n_subjects: int
    n_events: int
    n_codes: int
    n_quarantined: int
    n_flagged: int
    skipped: bool  # True when OUT_DIR already held this exact result
    report: dict[str, object]


Progress = Callable[[str, int, int], None]  # (table, bytes done, bytes total)


def _code_hash() -> str:
    """Hash of the ingestion and vocabulary code, so a changed mapping never reuses an old output."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted([*package.glob("ingest/*.py"), *package.glob("vocab/*.py"), package / "schema.py"]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _fingerprint(tables: dict[str, Path], config: IngestConfig) -> str:
    payload = {
        "etl_version": __version__,
        "code": _code_hash(),
        "config": asdict(config),
        "files": {k: [p.name, p.stat().st_size] for k, p in sorted(tables.items())},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read_whole(path: Path, config: IngestConfig) -> tuple[pl.DataFrame, list[tuple[int | None, str]]]:
    """Small lookup tables (patients, admissions, edstays) are read fully: they are joined against."""
    frames, malformed = [], []
    for batch in E.iter_raw_batches(path, config.block_size):
        if batch.frame.width:
            frames.append(batch.frame)
        malformed.extend(batch.malformed)
    return (pl.concat(frames, how="vertical") if frames else pl.DataFrame()), malformed


class _Run:
    """State of one ingestion: lookups, writers and the report being filled."""

    def __init__(self, raw_dir: Path, staging: Path, tables: dict[str, Path], config: IngestConfig,
                 progress: Progress | None) -> None:
        self.raw_dir = raw_dir
        self.staging = staging
        self.tables = tables
        self.config = config
        self.progress = progress
        self.report = QualityReport(source=str(raw_dir))
        self.order = {spec.name: i for i, spec in enumerate(table_specs(_EMPTY_LOOKUPS))}
        for name in self.order:  # fixed key order in the report, whatever order threads finish in
            if name in tables:
                self.report.tables[name] = TableReport(name, self.relative(tables[name]))
        # One quarantine and one flag part per table, merged in table order at the end (threads interleave).
        self.parts_dir = staging / "_records"
        for kind in (S.QUARANTINE_FILE, S.FLAGGED_FILE):
            (self.parts_dir / kind).mkdir(parents=True)
        self._sinks: dict[tuple[str, str], E.QuarantineSink] = {}
        self._bytes_done: dict[str, int] = {}
        self._bytes_total = sum(tables[n].stat().st_size for n in self.order if n in tables)
        self._lock = threading.Lock()

    def sink(self, part: str, kind: str = S.QUARANTINE_FILE) -> E.QuarantineSink:
        with self._lock:
            if (kind, part) not in self._sinks:
                self._sinks[kind, part] = E.QuarantineSink(self.parts_dir / kind / f"{part}.parquet")
            return self._sinks[kind, part]

    def merge_records(self) -> None:
        """quarantine.parquet and flagged.parquet, each created even when empty."""
        for sink in self._sinks.values():
            sink.close()
        self._unflag_duplicates()
        schema = pl.DataFrame(schema=S.QUARANTINE_SCHEMA).to_arrow().schema
        for kind in (S.QUARANTINE_FILE, S.FLAGGED_FILE):
            E.concat_parquet(sorted((self.parts_dir / kind).glob("*.parquet")), self.staging / kind, schema)
        shutil.rmtree(self.parts_dir)

    def _unflag_duplicates(self) -> None:
        """Exact duplicate rows are found only when shards are finalized, after their flags were
        written: a flagged row quarantined as a duplicate loses its flags, so flagged rows stay
        among the rows used."""
        duplicates_part = self.parts_dir / S.QUARANTINE_FILE / f"{DUPLICATES_PART}.parquet"
        if not duplicates_part.exists():
            return
        keys = [S.Q_TABLE, S.Q_ROW]
        duplicates = pl.read_parquet(duplicates_part, columns=keys)
        for part in sorted((self.parts_dir / S.FLAGGED_FILE).glob("*.parquet")):
            flags = pl.read_parquet(part)
            dropped = flags.join(duplicates, on=keys, how="semi")
            if dropped.is_empty():
                continue
            for table, reason, n in dropped.group_by(S.Q_TABLE, S.Q_REASON).len().iter_rows():
                stats = self.report.tables[table]
                stats.flagged[reason] -= n
                stats.flagged = +stats.flagged  # a reason whose count reached zero is not listed
            for table, n in dropped.group_by(S.Q_TABLE).agg(pl.col(S.Q_ROW).n_unique()).iter_rows():
                self.report.tables[table].rows_flagged -= n
            flags.join(duplicates, on=keys, how="anti").write_parquet(part, compression="zstd")

    def advance(self, table: str, done: int) -> None:
        with self._lock:
            self._bytes_done[table] = done
            if self.progress:
                self.progress("reading tables", sum(self._bytes_done.values()), self._bytes_total)

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.raw_dir))

    def process(self, spec: TableSpec, raw: pl.DataFrame, malformed: list[tuple[int | None, str]],
                subjects: pl.DataFrame | None, writer: ShardWriter | None) -> pl.DataFrame:
        """Check and convert one batch; returns the valid parsed rows (for building lookups)."""
        table = self.report.tables[spec.name]
        part = f"{self.order[spec.name]:03d}"
        sink = self.sink(part)
        table.rows_read += raw.height + len(malformed)
        if malformed:
            table.quarantined["malformed CSV row (wrong number of fields)"] += len(malformed)
            sink.write(E.malformed_records(spec, table.file, malformed))
        if raw.height == 0:
            return pl.DataFrame()
        parsed = E.parse_batch(spec, raw, subjects)
        table.unparseable.update(parsed.unparseable)
        bad = E.quarantine_of(spec, table.file, raw, parsed)
        for reason, n in bad.get_column(S.Q_REASON).value_counts().iter_rows():
            table.quarantined[reason] += n
        sink.write(bad.sort(S.Q_ROW))
        flagged = E.flags_of(spec, table.file, raw, parsed)
        for reason, n in flagged.get_column(S.Q_REASON).value_counts().iter_rows():
            table.flagged[reason] += n
        table.rows_flagged += flagged.get_column(S.Q_ROW).n_unique()
        self.sink(part, S.FLAGGED_FILE).write(flagged)
        valid = parsed.frame.filter(pl.col(E.REASON).is_null())
        if writer is not None:
            writer.write(E.events_of(spec, valid, self.order[spec.name]))
        return valid

    def stream(self, spec: TableSpec, subjects: pl.DataFrame, writer: ShardWriter,
               keep: Callable[[pl.DataFrame], pl.DataFrame] | None = None) -> pl.DataFrame | None:
        """Stream one table in batches; with ``keep``, also return ``keep(valid rows)`` of every batch,
        concatenated (a lookup built in the same pass, so the table is read once)."""
        path = self.tables[spec.name]
        kept = []
        for batch in E.iter_raw_batches(path, self.config.block_size):
            valid = self.process(spec, batch.frame, batch.malformed, subjects, writer)
            if keep is not None and valid.height:
                kept.append(keep(valid))
            self.advance(spec.name, batch.bytes_read)
        self.advance(spec.name, path.stat().st_size)
        if keep is None:
            return None
        return pl.concat(kept) if kept else None

    def stream_all(self, specs: list[TableSpec], subjects: pl.DataFrame, writer: ShardWriter) -> None:
        """Stream tables, ``STREAM_WORKERS`` at a time, largest first (so parallel streams end together)."""
        specs = sorted(specs, key=lambda spec: -self.tables[spec.name].stat().st_size)
        with ThreadPoolExecutor(max_workers=STREAM_WORKERS) as pool:
            futures = [pool.submit(self.stream, spec, subjects, writer) for spec in specs]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _subjects_lookup(patients: pl.DataFrame, grace_days: float) -> pl.DataFrame:
    """Per subject: the earliest plausible birth (None when age is grouped) and the latest plausible
    event time (death + grace). Ages of 89 and above are grouped in MIMIC (anchor_age 91), so their
    true birth year is unknown and no before-birth check applies."""
    floor_year = pl.col("anchor_year") - pl.col("anchor_age") - 1
    return patients.select(
        pl.col(S.SUBJECT_ID),
        pl.when(pl.col("anchor_age") < 89).then(pl.datetime(floor_year.cast(pl.Int32), 1, 1))
        .otherwise(None).cast(pl.Datetime("us")).alias(E.BIRTH_FLOOR),
        (pl.col("death") + pl.duration(seconds=round(grace_days * 86400))).cast(pl.Datetime("us"))
        .alias(E.DEATH_LIMIT),
        pl.lit(True).alias(E.KNOWN),
    )


def _death_times(admissions_raw: pl.DataFrame) -> pl.DataFrame:
    """Latest recorded in-hospital death time per subject (unparseable ones are quarantined later)."""
    if "deathtime" not in admissions_raw.columns:
        return pl.DataFrame(schema={S.SUBJECT_ID: pl.Int64, "deathtime": pl.Datetime("us")})
    return (
        admissions_raw.select(
            pl.col(S.SUBJECT_ID).cast(pl.Int64, strict=False),
            E.parse_time_expr(pl.col("deathtime")).alias("deathtime"),
        )
        .drop_nulls()
        .group_by(S.SUBJECT_ID)
        .agg(pl.col("deathtime").max())
    )


def _subjects_per_shard(tables: dict[str, Path], n_subjects: int, config: IngestConfig) -> int:
    if config.subjects_per_shard is not None:
        return config.subjects_per_shard
    est_rows = sum(
        p.stat().st_size * (ROWS_PER_GZ_BYTE if p.suffix == ".gz" else ROWS_PER_CSV_BYTE)
        for p in tables.values()
    )
    per_subject = max(est_rows / max(n_subjects, 1), 1.0)
    return max(1, math.floor(config.target_events_per_shard / per_subject))


def ingest_mimic4(
    raw_dir: str | Path,
    out_dir: str | Path,
    config: IngestConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> IngestResult:
    """Convert a MIMIC-IV directory into a MEDS dataset at ``out_dir``; see the module docstring.
    ``executor`` runs the per-shard finalization (sort, deduplicate, write)."""
    config = config or IngestConfig()
    raw_dir, out_dir = Path(raw_dir).absolute(), Path(out_dir).absolute()
    tables, unrecognized = discover(raw_dir)
    fingerprint = _fingerprint(tables, config)
    marker = read_marker(out_dir)
    if marker is not None and marker.get("fingerprint") == fingerprint:
        report = json.loads((out_dir / S.QUALITY_REPORT_FILE).read_text())
        return _result(out_dir, report, skipped=True)

    check_headers(raw_dir, tables, table_specs(_EMPTY_LOOKUPS))
    with staged_output(out_dir, overwrite=overwrite) as staging:
        report = _ingest_into(raw_dir, staging, tables, unrecognized, config, progress, executor)
        write_json(staging / COMPLETE_MARKER, {"fingerprint": fingerprint, "etl_version": __version__})
    return _result(out_dir, report, skipped=False)


def _result(out_dir: Path, report: dict[str, object], skipped: bool) -> IngestResult:
    totals = report["totals"]
    assert isinstance(totals, dict)
    codes = pq.read_metadata(out_dir / S.CODES_FILE).num_rows
    return IngestResult(
        out_dir=out_dir,
        n_subjects=int(report["n_subjects"]),  # type: ignore[call-overload]
        n_events=int(report["n_events"]),  # type: ignore[call-overload]
        n_codes=codes,
        n_quarantined=int(totals["rows_quarantined"]),
        n_flagged=int(totals["rows_flagged"]),
        skipped=skipped,
        report=report,
    )


def _ingest_into(raw_dir: Path, staging: Path, tables: dict[str, Path], unrecognized: list[str],
                 config: IngestConfig, progress: Progress | None, executor: Executor | None) -> dict[str, object]:
    # Code descriptions need only the dictionaries: load them while the tables stream.
    with ThreadPoolExecutor(max_workers=1) as pool:
        dictionaries = pool.submit(_load_vocabularies, tables)
        report = _stream_all(raw_dir, staging, tables, unrecognized, config, progress, dictionaries, executor)
    return report


def _load_vocabularies(tables: dict[str, Path]) -> Dictionaries:
    warm_package_vocabularies()
    return load_mimic_dictionaries(tables)


RawTable = tuple[pl.DataFrame, list[tuple[int | None, str]]]


def _lookup_tables(run: _Run, lookups: Lookups, admissions_raw: RawTable, subjects: pl.DataFrame,
                   writer: ShardWriter) -> tuple[Lookups, set[str]]:
    """Process the tables others depend on, in dependency order, and return the lookups built from
    them with the names of the tables done: admissions (→ ED stays, ICU stays and every hadm_id),
    ED stays, ICU stays (→ stay ids of icu and ed tables) and pharmacy (→ prescriptions)."""
    def spec(name: str) -> TableSpec:
        return next(s for s in table_specs(lookups) if s.name == name)

    admissions = run.process(spec("hosp/admissions"), *admissions_raw, subjects, writer)
    lookups = replace(
        lookups,
        admissions=admissions.select(
            S.HADM_ID, pl.col(S.SUBJECT_ID).alias("admission_subject_id"), "dischtime"
        ).unique(S.HADM_ID, keep="first", maintain_order=True),
        quarantined_admissions=_quarantined_ids(admissions_raw[0], admissions, S.HADM_ID),
    )
    if "ed/edstays" in run.tables:
        raw = _read_whole(run.tables["ed/edstays"], run.config)
        edstays = run.process(spec("ed/edstays"), *raw, subjects, writer)
        lookups = replace(
            lookups,
            edstays=edstays.select(
                S.STAY_ID, pl.col(S.SUBJECT_ID).alias("ed_subject_id"),
                pl.col("intime").alias("ed_intime"), pl.col("outtime").alias("ed_outtime"),
            ).unique(S.STAY_ID, keep="first", maintain_order=True),
            quarantined_ed_stays=_quarantined_ids(raw[0], edstays, S.STAY_ID),
        )
    if "icu/icustays" in run.tables:
        raw = _read_whole(run.tables["icu/icustays"], run.config)
        icustays = run.process(spec("icu/icustays"), *raw, subjects, writer)
        lookups = replace(lookups, quarantined_icu_stays=_quarantined_ids(raw[0], icustays, S.STAY_ID))
    if "hosp/pharmacy" in run.tables:
        entered = run.stream(spec("hosp/pharmacy"), subjects, writer, keep=pharmacy_entry_times)
        if entered is not None:
            lookups = replace(lookups, pharmacy_times=TimeIndex.build(entered, "pharmacy_id", "entered"))
    done = {"hosp/patients", "hosp/admissions", "ed/edstays", "icu/icustays", "hosp/pharmacy"}
    return lookups, done


def _quarantined_ids(raw: pl.DataFrame, valid: pl.DataFrame, column: str) -> pl.Series:
    """Ids of ``column`` that only quarantined rows have (an id also on a valid row stays usable)."""
    if raw.is_empty() or column not in raw.columns:
        return pl.Series(column, [], dtype=pl.Int64)
    ids = raw.select(pl.col(column).cast(pl.Int64, strict=False)).drop_nulls().unique()
    if not valid.is_empty():
        ids = ids.join(valid.select(column), on=column, how="anti")
    return ids.get_column(column).sort()


def _stream_all(raw_dir: Path, staging: Path, tables: dict[str, Path], unrecognized: list[str],
                config: IngestConfig, progress: Progress | None,
                dictionaries: Future[Dictionaries], executor: Executor | None) -> dict[str, object]:
    admissions_raw, admissions_bad = _read_whole(tables["hosp/admissions"], config)
    # Patients first: they define the subjects every other table is checked against.
    lookups = replace(_EMPTY_LOOKUPS, death_times=_death_times(admissions_raw))
    specs = {s.name: s for s in table_specs(lookups)}
    run = _Run(raw_dir, staging, tables, config, progress)
    patients_raw, patients_bad = _read_whole(tables["hosp/patients"], config)
    patients = run.process(specs["hosp/patients"], patients_raw, patients_bad, None, None)
    splits = assign_splits(patients.get_column(S.SUBJECT_ID).to_list(), config.seed)
    layout = ShardLayout.plan(splits, _subjects_per_shard(tables, patients.height, config))
    subjects = _subjects_lookup(patients, config.death_grace_days).join(
        layout.assignment, on=S.SUBJECT_ID, how="left", maintain_order="left"
    )
    writer = ShardWriter(staging / "_intermediate", layout)
    writer.write(E.events_of(specs["hosp/patients"], patients, run.order["hosp/patients"]))

    lookups, done = _lookup_tables(run, lookups, (admissions_raw, admissions_bad), subjects, writer)
    run.stream_all(
        [spec for spec in table_specs(lookups) if spec.name in tables and spec.name not in done],
        subjects, writer,
    )
    writer.close()

    report = run.report
    report.missing_optional_tables = [s.name for s in table_specs(lookups) if s.name not in tables]
    report.not_mapped = {u.name: u.reason for u in UNMAPPED_TABLES if u.name in tables}
    known = {s.name for s in table_specs(lookups)} | set(report.not_mapped)
    report.unrecognized_files = unrecognized + sorted(t for t in tables if t not in known)
    code_counts = finalize_all(writer, staging, report, lambda: run.sink(DUPLICATES_PART),
                               progress=run.progress, executor=executor)
    report.n_subjects = patients.height
    report.n_events = int(code_counts.get_column(S.CODE_COUNT).sum())
    run.merge_records()

    codes = build_code_metadata(code_counts, dictionaries.result())
    write_metadata(
        staging, dataset_name="MIMIC-IV", dataset_version=version_hint(raw_dir), splits=splits,
        codes=codes, extra={"ehrpredict": {"source": "mimic4", "seed": config.seed,
                                           CODE_KINDS_KEY: DEFAULT_CODE_KINDS.to_json()}},
    )
    validate_dataset(staging)
    payload = report.to_json()
    write_json(staging / S.QUALITY_REPORT_FILE, payload)
    return payload


def default_progress() -> Progress:
    """A tqdm progress display on stderr: one bar per stage (reading tables, writing shards)."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():
                other.close()
            in_bytes = stage == "reading tables"
            bar = bars[stage] = tqdm(
                total=total, desc=f"{stage:<15}", unit="B" if in_bytes else " shard",
                unit_scale=in_bytes, file=sys.stderr, leave=False,
            )
        bar.n = done
        bar.refresh()

    return update
