import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.evaluation.subgroups import subgroups
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS


def test_attributes_are_the_last_values_known_at_prediction_time(tmp_path: Path) -> None:
    rows = [
        (1, None, "GENDER//F"), (1, datetime(2080, 1, 1), "MEDS_BIRTH"),
        (1, datetime(2150, 1, 1), "INSURANCE//Medicaid"), (1, datetime(2150, 6, 1), "INSURANCE//Medicare"),
        (2, datetime(2120, 1, 1), "MEDS_BIRTH"), (2, datetime(2150, 1, 1), "RACE//WHITE"),
    ]
    frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String},
                         orient="row")
    (tmp_path / "data" / "train").mkdir(parents=True)
    pq.write_table(frame.to_arrow(), tmp_path / "data" / "train" / "0.parquet")
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 1, 2], "prediction_time": [
        datetime(2150, 3, 1),   # subject 1, aged 70, still on Medicaid (Medicare starts later)
        datetime(2150, 7, 1),   # subject 1 after the switch
        datetime(2150, 3, 1),   # subject 2, aged 30, sex and insurance never recorded
    ]})
    assert subgroups(tmp_path, labels).rows() == [
        ("F", "65-79", "unknown", "Medicaid"),
        ("F", "65-79", "unknown", "Medicare"),
        ("unknown", "18-44", "WHITE", "unknown"),
    ]


def test_the_age_band_uses_completed_years_like_the_tasks_min_age(tmp_path: Path) -> None:
    # Born 2100-06-15: on 2145-06-14 the patient is 44 (not 45, as a year difference says), on the
    # birthday 45; the task's min_age and the text's "Age:" use the same age (ehrpredict.age).
    frame = pl.DataFrame([(1, datetime(2100, 6, 15), "MEDS_BIRTH")],
                         schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String}, orient="row")
    (tmp_path / "data" / "train").mkdir(parents=True)
    pq.write_table(frame.to_arrow(), tmp_path / "data" / "train" / "0.parquet")
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 1], "prediction_time": [datetime(2145, 6, 14, 23), datetime(2145, 6, 15)]})
    assert [row[1] for row in subgroups(tmp_path, labels).rows()] == ["18-44", "45-64"]


def test_attributes_come_from_the_prefixes_the_dataset_declares(tmp_path: Path) -> None:
    # Another ETL's vocabulary: sex under SEX//, insurance under PAYER//, race not recorded. The codes
    # ehrpredict's own ingestion would use (GENDER//, RACE//) mean nothing here.
    rows = [
        (1, None, "SEX//female"), (1, None, "GENDER//M"), (1, datetime(2080, 1, 1), "MEDS_BIRTH"),
        (1, datetime(2150, 1, 1), "PAYER//Medicare"), (1, datetime(2150, 1, 1), "RACE//WHITE"),
    ]
    frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String},
                         orient="row")
    (tmp_path / "data" / "train").mkdir(parents=True)
    pq.write_table(frame.to_arrow(), tmp_path / "data" / "train" / "0.parquet")
    (tmp_path / "metadata").mkdir()
    declared = {"sex": "SEX", "race": None, "insurance": "PAYER"}
    (tmp_path / S.DATASET_FILE).write_text(json.dumps({"ehrpredict": {"code_kinds": declared}}))
    labels = pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": [datetime(2150, 3, 1)]})
    assert subgroups(tmp_path, labels).rows() == [("female", "65-79", "unknown", "Medicare")]
    # kinds passed in win over the dataset's: here ehrpredict's own
    assert subgroups(tmp_path, labels, kinds=DEFAULT_CODE_KINDS).rows() == [("M", "65-79", "WHITE", "unknown")]
