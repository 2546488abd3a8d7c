"""Where the tables of a MIMIC-IV download are: module directories, table files, header checks.

A download may hold hosp/ and icu/ directly, or sit beside the ED and Note modules
(``mimic-iv-3.1/hosp``, ``mimic-iv-ed-2.2/ed``, ``mimic-iv-note-2.2/note``): modules are looked for in
RAW_DIR and one level below it.
"""

from __future__ import annotations

from pathlib import Path

from ehrpredict.errors import DataError, SchemaError
from ehrpredict.ingest import engine as E
from ehrpredict.ingest.mimic4_tables import REQUIRED_TABLES
from ehrpredict.ingest.spec import TableSpec

MODULES = ("hosp", "icu", "ed", "note")


def _module_dirs(raw_dir: Path) -> dict[str, Path]:
    """Find hosp/, icu/, ed/, note/ directly in RAW_DIR or one level below (e.g. mimic-iv-ed-2.2/ed)."""
    found: dict[str, Path] = {}
    candidates = [raw_dir, *sorted(p for p in raw_dir.iterdir() if p.is_dir())]
    for base in candidates:
        for module in MODULES:
            if module not in found and (base / module).is_dir():
                found[module] = base / module
    return found


def discover(raw_dir: Path) -> tuple[dict[str, Path], list[str]]:
    """Map ``module/table`` → file for every CSV found, and list files that are not tables."""
    if not raw_dir.is_dir():
        what = "a file" if raw_dir.exists() else "a missing path"
        raise DataError(f"expected RAW_DIR to be a MIMIC-IV directory, got {what}: {raw_dir}")
    modules = _module_dirs(raw_dir)
    if "hosp" not in modules:
        raise DataError(
            f"expected a MIMIC-IV directory containing hosp/patients.csv.gz, got {raw_dir} "
            f"(subdirectories: {', '.join(sorted(p.name for p in raw_dir.iterdir() if p.is_dir())) or 'none'})"
        )
    tables: dict[str, Path] = {}
    unrecognized: list[str] = []
    for module, directory in modules.items():
        for path in sorted(directory.iterdir()):
            name = path.name
            for suffix in (".csv.gz", ".csv"):
                if name.endswith(suffix):
                    key = f"{module}/{name[: -len(suffix)]}"
                    tables.setdefault(key, path)  # .csv.gz wins over .csv
                    break
            else:
                if path.is_file():
                    unrecognized.append(f"{module}/{name}")
    return tables, unrecognized


def check_headers(raw_dir: Path, tables: dict[str, Path], specs: list[TableSpec]) -> None:
    """Read every mapped table's header; collect all missing-column problems before raising."""
    missing_required = [t for t in REQUIRED_TABLES if t not in tables]
    if missing_required:
        raise DataError(
            "expected required MIMIC-IV tables "
            + ", ".join(f"{t}.csv.gz" for t in missing_required)
            + f", not found under {raw_dir}"
        )
    problems: list[str] = []
    for spec in specs:
        if spec.name not in tables:
            continue
        header = E.read_header(tables[spec.name])
        try:
            E.require_columns(tables[spec.name], header, spec)
        except SchemaError as exc:
            problems.append(str(exc))
    if problems:
        raise SchemaError("\n".join(problems))


def version_hint(raw_dir: Path) -> str:
    """MIMIC-IV version from the directory name when it says one (mimic-iv-3.1), else "unknown"."""
    for part in reversed(raw_dir.parts):
        for version in ("3.1", "3.0", "2.2", "2.1", "2.0"):
            if version in part:
                return version
    return "unknown"
