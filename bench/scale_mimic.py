"""Build a K-times larger MIMIC-IV raw directory from the 100-patient demo.

Usage::

    python bench/scale_mimic.py SRC_DIR DEST_DIR --factor K

Every event table (any ``*.csv.gz`` under ``hosp/``, ``icu/`` and, when present,
``ed/`` and ``note/``) is written K times into one gzip stream.  Copy ``c``
(0-based) adds ``c * span`` to every identifier column, so each copy is a set
of brand-new patients, admissions, stays and rows while joins between tables
still line up.  Copy 0 is byte-identical to the source.  Dictionary tables
(``d_*``, ``provider``, ``caregiver``) are copied once, unchanged.

Only identifier columns are touched: everything is read as strings and written
back as the same strings, so the copy exercises exactly the parsing paths the
real data does.  Memory is bounded by one source table, whatever K is.

The output is deterministic (gzip header mtime fixed to 0) and the build is
atomic (temp dir, then rename) and idempotent (a marker file records factor
and source; a matching one means there is nothing to do).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import polars as pl

# Bump when the output for a given (source, factor) changes, so that cached
# copies built by an older scheme are rebuilt rather than reused.
SCHEME_VERSION = 1
MARKER = "SCALED.json"
MODULES = ("hosp", "icu", "ed", "note")
DICTIONARY_TABLES = frozenset({"provider", "caregiver"})


@dataclass(frozen=True)
class IdSpace:
    """Where an identifier lives: every source value must be in [base, base + span).

    Copy c maps v -> v + c * span, so copies land in disjoint intervals and can
    never collide with each other or with the original.  Spans are chosen from
    the ranges of the full MIMIC-IV 2.2 release, not just the demo, and the
    source is checked against them before anything is written.
    """

    base: int
    span: int


# MIMIC-IV allocates subject/hadm/stay/transfer ids in fixed 8-digit ranges
# (10M.., 20M.., 30M..); spans of 10M keep x100 copies below 2**31.
SUBJECT = IdSpace(10_000_000, 10_000_000)
ADMISSION = IdSpace(20_000_000, 10_000_000)
STAY = IdSpace(30_000_000, 10_000_000)
TRANSFER = IdSpace(30_000_000, 10_000_000)
# Row/join keys start near 0; the full release stays below these spans
# (labevent_id reaches ~1.2e8, the others < 1e8).  Results are int64.
LABEVENT = IdSpace(0, 1_000_000_000)
ROW_KEY = IdSpace(0, 100_000_000)

INT_ID_COLUMNS: dict[str, IdSpace] = {
    "subject_id": SUBJECT,
    "hadm_id": ADMISSION,
    "stay_id": STAY,
    "transfer_id": TRANSFER,
    "labevent_id": LABEVENT,
    "specimen_id": ROW_KEY,
    "microevent_id": ROW_KEY,
    "micro_specimen_id": ROW_KEY,
    "pharmacy_id": ROW_KEY,
    # linkorderid points at an orderid, so both must move by the same amount.
    "orderid": ROW_KEY,
    "linkorderid": ROW_KEY,
}

# String ids of the form "<subject_id>-<rest>" (e.g. poe_id "10002930-456",
# note_id "10000032-DS-21"): re-keyed by moving the subject part, which keeps
# them unique per copy and consistent with subject_id.
SUBJECT_PREFIXED_COLUMNS = frozenset(
    {"poe_id", "emar_id", "discontinue_of_poe_id", "discontinued_by_poe_id", "note_id"}
)

# Ids that point into a dictionary or a code system shared by all copies.
REFERENCE_COLUMNS = frozenset(
    {
        "caregiver_id",
        "provider_id",
        "admit_provider_id",
        "order_provider_id",
        "enter_provider_id",
        "itemid",
        "spec_itemid",
        "test_itemid",
        "org_itemid",
        "ab_itemid",
    }
)


@dataclass(frozen=True)
class TableResult:
    relpath: str
    rows: int
    replicated: bool
    seconds: float


def is_dictionary(path: Path) -> bool:
    name = path.name.removesuffix(".csv.gz")
    return name.startswith("d_") or name in DICTIONARY_TABLES


def source_tables(src: Path) -> list[Path]:
    """All raw tables, largest first so the parallel pool finishes evenly."""
    tables = [p for m in MODULES for p in sorted((src / m).glob("*.csv.gz"))]
    if not any(p.parent.name == "hosp" for p in tables):
        raise FileNotFoundError(f"no hosp/*.csv.gz under {src}")
    return sorted(tables, key=lambda p: p.stat().st_size, reverse=True)


def source_fingerprint(src: Path, tables: list[Path]) -> dict[str, int]:
    return {str(p.relative_to(src)): p.stat().st_size for p in sorted(tables)}


def check_columns(relpath: str, columns: list[str]) -> None:
    """Refuse tables with an id column we do not know how to treat.

    A silently un-re-keyed row key would make the copies share ids, which is
    exactly the bug this script exists to avoid.
    """
    known = INT_ID_COLUMNS.keys() | SUBJECT_PREFIXED_COLUMNS | REFERENCE_COLUMNS
    unknown = [c for c in columns if (c.endswith("_id") or c.endswith("orderid")) and c not in known]
    if unknown:
        raise ValueError(f"{relpath}: unclassified id columns {unknown}; add them to scale_mimic.py")


def subject_prefix(col: str) -> tuple[pl.Expr, pl.Expr]:
    parts = pl.col(col).str.splitn("-", 2)
    return parts.struct.field("field_0").cast(pl.Int64), parts.struct.field("field_1")


def check_ranges(relpath: str, df: pl.DataFrame) -> None:
    """Fail early if a source id falls outside its IdSpace (copies could collide)."""
    checks: list[tuple[str, pl.Expr, IdSpace]] = []
    for col in df.columns:
        if col in INT_ID_COLUMNS:
            checks.append((col, pl.col(col).cast(pl.Int64), INT_ID_COLUMNS[col]))
        elif col in SUBJECT_PREFIXED_COLUMNS:
            checks.append((col, subject_prefix(col)[0], SUBJECT))
    if not checks:
        return
    # strict casts: a non-integer id raises here rather than becoming null.
    stats = df.select(
        [e.min().alias(f"{c}_min") for c, e, _ in checks] + [e.max().alias(f"{c}_max") for c, e, _ in checks]
    ).row(0, named=True)
    for col, _, space in checks:
        lo, hi = stats[f"{col}_min"], stats[f"{col}_max"]
        if lo is not None and not (space.base <= lo and hi < space.base + space.span):
            raise ValueError(
                f"{relpath}: {col} range [{lo}, {hi}] outside [{space.base}, {space.base + space.span})"
            )


def rekey_exprs(columns: list[str], copy: int) -> list[pl.Expr]:
    """Expressions that move copy `copy`'s ids into their own interval."""
    exprs = []
    for col in columns:
        if col in INT_ID_COLUMNS:
            shift = copy * INT_ID_COLUMNS[col].span
            exprs.append((pl.col(col).cast(pl.Int64) + shift).cast(pl.String).alias(col))
        elif col in SUBJECT_PREFIXED_COLUMNS:
            subject, rest = subject_prefix(col)
            shifted = (subject + copy * SUBJECT.span).cast(pl.String)
            exprs.append(pl.concat_str([shifted, pl.lit("-"), rest]).alias(col))
    return exprs


def replicate_table(src: Path, dest: Path, relpath: str, factor: int, compresslevel: int) -> int:
    """Write `factor` re-keyed copies of one table into a single gzip member.

    One gzip stream (not one member per copy) because some CSV readers stop at
    the end of the first member.
    """
    # infer_schema=False reads every column as a string: values round-trip
    # exactly (empty -> null -> empty), verified byte-identical on the demo.
    df = pl.read_csv(src, infer_schema=False)
    check_columns(relpath, df.columns)
    check_ranges(relpath, df)
    with (
        open(dest, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0) as gz,
    ):
        for copy in range(factor):
            exprs = rekey_exprs(df.columns, copy)
            chunk = df.with_columns(exprs) if exprs and copy else df
            chunk.write_csv(cast(IO[bytes], gz), include_header=copy == 0)
    return df.height * factor


def build_table(src_root: Path, tmp: Path, table: Path, factor: int, compresslevel: int) -> TableResult:
    relpath = str(table.relative_to(src_root))
    dest = tmp / relpath
    dest.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if is_dictionary(table):
        shutil.copyfile(table, dest)
        rows = pl.scan_csv(table, infer_schema=False).select(pl.len()).collect().item()
        replicated = False
    else:
        rows = replicate_table(table, dest, relpath, factor, compresslevel)
        replicated = True
    return TableResult(relpath, rows, replicated, time.perf_counter() - start)


def read_marker(dest: Path) -> dict | None:
    try:
        return json.loads((dest / MARKER).read_text())
    except (OSError, ValueError):
        return None


def wanted_marker(src: Path, factor: int, tables: list[Path]) -> dict:
    return {
        "scheme_version": SCHEME_VERSION,
        "factor": factor,
        "source": str(src),
        "source_files": source_fingerprint(src, tables),
    }


def marker_matches(found: dict, wanted: dict) -> bool:
    return all(found.get(k) == v for k, v in wanted.items())


def remove_stale_temps(dest: Path) -> None:
    """Clear temp dirs left by killed runs (their pid is gone)."""
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        pid = int(tmp.name.rsplit("-", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass


def install(tmp: Path, dest: Path) -> None:
    """Atomically replace `dest` (absent, or an older scaled copy) by `tmp`."""
    if not dest.exists():
        tmp.rename(dest)
        return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old)


def scale(
    src: Path, dest: Path, factor: int, *, compresslevel: int = 1, jobs: int = 2, quiet: bool = False
) -> dict:
    """Build (or reuse) the x`factor` copy of `src` at `dest`; return its marker."""
    if factor < 1:
        raise ValueError("factor must be >= 1")
    src, dest = src.resolve(), dest.resolve()
    tables = source_tables(src)
    wanted = wanted_marker(src, factor, tables)
    found = read_marker(dest)
    if found is not None and marker_matches(found, wanted):
        if not quiet:
            print(f"{dest}: up to date (x{factor}, {found['total_rows']:,} rows)")
        return found
    if dest.exists() and found is None and any(dest.iterdir()):
        # Never replace a directory we did not create.
        raise FileExistsError(f"{dest} exists, is not empty and has no {MARKER}; refusing to overwrite")

    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    start = time.perf_counter()
    try:
        tmp.mkdir()
        # Threads suffice: polars and zlib both release the GIL while working.
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(build_table, src, tmp, t, factor, compresslevel) for t in tables]
            results = []
            for fut in futures:
                res = fut.result()
                results.append(res)
                if not quiet:
                    kind = f"x{factor}" if res.replicated else "copied once"
                    print(
                        f"  {res.relpath:<32} {res.rows:>13,} rows ({kind}) {res.seconds:7.1f} s", flush=True
                    )
        elapsed = time.perf_counter() - start
        marker = {
            **wanted,
            "tables": {r.relpath: r.rows for r in sorted(results, key=lambda r: r.relpath)},
            "total_rows": sum(r.rows for r in results),
            "replicated_rows": sum(r.rows for r in results if r.replicated),
            "patients": factor
            * pl.scan_csv(src / "hosp" / "patients.csv.gz").select(pl.len()).collect().item(),
            "build_seconds": round(elapsed, 2),
            "bytes": sum(p.stat().st_size for p in tmp.rglob("*.csv.gz")),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        install(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print(
            f"{dest}: wrote {marker['total_rows']:,} rows ({marker['patients']:,} patients, "
            f"{marker['bytes'] / 1e9:.2f} GB) in {elapsed:.1f} s"
        )
    return marker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="raw MIMIC-IV directory (with hosp/, icu/)")
    parser.add_argument("dest", type=Path, help="output directory (created atomically)")
    parser.add_argument("--factor", type=int, required=True, help="number of copies K")
    parser.add_argument(
        "--compresslevel",
        type=int,
        default=1,
        help="gzip level of the output (1: fastest; readers do not care)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="tables built in parallel")
    args = parser.parse_args(argv)
    scale(args.src, args.dest, args.factor, compresslevel=args.compresslevel, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
