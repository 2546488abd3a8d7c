"""Writing a MEDS dataset safely: staging directory, atomic swap, metadata files, validation."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import meds
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from flexible_schema.exceptions import SchemaValidationError, TableValidationError

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.errors import ConfigError, SchemaError

COMPLETE_MARKER = ".ehrpredict-complete.json"  # written last; its absence means "not a finished dataset"


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file, then rename), with stable key order and formatting."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    """Write text atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_marker(out_dir: Path) -> dict[str, Any] | None:
    marker = out_dir / COMPLETE_MARKER
    if not marker.exists():
        return None
    marker_data: dict[str, Any] = json.loads(marker.read_text())
    return marker_data


@contextlib.contextmanager
def staged_output(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty staging directory beside ``out_dir``; on success swap it into place.

    A crash leaves only the hidden staging directory, never a half-written ``out_dir``.
    """
    out_dir = out_dir.absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"expected OUT_DIR to be a directory, got a file: {out_dir}")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(
            f"expected an empty or new OUT_DIR, got a non-empty directory: {out_dir} "
            "(pass --overwrite to replace it)"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def write_metadata(
    root: Path,
    *,
    dataset_name: str,
    dataset_version: str,
    splits: pl.DataFrame,
    codes: pl.DataFrame,
    extra: dict[str, Any],
) -> None:
    """dataset.json, subject_splits.parquet and codes.parquet under ``root/metadata``."""
    (root / S.METADATA_DIR).mkdir(parents=True, exist_ok=True)
    # No created_at: the same input must give byte-identical output.
    dataset = {
        "dataset_name": dataset_name,
        "dataset_version": dataset_version,
        "etl_name": "ehrpredict",
        "etl_version": __version__,
        "meds_version": meds.__version__,
        "raw_source_id_columns": [S.HADM_ID, S.STAY_ID],
        "other_extension_columns": [S.TABLE],
    }
    meds.DatasetMetadataSchema.validate(dataset)
    write_json(root / S.DATASET_FILE, {**dataset, **extra})
    pq.write_table(
        splits.sort(S.SUBJECT_ID).to_arrow().cast(meds.SubjectSplitSchema.schema()),
        root / S.SPLITS_FILE,
    )
    pq.write_table(codes_to_arrow(codes), root / S.CODES_FILE)


def codes_to_arrow(codes: pl.DataFrame) -> pa.Table:
    """codes.parquet with the meds schema's exact types (string, not large_string) plus extras."""
    schema = meds.CodeMetadataSchema.schema()
    table = codes.sort(S.CODE).to_arrow()
    extras = [table.schema.field(c) for c in table.column_names if c not in schema.names]
    fields = [*schema, *extras]
    return table.select([f.name for f in fields]).cast(pa.schema(fields))


def data_files(root: Path) -> list[Path]:
    """The data shards of a MEDS dataset, in a stable order."""
    return sorted((root / S.DATA_DIR).rglob("*.parquet"))


def validate_dataset(root: Path) -> None:
    """Check every shard, the splits and the codes file against the ``meds`` package schemas."""
    problems = []
    for path in data_files(root):
        try:
            meds.DataSchema.validate(pq.read_schema(path))
        except (SchemaValidationError, TableValidationError) as exc:
            problems.append(f"{path}: {exc}")
    for name, schema in ((S.SPLITS_FILE, meds.SubjectSplitSchema), (S.CODES_FILE, meds.CodeMetadataSchema)):
        try:
            schema.validate(pq.read_schema(root / name))
        except (SchemaValidationError, TableValidationError, FileNotFoundError) as exc:
            problems.append(f"{root / name}: {exc}")
    if problems:
        raise SchemaError("expected a valid MEDS 0.4 dataset, got:\n  " + "\n  ".join(problems))
