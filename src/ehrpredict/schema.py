"""Every column name, dtype, file name and split name used across ehrpredict.

The MEDS 0.4 schema itself comes from the ``meds`` package; this module re-exports it and adds the
provenance columns and file layout ehrpredict writes. No other module spells a column name.
"""

from __future__ import annotations

import meds
import polars as pl
import pyarrow as pa

# --- MEDS core event columns -------------------------------------------------------------------
SUBJECT_ID = "subject_id"
TIME = "time"
CODE = "code"
NUMERIC_VALUE = "numeric_value"
TEXT_VALUE = "text_value"

# --- provenance columns ehrpredict adds (MEDS allows extra columns) -----------------------------
HADM_ID = "hadm_id"  # hospital admission the event belongs to, when the source says so
STAY_ID = "stay_id"  # ICU or ED stay, when the source says so
TABLE = "table"  # source table, e.g. "hosp/labevents"
PROVENANCE_COLUMNS = (HADM_ID, STAY_ID, TABLE)

EVENT_COLUMNS = (SUBJECT_ID, TIME, CODE, NUMERIC_VALUE, TEXT_VALUE, *PROVENANCE_COLUMNS)

EVENT_SCHEMA: dict[str, pl.DataType] = {
    SUBJECT_ID: pl.Int64(),
    TIME: pl.Datetime("us"),
    CODE: pl.String(),
    NUMERIC_VALUE: pl.Float32(),
    TEXT_VALUE: pl.String(),
    HADM_ID: pl.Int64(),
    STAY_ID: pl.Int64(),
    TABLE: pl.String(),
}

EVENT_ARROW_SCHEMA = pa.schema(
    [
        pa.field(SUBJECT_ID, pa.int64(), nullable=False),
        pa.field(TIME, pa.timestamp("us"), nullable=True),
        pa.field(CODE, pa.string(), nullable=False),
        pa.field(NUMERIC_VALUE, pa.float32()),
        pa.field(TEXT_VALUE, pa.large_string()),
        pa.field(HADM_ID, pa.int64()),
        pa.field(STAY_ID, pa.int64()),
        pa.field(TABLE, pa.string()),
    ]
)

# --- MEDS label and prediction columns (meds.LabelSchema) --------------------------------------
PREDICTION_TIME = meds.LabelSchema.prediction_time_name
BOOLEAN_VALUE = meds.LabelSchema.boolean_value_name
INTEGER_VALUE = meds.LabelSchema.integer_value_name
FLOAT_VALUE = meds.LabelSchema.float_value_name
CATEGORICAL_VALUE = meds.LabelSchema.categorical_value_name
LABEL_VALUE_COLUMNS = (BOOLEAN_VALUE, INTEGER_VALUE, FLOAT_VALUE, CATEGORICAL_VALUE)

# --- code metadata ------------------------------------------------------------------------------
DESCRIPTION = "description"
PARENT_CODES = "parent_codes"
CODE_COUNT = "n_events"  # extra column in codes.parquet: how often the code occurs

CODE_SEPARATOR = "//"
# Which prefixes hold labs, diagnoses, sex, ... is the dataset's vocabulary, not schema: see vocab/kinds.py.
BIRTH_CODE = meds.birth_code
DEATH_CODE = meds.death_code

# --- splits -------------------------------------------------------------------------------------
SPLIT = "split"
TRAIN = meds.train_split
TUNING = meds.tuning_split
HELD_OUT = meds.held_out_split
SPLITS = (TRAIN, TUNING, HELD_OUT)

# --- dataset layout -----------------------------------------------------------------------------
DATA_DIR = meds.data_subdirectory
METADATA_DIR = "metadata"
CODES_FILE = meds.code_metadata_filepath
DATASET_FILE = meds.dataset_metadata_filepath
SPLITS_FILE = meds.subject_splits_filepath
QUALITY_REPORT_FILE = "data_quality.json"
QUARANTINE_FILE = "quarantine.parquet"
FLAGGED_FILE = "flagged.parquet"  # rows kept with a recorded problem; same columns as the quarantine

# --- quarantine and flagged file columns ---------------------------------------------------------
Q_TABLE = "table"
Q_FILE = "file"
Q_ROW = "row"  # 1-based data row number in the source file (the header is not counted)
Q_REASON = "reason"
Q_FIELD = "field"
Q_VALUE = "value"
Q_RECORD = "record"  # the whole source row as JSON

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    Q_TABLE: pl.String(),
    Q_FILE: pl.String(),
    Q_ROW: pl.Int64(),
    Q_REASON: pl.String(),
    Q_FIELD: pl.String(),
    Q_VALUE: pl.String(),
    Q_RECORD: pl.String(),
}


def code_prefix(code: str) -> str:
    """The vocabulary part of a code: ``code_prefix("LAB//50912//mg/dL") == "LAB"``."""
    return code.split(CODE_SEPARATOR, 1)[0]
