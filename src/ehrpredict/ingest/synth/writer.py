"""Append tables chunk by chunk to gzipped CSV files in the exact MIMIC-IV layout, byte for byte stable.

gzip headers carry a modification time and a file name; both are fixed (mtime 0, the file's own name),
so the same seed always gives the same bytes wherever and whenever the files are written.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from ehrpredict.ingest.mimic4_columns import HEADERS

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"
COMPRESSION_LEVEL = 4  # level 6 costs ~2x the time for ~10% smaller files
Column = np.ndarray | Sequence[object] | pl.Series


def table_frame(table: str, data: Mapping[str, Column], times: Sequence[str] = (),
                dates: Sequence[str] = ()) -> pl.DataFrame:
    """A frame with ``table``'s MIMIC-IV header: columns not in ``data`` are empty, time and date columns
    (seconds since 1970, negative = missing) are converted to datetimes / dates."""
    header = HEADERS[table]
    unknown = [c for c in data if c not in header]
    if unknown:
        raise ValueError(f"expected columns of {table}, got {unknown}")
    n = len(next(iter(data.values())))
    frame = pl.DataFrame({k: _series(k, v) for k, v in data.items()})
    conversions = []
    for name in (*times, *dates):
        seconds = pl.col(name).cast(pl.Int64)
        moment = pl.from_epoch(seconds, time_unit="s")
        value = moment.dt.date() if name in dates else moment
        conversions.append(pl.when(seconds >= 0).then(value).otherwise(None).alias(name))
    if conversions:
        frame = frame.with_columns(conversions)
    return frame.select(
        [pl.col(c) if c in data else pl.lit(None, pl.String).alias(c) for c in header]
    ) if n else pl.DataFrame(schema={c: pl.String for c in header})


def _series(name: str, values: Column) -> pl.Series:
    if isinstance(values, pl.Series):
        return values.alias(name)
    if isinstance(values, np.ndarray) and values.dtype != object:
        return pl.Series(name, values)
    # Object arrays and lists mix strings (or numbers) with None: let polars infer the type.
    return pl.Series(name, list(values), strict=False)


def or_null(mask: np.ndarray, values: np.ndarray | str | int) -> pl.Series:
    """``values`` where ``mask`` holds, else missing (an empty CSV field)."""
    value = pl.Series(values) if isinstance(values, np.ndarray) else pl.lit(values)
    return pl.DataFrame({"m": mask}).select(pl.when(pl.col("m")).then(value).otherwise(None)).to_series()


class GzCsv:
    """One ``module/name.csv.gz`` file, opened once, appended to per chunk."""

    def __init__(self, root: Path, table: str) -> None:
        module, name = table.split("/")
        self.path = root / module / f"{name}.csv.gz"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._raw: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._gz = gzip.GzipFile(filename=f"{name}.csv", mode="wb", fileobj=self._raw, mtime=0,
                                 compresslevel=COMPRESSION_LEVEL)
        self._gz.write((",".join(HEADERS[table]) + "\n").encode())
        self.rows = 0

    def append(self, frame: pl.DataFrame) -> None:
        if frame.height == 0:
            return
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False, datetime_format=TIME_FORMAT, date_format=DATE_FORMAT,
                        line_terminator="\n")
        self._gz.write(buffer.getvalue())
        self.rows += frame.height

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


class TableSet:
    """All open tables of one generation run; tables of modules not requested are dropped silently."""

    def __init__(self, root: Path, modules: Sequence[str]) -> None:
        self.root = root
        self.modules = tuple(modules)
        self.files: dict[str, GzCsv] = {}

    def wants(self, table: str) -> bool:
        return table.split("/")[0] in self.modules

    def append(self, table: str, frame: pl.DataFrame) -> None:
        if not self.wants(table):
            return
        if table not in self.files:
            self.files[table] = GzCsv(self.root, table)
        self.files[table].append(frame)

    def close(self) -> dict[str, int]:
        for f in self.files.values():
            f.close()
        return {name: f.rows for name, f in sorted(self.files.items())}
