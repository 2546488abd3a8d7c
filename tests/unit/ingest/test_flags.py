"""Rows kept with a recorded problem (flags), intervals that end before they start, and rows that refer
to a quarantined admission or stay. Rows are in the real MIMIC-IV column layout.

Hospital side is ``ehrpredict.testing.minimal_hospital``: subject 1 (admission 101, 2150-05-01 10:00 →
2150-05-05 12:00), subject 2 (admission 201, died 2160-03-12 08:00), subject 3 (admission 301, 2170).
Row numbers are 1-based data rows (the header is not counted).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.ingest.mimic4 import IngestConfig, ingest_mimic4
from ehrpredict.testing import ADMISSIONS, HEADERS, Cell, Row, minimal_hospital, write_table, write_text

T = datetime.fromisoformat
CONFIG = IngestConfig(subjects_per_shard=2)
UNPARSEABLE = "unparseable number in an optional field (row kept without it)"
ENDS_EARLY = "interval ends before it starts"


class Output:
    """What one ingestion wrote: the report, the events, the quarantine and the flag records."""

    def __init__(self, out: Path) -> None:
        self.report: dict[str, Any] = json.loads((out / S.QUALITY_REPORT_FILE).read_text())
        self.data = pl.read_parquet(out / S.DATA_DIR / "**" / "*.parquet")
        self.quarantine = pl.read_parquet(out / S.QUARANTINE_FILE)
        self.flagged = pl.read_parquet(out / S.FLAGGED_FILE)

    def table(self, name: str) -> dict[str, Any]:
        return self.report["tables"][name]

    def quarantined(self, table: str) -> list[tuple[object, ...]]:
        """(row, reason, field, value) of every quarantined row of ``table``, by row."""
        return _records(self.quarantine, table)

    def flags(self, table: str) -> list[tuple[object, ...]]:
        """(row, reason, field, value) of every flag of ``table``, by row."""
        return _records(self.flagged, table)

    def events(self, table: str) -> pl.DataFrame:
        return self.data.filter(pl.col(S.TABLE) == table)


def _records(records: pl.DataFrame, table: str) -> list[tuple[object, ...]]:
    rows = records.filter(pl.col(S.Q_TABLE) == table).sort(S.Q_ROW, maintain_order=True)
    return rows.select(S.Q_ROW, S.Q_REASON, S.Q_FIELD, S.Q_VALUE).rows()


def ingest(raw: Path, out: Path) -> Output:
    ingest_mimic4(raw, out, CONFIG)
    return Output(out)


def assert_accounted(o: Output, table: str, *, read: int, used: int, flagged: int) -> None:
    """Every row is used or quarantined; flagged rows are among the used ones, each flag in the file."""
    t = o.table(table)
    assert (t["rows_read"], t["rows_used"], t["rows_quarantined"]) == (read, used, read - used)
    assert t["rows_flagged"] == flagged
    flags = o.flagged.filter(pl.col(S.Q_TABLE) == table)
    assert flags.height == sum(t["flagged_by_reason"].values())
    assert flags.get_column(S.Q_ROW).n_unique() == t["rows_flagged"]
    quarantine = o.quarantine.filter(pl.col(S.Q_TABLE) == table)
    assert quarantine.height == t["rows_quarantined"]
    assert not set(flags.get_column(S.Q_ROW)) & set(quarantine.get_column(S.Q_ROW))


# --- flags ------------------------------------------------------------------------------------------

# Like demo subject 10019003, admission 26529390: registered in the ED 21 h after the admission.
LATE_ED: Row = {
    "subject_id": 1, "hadm_id": 102, "admittime": "2150-08-17 00:02:00", "dischtime": "2150-08-20 14:00:00",
    "admission_type": "EW EMER.", "admission_location": "EMERGENCY ROOM", "discharge_location": "HOME",
    "insurance": "Medicare", "edregtime": "2150-08-17 21:03:00", "edouttime": "2150-08-18 03:03:00",
    "hospital_expire_flag": 0,
}


def test_negative_ed_duration_is_kept_and_flagged(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/admissions", [*ADMISSIONS, LATE_ED])
    o = ingest(raw, tmp_path / "out")
    assert o.flags("hosp/admissions") == [
        (4, "edregtime after admittime (negative ED duration)", "edregtime", "2150-08-17 21:03:00"),
    ]
    assert_accounted(o, "hosp/admissions", read=4, used=4, flagged=1)
    record = json.loads(o.flagged.item(0, S.Q_RECORD))
    assert (record["hadm_id"], record["admittime"]) == ("102", "2150-08-17 00:02:00")
    # Still an admission, and the ED stay is reported as it was recorded: 21 h 1 min *after* admission.
    registration = o.events("hosp/admissions").filter(
        (pl.col(S.HADM_ID) == 102) & (pl.col(S.CODE) == "ED_REGISTRATION")
    )
    assert registration.get_column(S.TIME).to_list() == [T("2150-08-17 00:02:00")]
    assert registration.get_column(S.NUMERIC_VALUE).to_list() == [pytest.approx(-(21 + 1 / 60))]


LAB: dict[str, Cell] = {"subject_id": 1, "hadm_id": 101, "itemid": 50912, "valueuom": "mg/dL",
                        "charttime": "2150-05-02 06:00:00", "storetime": "2150-05-02 07:00:00"}
ICU: dict[str, Cell] = {"subject_id": 1, "hadm_id": 101, "stay_id": 501}
ICUSTAY: dict[str, Cell] = {**ICU, "first_careunit": "MICU", "last_careunit": "MICU",
                            "intime": "2150-05-01 11:00:00", "outtime": "2150-05-05 10:00:00"}
CHART: dict[str, Cell] = {**ICU, "charttime": "2150-05-02 08:00:00", "storetime": "2150-05-02 08:05:00",
                          "itemid": 220045, "valueuom": "bpm"}
INPUT: dict[str, Cell] = {**ICU, "starttime": "2150-05-02 09:00:00", "endtime": "2150-05-02 10:00:00",
                          "storetime": "2150-05-02 09:02:00", "itemid": 225158, "amountuom": "ml"}


@pytest.mark.parametrize(
    ("table", "rows", "field", "value", "kept"),
    [
        # A creatinine of "12,5abc": the row stays (its text is the event's text), the number is absent.
        ("hosp/labevents", [{**LAB, "value": "1.1", "valuenum": 1.1},
                            {**LAB, "value": "12,5abc", "valuenum": "12,5abc"}],
         "valuenum", "12,5abc", (None, "12,5abc")),
        ("icu/chartevents", [{**CHART, "value": "88", "valuenum": 88},
                             {**CHART, "value": "9O", "valuenum": "9O"}],                # letter O
         "valuenum", "9O", (None, "9O")),
        # An infusion whose amount does not parse: its start and its (valueless) end are still events.
        ("icu/inputevents", [{**INPUT, "amount": 500}, {**INPUT, "amount": "5OO"}],
         "amount", "5OO", (None, None)),
    ],
)
def test_unparseable_optional_number_is_flagged_not_lost(
    tmp_path: Path, table: str, rows: list[Row], field: str, value: str, kept: tuple[object, object]
) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "icu/icustays", [ICUSTAY])
    write_table(raw, table, rows)
    o = ingest(raw, tmp_path / "out")
    assert o.flags(table) == [(2, UNPARSEABLE, field, value)]
    assert o.quarantined(table) == []
    assert_accounted(o, table, read=2, used=2, flagged=1)
    assert o.table(table)["unparseable_by_field"] == {field: 1}
    valued = o.events(table).filter(~pl.col(S.CODE).str.contains("_START"))
    assert valued.select(S.NUMERIC_VALUE, S.TEXT_VALUE).rows()[1] == kept


EDSTAY: Row = {"subject_id": 1, "hadm_id": 101, "stay_id": 9001, "intime": "2150-05-01 07:00:00",
               "outtime": "2150-05-01 10:00:00", "arrival_transport": "AMBULANCE", "disposition": "ADMITTED"}


def test_unparseable_ed_vitals_are_flagged_per_field_and_kept_as_text(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "ed/edstays", [EDSTAY])
    write_table(raw, "ed/triage", [
        # row 1: heart rate "1l2" (letter l), pain "unable", acuity "2?": three flags on one row
        {"subject_id": 1, "stay_id": 9001, "temperature": 98.5, "heartrate": "1l2", "resprate": 22,
         "o2sat": 94, "sbp": 150, "dbp": 90, "pain": "unable", "acuity": "2?", "chiefcomplaint": "Dyspnea"},
    ])
    write_table(raw, "ed/vitalsign", [
        {"subject_id": 1, "stay_id": 9001, "charttime": "2150-05-01 08:30:00", "heartrate": 98,
         "sbp": "13O", "dbp": 80, "pain": "4"},                                        # row 1: letter O
    ])
    o = ingest(raw, tmp_path / "out")
    assert o.flags("ed/triage") == [
        (1, UNPARSEABLE, "heartrate", "1l2"), (1, UNPARSEABLE, "pain", "unable"), (1, UNPARSEABLE, "acuity", "2?"),
    ]
    assert o.flags("ed/vitalsign") == [(1, UNPARSEABLE, "sbp", "13O")]
    assert_accounted(o, "ed/triage", read=1, used=1, flagged=1)
    assert o.table("ed/triage")["flagged_by_reason"] == {UNPARSEABLE: 3}
    assert o.table("ed/triage")["unparseable_by_field"] == {"acuity": 1, "heartrate": 1, "pain": 1}
    triage = dict(o.events("ed/triage").select(S.CODE, S.TEXT_VALUE).rows())
    # The text of a vital that is not a number stays as the event's text; acuity has no event.
    assert (triage["ED_TRIAGE//heartrate"], triage["ED_TRIAGE//pain"]) == ("1l2", "unable")
    assert "ED_TRIAGE//acuity" not in triage


def test_unparseable_required_numbers_are_counted_by_field(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/omr", [
        {"subject_id": 1, "chartdate": "2150-06-01", "seq_num": 1, "result_name": "Weight (Lbs)",
         "result_value": "150"},
        {"subject_id": 1, "chartdate": "2150-06-02", "seq_num": 1, "result_name": "Weight (Lbs)",
         "result_value": "15O"},
    ])
    o = ingest(raw, tmp_path / "out")
    assert o.quarantined("hosp/omr") == [(2, "non-numeric value where one is required", "result_value", "15O")]
    assert o.table("hosp/omr")["unparseable_by_field"] == {"result_value": 1}
    assert_accounted(o, "hosp/omr", read=2, used=1, flagged=0)


def test_terminal_summary_lists_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/admissions", [*ADMISSIONS, LATE_ED])
    assert main(["ingest", "mimic4", str(raw), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "1  flagged: edregtime after admittime (negative ED duration)" in out
    assert "1 rows kept but flagged" in out
    assert str(tmp_path / "out" / S.FLAGGED_FILE) in out


# --- intervals that end before they start -----------------------------------------------------------

BACKWARDS_ADMISSION: Row = {**LATE_ED, "admittime": "2150-09-01 10:00:00", "dischtime": "2150-08-31 09:00:00",
                            "edregtime": None, "edouttime": None}


@pytest.mark.parametrize(
    ("table", "rows", "field", "value"),
    [
        ("hosp/admissions", [*ADMISSIONS, BACKWARDS_ADMISSION], "dischtime", "2150-08-31 09:00:00"),
        ("icu/icustays", [ICUSTAY, {**ICUSTAY, "stay_id": 502, "intime": "2150-05-03 10:00:00",
                                    "outtime": "2150-05-03 09:00:00"}], "outtime", "2150-05-03 09:00:00"),
        ("hosp/transfers", [
            {"subject_id": 1, "hadm_id": 101, "transfer_id": 1, "eventtype": "admit", "careunit": "Medicine",
             "intime": "2150-05-01 10:00:00", "outtime": "2150-05-02 10:00:00"},
            {"subject_id": 1, "hadm_id": 101, "transfer_id": 2, "eventtype": "transfer", "careunit": "MICU",
             "intime": "2150-05-02 10:00:00", "outtime": "2150-05-02 09:59:00"}],
         "outtime", "2150-05-02 09:59:00"),
        ("ed/edstays", [EDSTAY, {**EDSTAY, "stay_id": 9002, "intime": "2150-06-01 20:15:00",
                                 "outtime": "2150-06-01 01:45:00", "hadm_id": None}],
         "outtime", "2150-06-01 01:45:00"),
    ],
)
def test_interval_that_ends_before_it_starts_is_quarantined(
    tmp_path: Path, table: str, rows: list[Row], field: str, value: str
) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, table, rows)
    o = ingest(raw, tmp_path / "out")
    n = len(rows)
    assert o.quarantined(table) == [(n, ENDS_EARLY, field, value)]
    assert_accounted(o, table, read=n, used=n - 1, flagged=0)


# --- rows that refer to a quarantined admission or stay --------------------------------------------


def test_rows_of_a_quarantined_admission(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/admissions", [*ADMISSIONS, BACKWARDS_ADMISSION])         # 102 is quarantined
    # Timed at the admission's discharge: without the admission they have no time.
    write_table(raw, "hosp/diagnoses_icd", [
        {"subject_id": 1, "hadm_id": 101, "seq_num": 1, "icd_code": "4280", "icd_version": 9},
        {"subject_id": 1, "hadm_id": 102, "seq_num": 1, "icd_code": "4019", "icd_version": 9},
    ])
    write_table(raw, "hosp/drgcodes", [
        {"subject_id": 1, "hadm_id": 102, "drg_type": "HCFA", "drg_code": 291,
         "description": "HEART FAILURE & SHOCK W MCC"},
    ])
    # Standing on their own: kept, without the admission.
    write_table(raw, "hosp/labevents", [
        {**LAB, "value": "1.1", "valuenum": 1.1},
        {**LAB, "hadm_id": 102, "charttime": "2150-08-31 06:00:00", "storetime": "2150-08-31 07:00:00",
         "value": "1.4", "valuenum": 1.4},
    ])
    write_table(raw, "icu/icustays", [{**ICUSTAY, "hadm_id": 102, "stay_id": 502,
                                       "intime": "2150-08-31 02:00:00", "outtime": "2150-08-31 08:00:00"}])
    o = ingest(raw, tmp_path / "out")
    assert o.quarantined("hosp/admissions") == [(4, ENDS_EARLY, "dischtime", "2150-08-31 09:00:00")]
    assert o.quarantined("hosp/diagnoses_icd") == [(2, "admission was quarantined", "hadm_id", "102")]
    assert o.quarantined("hosp/drgcodes") == [(1, "admission was quarantined", "hadm_id", "102")]
    cleared = "admission was quarantined (hadm_id cleared)"
    assert o.flags("hosp/labevents") == [(2, cleared, "hadm_id", "102")]
    assert o.flags("icu/icustays") == [(1, cleared, "hadm_id", "102")]
    assert_accounted(o, "hosp/diagnoses_icd", read=2, used=1, flagged=0)
    assert_accounted(o, "hosp/labevents", read=2, used=2, flagged=1)
    labs = o.events("hosp/labevents").sort(S.TIME)
    assert labs.select(S.TIME, S.NUMERIC_VALUE, S.HADM_ID).rows() == [
        (T("2150-05-02 07:00:00"), pytest.approx(1.1), 101),
        (T("2150-08-31 07:00:00"), pytest.approx(1.4), None),
    ]
    assert o.events("icu/icustays").select(S.CODE, S.HADM_ID, S.STAY_ID).rows() == [
        ("ICU_ADMISSION//MICU", None, 502), ("ICU_DISCHARGE//MICU", None, 502),
    ]
    assert not o.data.filter(pl.col(S.HADM_ID) == 102).height, "no event points at the quarantined admission"


def test_rows_of_a_quarantined_icu_stay(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "icu/icustays", [ICUSTAY, {**ICUSTAY, "stay_id": 502, "intime": "2150-05-03 10:00:00",
                                                "outtime": "2150-05-03 09:00:00"}])  # 502 is quarantined
    write_table(raw, "icu/chartevents", [
        {**CHART, "value": "88", "valuenum": 88},
        {**CHART, "stay_id": 502, "value": "91", "valuenum": 91},
    ])
    write_table(raw, "icu/inputevents", [{**INPUT, "stay_id": 502, "amount": 500}])
    o = ingest(raw, tmp_path / "out")
    cleared = "ICU stay was quarantined (stay_id cleared)"
    assert o.flags("icu/chartevents") == [(2, cleared, "stay_id", "502")]
    assert o.flags("icu/inputevents") == [(1, cleared, "stay_id", "502")]
    assert_accounted(o, "icu/chartevents", read=2, used=2, flagged=1)
    assert o.events("icu/chartevents").sort(S.NUMERIC_VALUE).select(S.NUMERIC_VALUE, S.HADM_ID, S.STAY_ID).rows() \
        == [(88.0, 101, 501), (91.0, 101, None)]
    assert o.events("icu/inputevents").get_column(S.STAY_ID).to_list() == [None, None]


def test_rows_of_a_quarantined_ed_stay(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "ed/edstays", [EDSTAY, {**EDSTAY, "stay_id": 9002, "hadm_id": None,
                                             "intime": "2150-06-01 20:15:00", "outtime": "2150-06-01 01:45:00"}])
    write_table(raw, "ed/triage", [
        {"subject_id": 1, "stay_id": 9001, "heartrate": 80, "acuity": 3, "chiefcomplaint": "Cough"},
        {"subject_id": 1, "stay_id": 9002, "heartrate": 70, "acuity": 4, "chiefcomplaint": "Rash"},
    ])
    write_table(raw, "ed/diagnosis", [
        {"subject_id": 1, "stay_id": 9002, "seq_num": 1, "icd_code": "7823", "icd_version": 9,
         "icd_title": "EDEMA"},
    ])
    write_table(raw, "ed/vitalsign", [
        {"subject_id": 1, "stay_id": 9002, "charttime": "2150-06-01 21:00:00", "heartrate": 72},
    ])
    o = ingest(raw, tmp_path / "out")
    assert o.quarantined("ed/edstays") == [(2, ENDS_EARLY, "outtime", "2150-06-01 01:45:00")]
    assert o.quarantined("ed/triage") == [(2, "ED stay was quarantined", "stay_id", "9002")]
    assert o.quarantined("ed/diagnosis") == [(1, "ED stay was quarantined", "stay_id", "9002")]
    assert o.flags("ed/vitalsign") == [(1, "ED stay was quarantined (stay_id cleared)", "stay_id", "9002")]
    assert_accounted(o, "ed/vitalsign", read=1, used=1, flagged=1)
    assert set(o.events("ed/vitalsign").get_column(S.STAY_ID).to_list()) == {None}


def test_a_flagged_row_that_duplicates_an_earlier_row_is_quarantined_and_unflagged(tmp_path: Path) -> None:
    # Rows 1 and 2 are identical (both with an unparseable valuenum); row 2 is quarantined as a
    # duplicate when shards are finalized, so only row 1 stays flagged.
    line = "1,1,101,7,50912,,2150-05-02 06:00:00,2150-05-02 07:00:00,1.1x,1.1x,mg/dL,0.5,1.2,,ROUTINE,\n"
    raw = minimal_hospital(tmp_path / "raw")
    header = ",".join(HEADERS["hosp/labevents"]) + "\n"
    write_text(raw, "hosp/labevents", header + line + line)
    o = ingest(raw, tmp_path / "out")
    assert o.quarantined("hosp/labevents") == [(2, "duplicate row", None, "same fields as row 1")]
    assert o.flags("hosp/labevents") == [(1, UNPARSEABLE, "valuenum", "1.1x")]
    assert_accounted(o, "hosp/labevents", read=2, used=1, flagged=1)
    assert o.table("hosp/labevents")["flagged_by_reason"] == {UNPARSEABLE: 1}
