"""Public test helpers: tiny synthetic inputs that ehrpredict's tests and plugins reuse.

    >>> from ehrpredict.testing import minimal_hospital, write_table
"""

from ehrpredict.ingest.mimic4_columns import HEADERS
from ehrpredict.testing.mimic import (
    ADMISSIONS,
    PATIENTS,
    Cell,
    Row,
    csv_text,
    minimal_hospital,
    read_rows,
    table_path,
    write_bytes,
    write_table,
    write_text,
)

__all__ = [
    "ADMISSIONS",
    "HEADERS",
    "PATIENTS",
    "Cell",
    "Row",
    "csv_text",
    "minimal_hospital",
    "read_rows",
    "table_path",
    "write_bytes",
    "write_table",
    "write_text",
]
