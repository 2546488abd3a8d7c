"""Reading a MEDS dataset: where its files are, what it contains (``ehrpredict info``) and a
fingerprint of its content (``dataset_fingerprint``)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.cachedir import cache_root
from ehrpredict.errors import DataError
from ehrpredict.vocab.kinds import CodeKinds, code_kinds

FINGERPRINT_BLOCK = 1 << 20  # bytes read at a time: memory stays flat whatever a file's size


def shard_files(root: str | Path) -> list[Path]:
    """All data shards of a MEDS dataset, sorted; a clear error when there are none."""
    root = Path(root)
    files = sorted((root / S.DATA_DIR).rglob("*.parquet"))
    if not files:
        raise DataError(f"expected a MEDS dataset with {root / S.DATA_DIR}/**/*.parquet, got no shards")
    return files


def dataset_metadata(root: str | Path) -> dict[str, Any]:
    """The content of ``metadata/dataset.json``; empty for a MEDS dataset without one."""
    path = Path(root) / S.DATASET_FILE
    if not path.exists():
        return {}
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"expected JSON in {path}, got invalid JSON at line {error.lineno}") from error
    if not isinstance(metadata, dict):
        raise DataError(f"expected a JSON object in {path}, got {type(metadata).__name__}")
    return metadata


def dataset_code_kinds(root: str | Path) -> CodeKinds:
    """Which code prefixes are labs, diagnoses, sex, ... in this dataset: the code kinds its
    ``metadata/dataset.json`` declares, or ehrpredict's own ingestion's (see :mod:`ehrpredict.vocab.kinds`)."""
    return code_kinds(dataset_metadata(root), source=str(Path(root) / S.DATASET_FILE))


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    n_subjects: int
    n_events: int
    n_codes: int
    n_shards: int
    events_by_prefix: dict[str, int]
    subjects_by_split: dict[str, int]
    dataset: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "n_subjects": self.n_subjects,
            "n_events": self.n_events,
            "n_codes": self.n_codes,
            "n_shards": self.n_shards,
            "subjects_by_split": self.subjects_by_split,
            "events_by_prefix": self.events_by_prefix,
            "dataset": self.dataset,
        }

    def summary(self) -> str:
        lines = [
            f"{self.path}: {self.n_subjects:,} subjects, {self.n_events:,} events, "
            f"{self.n_codes:,} codes in {self.n_shards} shards",
            "subjects by split: " + ", ".join(f"{k} {v:,}" for k, v in self.subjects_by_split.items()),
            "events by code prefix:",
        ]
        lines += [f"  {prefix:<24}{n:>12,}" for prefix, n in self.events_by_prefix.items()]
        return "\n".join(lines)


def dataset_info(root: str | Path) -> DatasetInfo:
    """Summarize a MEDS dataset by streaming its shards (memory stays small on large datasets)."""
    root = Path(root)
    files = shard_files(root)
    events = pl.scan_parquet(files).select(S.SUBJECT_ID, S.CODE)
    by_prefix = (
        events.group_by(pl.col(S.CODE).str.split(S.CODE_SEPARATOR).list.first().alias("prefix"))
        .agg(pl.len().alias("n"))
        .sort(["n", "prefix"], descending=[True, False])
        .collect()
    )
    totals = events.select(
        pl.col(S.SUBJECT_ID).n_unique().alias("subjects"),
        pl.len().alias("events"),
        pl.col(S.CODE).n_unique().alias("codes"),
    ).collect()
    splits_path = root / S.SPLITS_FILE
    by_split: dict[str, int] = {}
    if splits_path.exists():
        counts = pl.read_parquet(splits_path).group_by(S.SPLIT).len().sort(S.SPLIT)
        by_split = {str(k): int(v) for k, v in counts.iter_rows()}
    dataset = dataset_metadata(root)
    return DatasetInfo(
        path=root,
        n_subjects=int(totals["subjects"][0]),
        n_events=int(totals["events"][0]),
        n_codes=int(totals["codes"][0]),
        n_shards=len(files),
        events_by_prefix={str(p): int(n) for p, n in by_prefix.iter_rows()},
        subjects_by_split=by_split,
        dataset=dataset,
    )


def dataset_fingerprint(root: str | Path, cache_dir: Path | None = None) -> str:
    """A short hash of a dataset's content: every ``*.parquet`` file under ``root`` (data shards,
    codes, splits, quarantine), by relative path and the sha256 of its bytes, read in blocks.

    Reading every byte of a large dataset takes seconds per GB, so each file's digest is cached in
    ``cache_dir`` (default ``<ehrpredict cache>/fingerprints``; not beside the dataset, which may be
    read-only or shared) under its resolved path, size, inode, mtime and ctime: a file rewritten in
    place changes its ctime even when its size and mtime are restored, so it is read again.

    >>> dataset_fingerprint("out/meds")  # doctest: +SKIP
    '3f0c9a2e41b7d815'
    """
    root = Path(root)
    files = sorted(root.rglob("*.parquet"))
    cache_path = (cache_dir or cache_root() / "fingerprints") / f"{_sha256_text(str(root.resolve()))[:32]}.json"
    cached = _read_digests(cache_path)
    digests: dict[str, dict[str, Any]] = {}
    whole = hashlib.sha256()
    for path in files:
        relative = path.relative_to(root).as_posix()
        stat = path.stat()
        key = {"size": stat.st_size, "inode": stat.st_ino, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns}
        entry = cached.get(relative)
        if entry is None or {k: entry.get(k) for k in key} != key:
            entry = {**key, "sha256": _file_sha256(path)}
        digests[relative] = entry
        whole.update(f"{relative}\0{stat.st_size}\0{entry['sha256']}\n".encode())
    if digests != cached:
        _write_digests(cache_path, str(root.resolve()), digests)
    return whole.hexdigest()[:16]


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(FINGERPRINT_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _read_digests(path: Path) -> dict[str, dict[str, Any]]:
    """The cached file digests of one dataset; none when there is no cache file or it is unreadable
    (a cache only saves time: reading the files again gives the same answer)."""
    try:
        files = json.loads(path.read_text()).get("files")
    except (OSError, ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def _write_digests(path: Path, root: str, digests: dict[str, dict[str, Any]]) -> None:
    """Write the cache atomically (temporary file, then rename), so concurrent runs never read half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        temp.write_text(json.dumps({"root": root, "files": digests}, indent=1, sort_keys=True))
        os.replace(temp, path)
    except OSError:
        return  # a cache directory we cannot write (read-only home) only costs speed: the fingerprint stands
