"""Reading a MEDS dataset: where its files are and what it contains (``ehrpredict info``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.errors import DataError


def shard_files(root: str | Path) -> list[Path]:
    """All data shards of a MEDS dataset, sorted; a clear error when there are none."""
    root = Path(root)
    files = sorted((root / S.DATA_DIR).rglob("*.parquet"))
    if not files:
        raise DataError(f"expected a MEDS dataset with {root / S.DATA_DIR}/**/*.parquet, got no shards")
    return files


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
    import json

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
    dataset_path = root / S.DATASET_FILE
    dataset = json.loads(dataset_path.read_text()) if dataset_path.exists() else {}
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
