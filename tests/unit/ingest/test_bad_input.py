"""Bad MIMIC-IV input: each quarantine reason from a row built for it, and clear errors for bad files.

Hospital side is ``ehrpredict.testing.minimal_hospital``: subject 1 (born 2100, anchor 50 in 2150;
admission 101), subject 2 (died in hospital 2160-03-12 08:00; admission 201), subject 3 (age grouped).
Row numbers are 1-based data rows (the header is not counted).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.errors import ConfigError, DataError, SchemaError
from ehrpredict.ingest.mimic4 import IngestConfig, ingest_mimic4
from ehrpredict.testing import (
    HEADERS,
    PATIENTS,
    Cell,
    csv_text,
    minimal_hospital,
    table_path,
    write_bytes,
    write_table,
    write_text,
)

CONFIG = IngestConfig(subjects_per_shard=2)
LAB: dict[str, Cell] = {"subject_id": 1, "hadm_id": 101, "itemid": 50912, "value": "1.1", "valuenum": 1.1,
                        "valueuom": "mg/dL"}  # creatinine; each test adds its charttime


def ingest(raw: Path, out: Path) -> tuple[dict[str, Any], pl.DataFrame]:
    result = ingest_mimic4(raw, out, CONFIG)
    return result.report, pl.read_parquet(out / S.QUARANTINE_FILE)


def quarantined(q: pl.DataFrame, table: str) -> list[tuple[object, ...]]:
    """(row, reason, field, value) of every quarantined row of ``table``, by row."""
    return q.filter(pl.col(S.Q_TABLE) == table).sort(S.Q_ROW).select(
        S.Q_ROW, S.Q_REASON, S.Q_FIELD, S.Q_VALUE
    ).rows()


def assert_accounted(report: dict[str, Any], q: pl.DataFrame, table: str, *, read: int, used: int) -> None:
    """Every row written is read, and is either used or quarantined (with a record in quarantine.parquet)."""
    t = report["tables"][table]
    n_records = q.filter(pl.col(S.Q_TABLE) == table).height
    assert (t["rows_read"], t["rows_used"], t["rows_quarantined"]) == (read, used, read - used)
    assert t["rows_read"] == t["rows_used"] + t["rows_quarantined"]
    assert n_records == t["rows_quarantined"] == sum(t["quarantined_by_reason"].values())


# --- one row per quarantine reason -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "rows", "field", "value"),
    [
        ("hosp/labevents", [{**LAB, "charttime": "2150-05-02 06:00:00"},
                            {**LAB, "charttime": "2150-13-02 06:00:00"}],           # month 13
         "charttime", "2150-13-02 06:00:00"),
        ("hosp/omr", [{"subject_id": 1, "chartdate": "2150-06-01", "result_name": "BMI (kg/m2)",
                       "result_value": "24.1"},
                      {"subject_id": 1, "chartdate": "06/02/2150", "result_name": "BMI (kg/m2)",
                       "result_value": "24.3"}],                                  # not ISO
         "chartdate", "06/02/2150"),
    ],
)
def test_unparseable_time(tmp_path: Path, table: str, rows: list[dict[str, Cell]], field: str,
                          value: str) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), table, rows)
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, table) == [(2, "unparseable time", field, value)]
    assert_accounted(report, q, table, read=2, used=1)


def test_unknown_subject(tmp_path: Path) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/labevents", [
        {**LAB, "charttime": "2150-05-02 06:00:00"},
        {**LAB, "subject_id": 99, "hadm_id": None, "charttime": "2150-05-02 06:00:00"},  # no patient 99
    ])
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/labevents") == [(2, "unknown subject (not in patients)", "subject_id", "99")]
    assert_accounted(report, q, "hosp/labevents", read=2, used=1)


@pytest.mark.parametrize(
    ("table", "rows", "field", "value"),
    [
        ("hosp/omr", [{"subject_id": 1, "chartdate": "2150-06-01", "result_name": "Weight (Lbs)",
                       "result_value": "150"},
                      {"subject_id": 1, "chartdate": "2150-06-02", "result_name": "Weight (Lbs)",
                       "result_value": "abc"}],
         "result_value", "abc"),
        ("hosp/omr", [{"subject_id": 1, "chartdate": "2150-06-01", "result_name": "Blood Pressure",
                       "result_value": "120/80"},
                      {"subject_id": 1, "chartdate": "2150-06-02", "result_name": "Blood Pressure",
                       "result_value": "120/"}],                          # diastolic missing
         "result_value", "120/"),
        ("icu/outputevents", [{"subject_id": 1, "hadm_id": 101, "stay_id": 501, "charttime":
                               "2150-05-02 06:00:00", "itemid": 226559, "value": 350, "valueuom": "ml"},
                              {"subject_id": 1, "hadm_id": 101, "stay_id": 501, "charttime":
                               "2150-05-02 07:00:00", "itemid": 226559, "value": "x", "valueuom": "ml"}],
         "value", "x"),
    ],
)
def test_non_numeric_value_where_one_is_required(tmp_path: Path, table: str, rows: list[dict[str, Cell]],
                                                 field: str, value: str) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), table, rows)
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, table) == [(2, "non-numeric value where one is required", field, value)]
    assert_accounted(report, q, table, read=2, used=1)


def test_event_before_birth(tmp_path: Path) -> None:
    # Subject 1: anchor_age 50 in 2150 → born 2100 (or late 2099: anchor_age is the age at *some* time
    # in anchor_year, so a year of slack is allowed before quarantining).
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/labevents", [
        {**LAB, "hadm_id": None, "charttime": "2099-06-01 08:00:00"},  # within the slack: kept
        {**LAB, "hadm_id": None, "charttime": "2098-12-31 23:00:00"},  # before 2099-01-01: quarantined
    ])
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/labevents") == [(2, "event before birth", None, None)]
    assert_accounted(report, q, "hosp/labevents", read=2, used=1)


def test_event_long_after_death_but_not_a_culture_stored_after_death(tmp_path: Path) -> None:
    # Subject 2 died 2160-03-12 08:00; events up to 2 days later (the grace) are kept.
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/labevents", [
        {**LAB, "subject_id": 2, "hadm_id": None, "charttime": "2160-03-14 07:00:00"},  # 1 h before limit
        {**LAB, "subject_id": 2, "hadm_id": None, "charttime": "2160-03-20 06:00:00"},  # 8 days after
    ])
    write_table(raw, "hosp/microbiologyevents", [
        # Drawn the day before death, result stored 4 days after it: valid, timed at storetime.
        {"microevent_id": 1, "subject_id": 2, "hadm_id": 201, "chartdate": "2160-03-11 00:00:00",
         "charttime": "2160-03-11 10:00:00", "spec_type_desc": "BLOOD CULTURE",
         "storedate": "2160-03-16 00:00:00", "storetime": "2160-03-16 11:00:00",
         "test_name": "Blood Culture, Routine", "org_name": "ESCHERICHIA COLI"},
    ])
    report, q = ingest(raw, tmp_path / "out")
    assert quarantined(q, "hosp/labevents") == [(2, "event long after death", None, None)]
    assert quarantined(q, "hosp/microbiologyevents") == []
    assert_accounted(report, q, "hosp/labevents", read=2, used=1)
    assert_accounted(report, q, "hosp/microbiologyevents", read=1, used=1)
    data = pl.read_parquet(tmp_path / "out" / S.DATA_DIR / "**" / "*.parquet")
    culture = data.filter(pl.col(S.TABLE) == "hosp/microbiologyevents")
    assert culture.select(S.SUBJECT_ID, S.TIME, S.CODE, S.TEXT_VALUE).rows() == [
        (2, datetime(2160, 3, 16, 11), "MICROBIOLOGY//BLOOD CULTURE//Blood Culture, Routine",
         "ESCHERICHIA COLI"),
    ]


def test_exact_duplicate_row_is_quarantined_once(tmp_path: Path) -> None:
    line = "1,1,101,7,50912,,2150-05-02 06:00:00,2150-05-02 07:00:00,1.1,1.1,mg/dL,0.5,1.2,,ROUTINE,\n"
    header = csv_text("hosp/labevents", [])
    write_text(minimal_hospital(tmp_path / "raw"), "hosp/labevents", header + line + line)
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/labevents") == [(2, "duplicate row", None, "same fields as row 1")]
    assert_accounted(report, q, "hosp/labevents", read=2, used=1)
    assert report["tables"]["hosp/labevents"]["events_written"] == 1  # one LAB event, not two


TWIN = {**LAB, "charttime": "2150-05-02 06:00:00", "storetime": "2150-05-02 07:00:00"}


def test_rows_differing_only_in_unmapped_columns_are_not_duplicates(tmp_path: Path) -> None:
    # Two specimens drawn at the same time with the same result: two lab events, not a duplicate line.
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/labevents", [
        {**TWIN, "labevent_id": 1, "specimen_id": 11},
        {**TWIN, "labevent_id": 2, "specimen_id": 12},
    ])
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/labevents") == []
    assert_accounted(report, q, "hosp/labevents", read=2, used=2)
    assert report["tables"]["hosp/labevents"]["events_written"] == 2


def test_quarantine_record_holds_the_whole_source_row(tmp_path: Path) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/labevents", [
        {**TWIN, "labevent_id": 3, "subject_id": 99, "comments": "hemolyzed"},  # unknown subject
    ])
    _, q = ingest(tmp_path / "raw", tmp_path / "out")
    record = json.loads(q.item(0, S.Q_RECORD))
    assert list(record) == list(HEADERS["hosp/labevents"])
    assert (record["labevent_id"], record["subject_id"], record["comments"]) == ("3", "99", "hemolyzed")


def test_duplicate_patients_row_does_not_duplicate_other_tables(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/patients", [PATIENTS[0], PATIENTS[0], PATIENTS[1], PATIENTS[2]])
    result = ingest_mimic4(raw, tmp_path / "out", CONFIG)
    q = pl.read_parquet(tmp_path / "out" / S.QUARANTINE_FILE)
    # patients is checked whole: a later row repeating a subject_id (here an exact copy) is quarantined.
    assert quarantined(q, "hosp/patients") == [(2, "duplicate subject_id in patients", "subject_id", "1")]
    # Admission 101 of subject 1 gives 8 events (admission, discharge, ED registration and ED out,
    # insurance, language, marital status, race); 201 gives 5 (no marital status, no ED times);
    # 301 gives 3 (admission, discharge, insurance).
    tables: Any = result.report["tables"]
    assert tables["hosp/admissions"]["events_written"] == 8 + 5 + 3
    assert result.n_subjects == 3


OMR_HEADER = "subject_id,chartdate,seq_num,result_name,result_value\n"
OMR_ROWS = (
    "1,2150-06-01,1,Weight (Lbs),150\n"          # row 1: fine
    "1,2150-06-02,1,Weight (Lbs),151,EXTRA\n"    # row 2: six fields, header has five
    "1,2150-06-03,1,Weight (Lbs),abc\n"          # row 3: non-numeric weight
)


def test_malformed_csv_row_is_quarantined_with_its_text(tmp_path: Path) -> None:
    write_text(minimal_hospital(tmp_path / "raw"), "hosp/omr", OMR_HEADER + OMR_ROWS)
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    malformed = q.filter(pl.col(S.Q_REASON) == "malformed CSV row (wrong number of fields)")
    assert malformed.select(S.Q_TABLE, S.Q_FILE, S.Q_FIELD, S.Q_RECORD).rows() == [
        ("hosp/omr", "hosp/omr.csv.gz", None, "1,2150-06-02,1,Weight (Lbs),151,EXTRA"),
    ]
    assert report["tables"]["hosp/omr"]["quarantined_by_reason"] == {
        "malformed CSV row (wrong number of fields)": 1, "non-numeric value where one is required": 1,
    }
    assert_accounted(report, q, "hosp/omr", read=3, used=1)


def test_malformed_csv_row_reports_its_row_number(tmp_path: Path) -> None:
    write_text(minimal_hospital(tmp_path / "raw"), "hosp/omr", OMR_HEADER + OMR_ROWS)
    _, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/omr")[0] == (2, "malformed CSV row (wrong number of fields)", None, None)


def test_rows_after_a_malformed_row_keep_their_row_numbers(tmp_path: Path) -> None:
    write_text(minimal_hospital(tmp_path / "raw"), "hosp/omr", OMR_HEADER + OMR_ROWS)
    _, q = ingest(tmp_path / "raw", tmp_path / "out")
    bad_weight = q.filter(pl.col(S.Q_REASON) == "non-numeric value where one is required")
    assert bad_weight.select(S.Q_ROW, S.Q_VALUE).rows() == [(3, "abc")]


def test_diagnosis_of_unknown_admission(tmp_path: Path) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/diagnoses_icd", [
        {"subject_id": 1, "hadm_id": 101, "seq_num": 1, "icd_code": "4280", "icd_version": 9},
        {"subject_id": 1, "hadm_id": 999, "seq_num": 2, "icd_code": "4019", "icd_version": 9},  # no 999
    ])
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/diagnoses_icd") == [
        (2, "unknown admission (hadm_id not in admissions)", "hadm_id", "999"),
    ]
    assert_accounted(report, q, "hosp/diagnoses_icd", read=2, used=1)


# --- errors: typed, naming the file and what was expected ----------------------------------------


def raises(raw: Path, out: Path, error: type[Exception], *needles: str) -> None:
    """The ingestion fails with ``error`` whose message says what was expected and names ``needles``."""
    with pytest.raises(error) as info:
        ingest_mimic4(raw, out, CONFIG)
    message = str(info.value)
    for needle in ("expected", *needles):
        assert needle in message, f"{needle!r} not in {message!r}"


def test_missing_patients_table(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    table_path(raw, "hosp/patients").unlink()
    raises(raw, tmp_path / "out", DataError, "hosp/patients.csv.gz")


def test_missing_required_columns_are_all_reported(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    admissions = table_path(raw, "hosp/admissions")
    header = csv_text("hosp/admissions", []).strip().split(",")
    write_table(raw, "hosp/admissions", [], columns=[c for c in header if c != "dischtime"])
    write_table(raw, "hosp/labevents", [], columns=["subject_id", "charttime", "valuenum"])  # no itemid
    raises(raw, tmp_path / "out", SchemaError, str(admissions), "dischtime",
           str(table_path(raw, "hosp/labevents")), "itemid")


@pytest.mark.parametrize("table", ["hosp/patients", "hosp/labevents"])
def test_corrupt_gzip(tmp_path: Path, table: str) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    path = write_bytes(table_path(raw, table), b"this is not gzip at all\n", gz=False)
    raises(raw, tmp_path / "out", DataError, str(path))


def test_raw_dir_that_is_not_mimic(tmp_path: Path) -> None:
    (tmp_path / "downloads" / "photos").mkdir(parents=True)
    (tmp_path / "downloads" / "notes.txt").write_text("hello\n")
    raises(tmp_path / "downloads", tmp_path / "out", DataError, str(tmp_path / "downloads"),
           "hosp/patients.csv.gz")


def test_raw_dir_missing(tmp_path: Path) -> None:
    raises(tmp_path / "nowhere", tmp_path / "out", DataError, str(tmp_path / "nowhere"))


def test_non_empty_out_dir_without_overwrite_is_left_alone(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "precious.txt").write_text("keep me\n")
    raises(raw, tmp_path / "out", ConfigError, str(tmp_path / "out"), "--overwrite")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["precious.txt"]
    result = ingest_mimic4(raw, tmp_path / "out", CONFIG, overwrite=True)
    assert result.n_subjects == 3
    assert not (tmp_path / "out" / "precious.txt").exists()


def write_truncated_labevents(raw: Path) -> Path:
    """A labevents.csv.gz cut off three quarters of the way: its header reads fine (so the run passes
    the header checks and starts writing), reading the rows fails."""
    rows = [{**LAB, "labevent_id": i, "charttime": f"2150-05-02 {i // 60 % 24:02d}:{i % 60:02d}:00"}
            for i in range(10_000)]
    data = gzip.compress(csv_text("hosp/labevents", rows).encode(), mtime=0)
    path = write_bytes(table_path(raw, "hosp/labevents"), data[: len(data) * 3 // 4], gz=False)
    with gzip.open(path, "rt") as f:
        assert f.readline().startswith("labevent_id,subject_id,")
    return path


def leftovers(parent: Path) -> Sequence[str]:
    """Hidden staging (``.out.partial-*``) or swapped-out (``.out.old-*``) directories beside OUT_DIR."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".out."))


def test_failure_mid_run_leaves_no_out_dir(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/diagnoses_icd", [  # a good table streamed alongside the broken one
        {"subject_id": 1, "hadm_id": 101, "seq_num": 1, "icd_code": "4280", "icd_version": 9},
    ])
    path = write_truncated_labevents(raw)
    # "well-formed CSV" is the streaming error: raised while rows are read into the staging directory.
    with pytest.raises(DataError, match=r"labevents\.csv\.gz: expected a well-formed CSV file"):
        ingest_mimic4(raw, tmp_path / "out", CONFIG)
    assert path.exists()
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


def test_failed_overwrite_keeps_the_previous_dataset(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    ingest_mimic4(raw, tmp_path / "out", CONFIG)
    before = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*"))
    write_truncated_labevents(raw)
    with pytest.raises(DataError):
        ingest_mimic4(raw, tmp_path / "out", CONFIG, overwrite=True)
    assert sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*")) == before
    assert leftovers(tmp_path) == []


def test_cli_reports_bad_input_with_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not-mimic"
    bad.mkdir()
    out = tmp_path / "out"
    assert main(["ingest", "mimic4", str(bad), str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: expected a MIMIC-IV directory")
    assert str(bad) in captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()


def test_diagnosis_whose_admission_belongs_to_another_subject(tmp_path: Path) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/diagnoses_icd", [
        {"subject_id": 1, "hadm_id": 101, "seq_num": 1, "icd_code": "4280", "icd_version": 9},
        {"subject_id": 1, "hadm_id": 201, "seq_num": 2, "icd_code": "4019", "icd_version": 9},  # 201 is subject 2's
    ])
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/diagnoses_icd") == [(2, "admission belongs to another subject", "hadm_id", "201")]
    assert_accounted(report, q, "hosp/diagnoses_icd", read=2, used=1)


def test_missing_and_unparseable_subject_ids_are_told_apart(tmp_path: Path) -> None:
    write_table(minimal_hospital(tmp_path / "raw"), "hosp/labevents", [
        {**LAB, "charttime": "2150-05-02 06:00:00"},
        {**LAB, "subject_id": None, "charttime": "2150-05-02 07:00:00"},   # row 2: empty
        {**LAB, "subject_id": "1x", "charttime": "2150-05-02 08:00:00"},   # row 3: not an integer
        {**LAB, "subject_id": 77, "charttime": "2150-05-02 09:00:00"},     # row 4: no such patient
    ])
    report, q = ingest(tmp_path / "raw", tmp_path / "out")
    assert quarantined(q, "hosp/labevents") == [
        (2, "missing subject_id", "subject_id", None),
        (3, "unparseable integer", "subject_id", "1x"),
        (4, "unknown subject (not in patients)", "subject_id", "77"),
    ]
    assert_accounted(report, q, "hosp/labevents", read=4, used=1)
