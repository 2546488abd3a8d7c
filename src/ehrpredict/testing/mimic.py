"""Build tiny MIMIC-IV directories inline in tests, in the real MIMIC-IV file layout.

Headers are those of a real release in their real column order (:mod:`ehrpredict.ingest.mimic4_columns`,
which production code owns), so a test exercises the same header handling as a real release. Rows name
only the columns they care about; the others are written empty (MIMIC's missing value).

    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = Path(tmp.name)
    >>> path = write_table(root, "hosp/patients", [{"subject_id": 1, "gender": "F",
    ...                                              "anchor_age": 50, "anchor_year": 2150}])
    >>> path.relative_to(root).as_posix()
    'hosp/patients.csv.gz'
    >>> read_rows(path)[0]["anchor_year_group"]  # a column the row did not name: empty
    ''
    >>> tmp.cleanup()
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from ehrpredict.ingest.mimic4_columns import HEADERS

Cell = str | int | float | None  # a field value; None is written as an empty field
Row = Mapping[str, Cell]


def table_path(root: Path, table: str, *, gz: bool = True) -> Path:
    """Where ``table`` (``module/name``) lives: ``table_path(r, "hosp/omr")`` → ``r/hosp/omr.csv.gz``."""
    module, _, name = table.partition("/")
    if not module or not name:
        raise ValueError(f"expected a table as 'module/name', got {table!r}")
    return Path(root) / module / f"{name}.csv{'.gz' if gz else ''}"


def write_bytes(path: Path, data: bytes, *, gz: bool | None = None) -> Path:
    """Write ``data`` to ``path`` (gzip-compressed when ``gz``, default: when the name ends in .gz).

    Use ``gz=False`` with a ``.csv.gz`` name to write a corrupt "gzip" file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    compress = path.suffix == ".gz" if gz is None else gz
    # mtime=0: the same rows always give the same bytes.
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_text(root: Path, table: str, text: str, *, gz: bool = True) -> Path:
    """Write ``text`` verbatim as a table file: for malformed rows a CSV writer would not produce.

        >>> write_text(root, "hosp/omr", "subject_id,chartdate\\n1,2150-01-01,extra\\n")  # doctest: +SKIP
    """
    return write_bytes(table_path(root, table, gz=gz), text.encode("utf-8"), gz=gz)


def csv_text(table: str, rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    """The CSV text (header and rows) that :func:`write_table` writes, e.g. to corrupt it by hand."""
    header = list(columns) if columns is not None else _header(table, rows)
    for i, row in enumerate(rows):
        unknown = [k for k in row if k not in header]
        if unknown:
            raise ValueError(f"row {i + 1} of {table}: columns {unknown} are not in the header {header}")
    out = io.StringIO()
    # Quote only where needed, like MIMIC's own files; text with commas or newlines gets quoted.
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in header])
    return out.getvalue()


def write_table(
    root: Path,
    table: str,
    rows: Sequence[Row],
    *,
    gz: bool = True,
    columns: Sequence[str] | None = None,
) -> Path:
    """Write ``rows`` as ``root/<module>/<name>.csv[.gz]`` under the table's real MIMIC-IV header.

    Columns a row does not name are empty; a name that is not in the header raises ``ValueError``
    (a typo would otherwise silently test nothing). ``columns`` replaces the header, e.g. to drop a
    required column; unknown tables need it or take their header from the rows' keys.

        >>> write_table(root, "ed/triage", [{"subject_id": 1, "stay_id": 3, "acuity": 2}])  # doctest: +SKIP
    """
    return write_text(root, table, csv_text(table, rows, columns), gz=gz)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV(.gz) file as dicts of strings (for checking what a helper wrote)."""
    raw = Path(path).read_bytes()
    text = (gzip.decompress(raw) if Path(path).suffix == ".gz" else raw).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _header(table: str, rows: Sequence[Row]) -> list[str]:
    if table in HEADERS:
        return list(HEADERS[table])
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    if not seen:
        raise ValueError(f"unknown table {table!r} with no rows: pass columns=")
    return list(seen)


# A tiny hospital whose events can be read off by eye. Birth is 1 January of anchor_year - anchor_age;
# ages of 89+ are grouped in MIMIC (anchor_age 91), so subject 3's birth year is not real.
PATIENTS: tuple[dict[str, Cell], ...] = (
    {"subject_id": 1, "gender": "F", "anchor_age": 50, "anchor_year": 2150,
     "anchor_year_group": "2011 - 2013"},                                   # birth 2100-01-01
    {"subject_id": 2, "gender": "M", "anchor_age": 70, "anchor_year": 2160,
     "anchor_year_group": "2014 - 2016", "dod": "2160-03-12"},              # died in hospital
    {"subject_id": 3, "gender": "F", "anchor_age": 91, "anchor_year": 2170,
     "anchor_year_group": "2017 - 2019"},                                   # age grouped
)
ADMISSIONS: tuple[dict[str, Cell], ...] = (
    {"subject_id": 1, "hadm_id": 101, "admittime": "2150-05-01 10:00:00",
     "dischtime": "2150-05-05 12:00:00", "admission_type": "EW EMER.",
     "admission_location": "EMERGENCY ROOM", "discharge_location": "HOME", "insurance": "Medicare",
     "language": "ENGLISH", "marital_status": "MARRIED", "race": "WHITE",
     "edregtime": "2150-05-01 07:00:00", "edouttime": "2150-05-01 10:00:00", "hospital_expire_flag": 0},
    {"subject_id": 2, "hadm_id": 201, "admittime": "2160-03-01 09:00:00",
     "dischtime": "2160-03-12 08:00:00", "deathtime": "2160-03-12 08:00:00", "admission_type": "URGENT",
     "admission_location": "TRANSFER FROM HOSPITAL", "discharge_location": "DIED",
     "insurance": "Other", "language": "ENGLISH", "race": "BLACK/AFRICAN AMERICAN",
     "hospital_expire_flag": 1},
    {"subject_id": 3, "hadm_id": 301, "admittime": "2170-07-10 14:30:00",
     "dischtime": "2170-07-11 10:00:00", "admission_type": "ELECTIVE",
     "admission_location": "PHYSICIAN REFERRAL", "discharge_location": "HOME", "insurance": "Medicaid",
     "hospital_expire_flag": 0},
)


def minimal_hospital(root: Path, *, gz: bool = True) -> Path:
    """Write :data:`PATIENTS` and :data:`ADMISSIONS` (the two required tables) under ``root/hosp``.

    Three subjects: 1 (F, born 2100, admission 101 on 2150-05-01 10:00 → 2150-05-05 12:00), 2 (M,
    admission 201 from 2160-03-01 09:00, died in hospital 2160-03-12 08:00) and 3 (F, age grouped,
    admission 301 on 2170-07-10 14:30 → 2170-07-11 10:00). Add tables with :func:`write_table`.

        >>> raw = minimal_hospital(root)  # doctest: +SKIP
        >>> weight = {"subject_id": 1, "chartdate": "2150-06-01", "result_name": "Weight (Lbs)",
        ...           "result_value": "150"}  # doctest: +SKIP
        >>> write_table(raw, "hosp/omr", [weight])  # doctest: +SKIP
    """
    write_table(root, "hosp/patients", PATIENTS, gz=gz)
    write_table(root, "hosp/admissions", ADMISSIONS, gz=gz)
    return Path(root)
