"""FHIR R4 files → a MEDS dataset (``ehrpredict ingest fhir DIR OUT``), through the same shard writer,
data-quality report and quarantine as the MIMIC-IV and MEDS routes.

Input: bulk-export NDJSON (``*.ndjson``, ``*.ndjson.gz``: one resource a line) and JSON files holding a
Bundle or a single resource (``*.json``), anywhere under DIR. Two streaming passes, so memory is one
batch of events plus the lookups (one entry per Patient, Encounter, Location, Medication and ED triage
Procedure), never a whole file of observations:

1. read only lines whose ``resourceType`` is one of those: validate them and build the lookups
   (subject ids, encounter ids and periods, care unit and drug names);
2. read every resource, validate it against the R4B models, map it to events and stream them into
   the shards.

Accounting, as for CSV rows: every resource read is a report row of its table ``fhir/<ResourceType>``;
it is turned into events, kept with a flag (a code system not in the table; an observation whose value
is absent), or quarantined with its reason, the field path and the whole resource: a line that is not
JSON, a resource that fails R4B validation, one whose Patient is not in the input, one without a time.
Exact duplicate resources are quarantined as duplicate rows. In the data-quality report and in
``quarantine.parquet``, ``row`` is the line of an NDJSON file or ``entry index + 1`` of a Bundle; for
duplicate rows found when shards are written it is the resource's position among all resources read.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.errors import DataError
from ehrpredict.ingest import engine as E
from ehrpredict.ingest.fhir.errors import FhirInputError
from ehrpredict.ingest.fhir.frames import BUNDLE_TYPES
from ehrpredict.ingest.fhir.mapper import MAPPED_TYPES, REFERENCE_ONLY, map_resource
from ehrpredict.ingest.fhir.references import Index
from ehrpredict.ingest.fhir.validate import validate_resource
from ehrpredict.ingest.mimic4 import IngestResult
from ehrpredict.ingest.output import staged_output, validate_dataset, write_json, write_metadata
from ehrpredict.ingest.quality import QualityReport, TableReport
from ehrpredict.ingest.shards import ShardLayout, ShardWriter, assign_splits, finalize_all
from ehrpredict.vocab.codes import build_code_metadata
from ehrpredict.vocab.dictionaries import Dictionaries
from ehrpredict.vocab.kinds import CODE_KINDS_KEY, DEFAULT_CODE_KINDS

INDEXED_TYPES = ("Patient", "Encounter", "Location", "Medication", "Procedure")
_TYPE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')
BATCH_EVENTS = 200_000
DEFAULT_SUBJECTS_PER_SHARD = 10_000
MALFORMED = "malformed JSON line"
INVALID = "invalid FHIR R4 resource (R4B validation)"
Progress = Callable[[str, int, int], None]


@dataclass
class _Source:
    """One resource read: where it came from and its raw text (for the quarantine record)."""

    file: str
    row: int
    raw: bytes
    resource: dict[str, Any] | None  # None: not JSON, or not an object
    kind: str


def discover(in_dir: Path) -> tuple[list[Path], list[str]]:
    """The FHIR files under ``in_dir`` (or ``in_dir`` itself, a file) and the other files found."""
    if in_dir.is_file():
        return [in_dir], []
    if not in_dir.is_dir():
        raise DataError(f"expected a directory of FHIR NDJSON or JSON files, got a missing path: {in_dir}")
    files, other = [], []
    for path in sorted(p for p in in_dir.rglob("*") if p.is_file()):
        if path.name.endswith((".ndjson", ".ndjson.gz", ".json")):
            files.append(path)
        elif not path.name.startswith("."):
            other.append(str(path.relative_to(in_dir)))
    if not files:
        raise DataError(f"expected *.ndjson, *.ndjson.gz or *.json FHIR files under {in_dir}, got none")
    return files, other


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile reads bytes
    return open(path, "rb")


def iter_resources(path: Path, name: str, wanted: tuple[str, ...] | None = None) -> Iterator[_Source]:
    """The resources of one file, streamed line by line for NDJSON; ``wanted`` skips lines of other
    resource types without parsing them."""
    if path.name.endswith(".json"):
        yield from _iter_json(path, name, wanted)
        return
    try:
        with _open(path) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                match = _TYPE.search(line)
                kind = match.group(1).decode() if match else ""
                if wanted is not None and kind not in wanted:
                    continue
                try:
                    parsed = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    parsed = None
                yield _Source(name, line_no, line.rstrip(b"\n"), parsed if isinstance(parsed, dict) else None, kind)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: expected a readable NDJSON file, got an error: {exc}") from exc


def _iter_json(path: Path, name: str, wanted: tuple[str, ...] | None) -> Iterator[_Source]:
    """A JSON file holds one Bundle (each entry a row) or one resource (row 1)."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FhirInputError(name, "a JSON file holding a FHIR Bundle or resource", f"unreadable JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise FhirInputError(name, "a JSON object (a Bundle or resource)", type(document).__name__)
    if document.get("resourceType") != "Bundle":
        items: list[Any] = [document]
    else:
        if document.get("type") not in BUNDLE_TYPES:
            raise FhirInputError(f"{name}: type", f"a Bundle of type {', '.join(BUNDLE_TYPES)}",
                                 repr(document.get("type")))
        items = [e.get("resource") if isinstance(e, dict) else None for e in document.get("entry") or []]
    for i, item in enumerate(items, start=1):
        kind = str(item.get("resourceType", "")) if isinstance(item, dict) else ""
        if wanted is None or kind in wanted:
            yield _Source(name, i, json.dumps(item).encode(), item if isinstance(item, dict) else None, kind)


@dataclass
class _Run:
    root: Path
    report: QualityReport
    index: Index = field(default_factory=Index)
    invalid: dict[tuple[str, int], FhirInputError] = field(default_factory=dict)  # pass-1 failures
    sequence: int = 0

    def table(self, source: _Source) -> TableReport:
        name = f"fhir/{source.kind or 'unknown'}"
        stats = self.report.tables.setdefault(name, TableReport(name, source.file))
        if source.file not in stats.file.split(", "):
            stats.file = f"{stats.file}, {source.file}"
        return stats


def _record(source: _Source, table: str, reason: str, field_path: str | None, value: str | None) -> dict[str, Any]:
    return {S.Q_TABLE: table, S.Q_FILE: source.file, S.Q_ROW: source.row, S.Q_REASON: reason,
            S.Q_FIELD: field_path, S.Q_VALUE: value, S.Q_RECORD: source.raw.decode("utf-8", "replace")}


def _index_pass(files: list[Path], run: _Run) -> None:
    for path in files:
        for source in iter_resources(path, str(path.relative_to(run.root)) if path != run.root else path.name,
                                     INDEXED_TYPES):
            if source.resource is None:
                continue  # reported in the second pass
            try:
                validate_resource(source.resource)
            except FhirInputError as error:
                run.invalid[source.file, source.row] = error
                continue
            run.index.add(source.resource)


def _hash(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def _map_pass(files: list[Path], run: _Run, writer: ShardWriter, quarantine: E.QuarantineSink,
              flagged: E.QuarantineSink, progress: Progress | None) -> None:
    order = {f"fhir/{kind}": i for i, kind in enumerate((*MAPPED_TYPES, *REFERENCE_ONLY))}
    rows: list[tuple[Any, ...]] = []
    bad: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for n_file, path in enumerate(files):
        name = str(path.relative_to(run.root)) if path != run.root else path.name
        for source in iter_resources(path, name):
            stats = run.table(source)
            stats.rows_read += 1
            run.sequence += 1
            reason, error = _check(source, run)
            if reason is not None:
                stats.quarantined[reason] += 1
                bad.append(_record(source, stats.table, reason, error.path if error else None,
                                   error.got if error else None))
                continue
            assert source.resource is not None
            try:
                mapped = map_resource(source.resource, run.index)
            except FhirInputError as error:
                reason = f"cannot map: expected {error.expected}"
                stats.quarantined[reason] += 1
                bad.append(_record(source, stats.table, reason, error.path, error.got))
                continue
            if mapped.flags:
                stats.rows_flagged += 1
                for flag_reason, flag_field in mapped.flags:
                    stats.flagged[flag_reason] += 1
                    flags.append(_record(source, stats.table, flag_reason, flag_field, None))
            table_order, row_hash = order.get(stats.table, 63), _hash(source.raw)
            rows.extend((*event, run.sequence, row_hash, table_order * 64 + position)
                        for position, event in enumerate(mapped.rows))
            if len(rows) >= BATCH_EVENTS:
                _flush(rows, bad, flags, writer, quarantine, flagged)
        if progress:
            progress("reading files", n_file + 1, len(files))
    _flush(rows, bad, flags, writer, quarantine, flagged)


def _check(source: _Source, run: _Run) -> tuple[str | None, FhirInputError | None]:
    """Why a resource cannot be used before mapping: not JSON, or not valid R4."""
    if source.resource is None:
        return MALFORMED, None
    error = run.invalid.get((source.file, source.row))
    if error is None and source.kind not in INDEXED_TYPES:
        try:
            validate_resource(source.resource)
        except FhirInputError as exc:
            error = exc
    return (INVALID, error) if error is not None else (None, None)


_INTERMEDIATE = {**S.EVENT_SCHEMA, E.ROW: pl.Int64(), E.ROW_HASH: pl.UInt64(), E.ORDER: pl.Int32()}


def _flush(rows: list[tuple[Any, ...]], bad: list[dict[str, Any]], flags: list[dict[str, Any]],
           writer: ShardWriter, quarantine: E.QuarantineSink, flagged: E.QuarantineSink) -> None:
    if rows:
        writer.write(pl.DataFrame(rows, schema=_INTERMEDIATE, orient="row"))
    for records, sink in ((bad, quarantine), (flags, flagged)):
        if records:
            sink.write(pl.DataFrame(records, schema=S.QUARANTINE_SCHEMA))
    rows.clear()
    bad.clear()
    flags.clear()


def ingest_fhir(in_dir: str | Path, out_dir: str | Path, *, seed: int = 0, overwrite: bool = False,
                subjects_per_shard: int = DEFAULT_SUBJECTS_PER_SHARD, progress: Progress | None = None) -> IngestResult:
    """Convert FHIR R4 NDJSON/JSON files under ``in_dir`` into a MEDS dataset at ``out_dir``; see the
    module docstring. Splits are assigned from subject ids with ``seed``, as for MIMIC-IV."""
    root, out = Path(in_dir).absolute(), Path(out_dir).absolute()
    files, other = discover(root)
    run = _Run(root if root.is_dir() else root.parent, QualityReport(source=str(root)))
    _index_pass(files, run)
    splits = assign_splits(sorted(set(run.index.patients.values())), seed)
    with staged_output(out, overwrite=overwrite) as staging:
        layout = ShardLayout.plan(splits, subjects_per_shard)
        writer = ShardWriter(staging / "_intermediate", layout)
        quarantine = E.QuarantineSink(staging / S.QUARANTINE_FILE)
        flagged = E.QuarantineSink(staging / S.FLAGGED_FILE)
        _map_pass(files, run, writer, quarantine, flagged, progress)
        writer.close()
        report = run.report
        report.unrecognized_files = other
        code_counts = finalize_all(writer, staging, report, lambda: quarantine, progress=progress)
        quarantine.close()
        flagged.close()
        report.n_subjects = splits.height
        report.n_events = int(code_counts.get_column(S.CODE_COUNT).sum())
        codes = build_code_metadata(code_counts, Dictionaries())
        write_metadata(
            staging, dataset_name=root.name, dataset_version="unknown", splits=splits, codes=codes,
            extra={"ehrpredict": {"source": "fhir", "seed": seed, "etl_version": __version__,
                                  CODE_KINDS_KEY: DEFAULT_CODE_KINDS.to_json()}},
        )
        validate_dataset(staging)
        payload = report.to_json()
        write_json(staging / S.QUALITY_REPORT_FILE, payload)
    totals = payload["totals"]
    return IngestResult(
        out_dir=out, n_subjects=report.n_subjects, n_events=report.n_events,
        n_codes=pq.read_metadata(out / S.CODES_FILE).num_rows, n_quarantined=int(totals["rows_quarantined"]),
        n_flagged=int(totals["rows_flagged"]), skipped=False, report=payload,
    )
