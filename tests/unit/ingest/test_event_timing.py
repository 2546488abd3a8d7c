"""When ICU interval and medication events become known: never before their row was stored, entered or
verified. Rows are in the real MIMIC-IV 2.2 column layout; every expected time is written by hand.

Hospital side is ``ehrpredict.testing.minimal_hospital``: subject 1, admission 101 from 2150-05-01 10:00
to 2150-05-05 12:00, here with ICU stay 501 from 2150-05-01 11:00 to 2150-05-05 10:00.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.ingest.mimic4 import IngestConfig, ingest_mimic4
from ehrpredict.ingest.mimic4_common import TimeIndex
from ehrpredict.testing import Row, minimal_hospital, write_table

T = datetime.fromisoformat
CONFIG = IngestConfig(subjects_per_shard=2)
ICU = {"subject_id": 1, "hadm_id": 101, "stay_id": 501}
ICUSTAY: Row = {**ICU, "first_careunit": "Medical Intensive Care Unit (MICU)",
                "last_careunit": "Medical Intensive Care Unit (MICU)", "intime": "2150-05-01 11:00:00",
                "outtime": "2150-05-05 10:00:00", "los": 3.958}


def ingest(raw: Path, out: Path) -> tuple[dict[str, Any], pl.DataFrame]:
    """The report and the events of one ingestion."""
    result = ingest_mimic4(raw, out, CONFIG)
    return result.report, pl.read_parquet(out / S.DATA_DIR / "**" / "*.parquet")


def timeline(data: pl.DataFrame, table: str) -> list[tuple[object, ...]]:
    """(time, code, numeric value) of a table's events, in time order."""
    rows = data.filter(pl.col(S.TABLE) == table).sort(S.TIME, S.CODE)
    return rows.select(S.TIME, S.CODE, S.NUMERIC_VALUE).rows()


def test_icu_procedure_events_are_not_known_before_they_were_stored(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "icu/icustays", [ICUSTAY])
    write_table(raw, "icu/procedureevents", [
        # Like demo subject 10007818, stay 32359580: ventilation charted when it ended, weeks after it
        # began. Start and duration are both known only at storetime 05-04 17:39.
        {**ICU, "starttime": "2150-05-01 12:49:00", "endtime": "2150-05-04 17:00:00",
         "storetime": "2150-05-04 17:39:00", "itemid": 225792, "value": 4331, "valueuom": "min",
         "ordercategoryname": "Ventilation", "statusdescription": "FinishedRunning"},
        # Dialysis charted when it started: start at 05-02 12:23, duration at its end 05-03 01:11.
        {**ICU, "starttime": "2150-05-02 12:23:00", "endtime": "2150-05-03 01:11:00",
         "storetime": "2150-05-02 12:23:00", "itemid": 225802, "value": 768, "valueuom": "min",
         "ordercategoryname": "Dialysis", "statusdescription": "FinishedRunning"},
        # A line stored 57.047 s after it was removed (MIMIC writes fractional seconds here).
        {**ICU, "starttime": "2150-05-01 22:30:00", "endtime": "2150-05-04 00:27:00",
         "storetime": "2150-05-04 00:27:57.047", "itemid": 224263, "value": 3477, "valueuom": "min",
         "ordercategoryname": "Invasive Lines", "statusdescription": "FinishedRunning"},
    ])
    report, data = ingest(raw, tmp_path / "out")
    assert timeline(data, "icu/procedureevents") == [
        (T("2150-05-02 12:23:00"), "ICU_PROCEDURE_START//225802", None),
        (T("2150-05-03 01:11:00"), "ICU_PROCEDURE//225802//min", 768.0),
        (T("2150-05-04 00:27:57.047"), "ICU_PROCEDURE//224263//min", 3477.0),
        (T("2150-05-04 00:27:57.047"), "ICU_PROCEDURE_START//224263", None),
        (T("2150-05-04 17:39:00"), "ICU_PROCEDURE//225792//min", 4331.0),
        (T("2150-05-04 17:39:00"), "ICU_PROCEDURE_START//225792", None),
    ]
    assert report["tables"]["icu/procedureevents"]["rows_used"] == 3
    assert pl.read_parquet(tmp_path / "out" / S.FLAGGED_FILE).is_empty()


def test_infusion_and_ingredient_events_are_not_known_before_they_were_stored(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "icu/icustays", [ICUSTAY])
    write_table(raw, "icu/inputevents", [
        # Norepinephrine started 13:00, stored 13:53, ended 18:00: start known at 13:53, amount at 18:00.
        {**ICU, "starttime": "2150-05-01 13:00:00", "endtime": "2150-05-01 18:00:00",
         "storetime": "2150-05-01 13:53:00", "itemid": 221906, "amount": 1.2, "amountuom": "mg",
         "rate": 0.05, "rateuom": "mcg/kg/min", "statusdescription": "FinishedRunning"},
        # A bolus charted 1 h 46 min after it ran (like the demo's 14:00 → 15:47): both at 15:47.
        {**ICU, "starttime": "2150-05-02 14:00:00", "endtime": "2150-05-02 14:01:00",
         "storetime": "2150-05-02 15:47:00", "itemid": 225798, "amount": 1, "amountuom": "dose",
         "statusdescription": "FinishedRunning"},
        # No storetime recorded: its own times stand.
        {**ICU, "starttime": "2150-05-03 09:00:00", "endtime": "2150-05-03 10:00:00",
         "itemid": 225158, "amount": 500, "amountuom": "ml", "statusdescription": "FinishedRunning"},
    ])
    write_table(raw, "icu/ingredientevents", [
        # Water of a feed that ended 00:00 but was charted 23:51 the evening before, and one charted late.
        {**ICU, "starttime": "2150-05-01 23:45:00", "endtime": "2150-05-02 00:00:00",
         "storetime": "2150-05-01 23:51:00", "itemid": 220490, "amount": 18.75, "amountuom": "ml"},
        {**ICU, "starttime": "2150-05-02 08:45:00", "endtime": "2150-05-02 09:00:00",
         "storetime": "2150-05-02 10:30:00", "itemid": 226060, "amount": 0.5, "amountuom": "Kcal"},
    ])
    _, data = ingest(raw, tmp_path / "out")
    assert timeline(data, "icu/inputevents") == [
        (T("2150-05-01 13:53:00"), "INPUT_START//221906", None),
        (T("2150-05-01 18:00:00"), "INPUT//221906//mg", 1.2000000476837158),  # float32 of 1.2
        (T("2150-05-02 15:47:00"), "INPUT//225798//dose", 1.0),
        (T("2150-05-02 15:47:00"), "INPUT_START//225798", None),
        (T("2150-05-03 09:00:00"), "INPUT_START//225158", None),
        (T("2150-05-03 10:00:00"), "INPUT//225158//ml", 500.0),
    ]
    assert timeline(data, "icu/ingredientevents") == [
        (T("2150-05-02 00:00:00"), "INGREDIENT//220490//ml", 18.75),
        (T("2150-05-02 10:30:00"), "INGREDIENT//226060//Kcal", 0.5),
    ]


PHARMACY = {"subject_id": 1, "hadm_id": 101, "proc_type": "Unit Dose", "status": "Discontinued",
            "route": "PO", "frequency": "DAILY"}
PRESCRIPTION = {"subject_id": 1, "hadm_id": 101, "drug_type": "MAIN", "route": "PO"}


def test_medications_are_timed_when_entered_and_verified(tmp_path: Path) -> None:
    raw = minimal_hospital(tmp_path / "raw")
    write_table(raw, "hosp/pharmacy", [
        # Starts 12:00, entered 12:32:11, verified 12:54:34 (as the demo's first rows): known at 12:54:34.
        {**PHARMACY, "pharmacy_id": 1001, "starttime": "2150-05-01 12:00:00", "medication": "Metoprolol",
         "entertime": "2150-05-01 12:32:11", "verifiedtime": "2150-05-01 12:54:34"},
        # Entered and verified before its start: known at its start, 14:00.
        {**PHARMACY, "pharmacy_id": 1002, "starttime": "2150-05-01 14:00:00", "medication": "Heparin",
         "entertime": "2150-05-01 13:10:00", "verifiedtime": "2150-05-01 13:20:00"},
        # Never verified: known when entered, 08:15.
        {**PHARMACY, "pharmacy_id": 1003, "starttime": "2150-05-02 08:00:00", "medication": "Furosemide",
         "entertime": "2150-05-02 08:15:00"},
    ])
    write_table(raw, "hosp/prescriptions", [
        {**PRESCRIPTION, "pharmacy_id": 1001, "starttime": "2150-05-01 12:00:00", "drug": "Metoprolol"},
        {**PRESCRIPTION, "pharmacy_id": 1002, "starttime": "2150-05-01 14:00:00", "drug": "Heparin"},
        {**PRESCRIPTION, "pharmacy_id": 1003, "starttime": "2150-05-02 08:00:00", "drug": "Furosemide"},
        # No pharmacy row 1004: kept at its starttime, and flagged.
        {**PRESCRIPTION, "pharmacy_id": 1004, "starttime": "2150-05-03 09:00:00", "drug": "Aspirin"},
    ])
    report, data = ingest(raw, tmp_path / "out")
    assert timeline(data, "hosp/pharmacy") == [
        (T("2150-05-01 12:54:34"), "PHARMACY//Metoprolol", None),
        (T("2150-05-01 14:00:00"), "PHARMACY//Heparin", None),
        (T("2150-05-02 08:15:00"), "PHARMACY//Furosemide", None),
    ]
    assert timeline(data, "hosp/prescriptions") == [
        (T("2150-05-01 12:54:34"), "MEDICATION//Metoprolol", None),
        (T("2150-05-01 14:00:00"), "MEDICATION//Heparin", None),
        (T("2150-05-02 08:15:00"), "MEDICATION//Furosemide", None),
        (T("2150-05-03 09:00:00"), "MEDICATION//Aspirin", None),
    ]
    prescriptions = report["tables"]["hosp/prescriptions"]
    reason = "no pharmacy row with an entry time for pharmacy_id (timed at starttime)"
    assert (prescriptions["rows_used"], prescriptions["rows_flagged"]) == (4, 1)
    assert prescriptions["flagged_by_reason"] == {reason: 1}
    flagged = pl.read_parquet(tmp_path / "out" / S.FLAGGED_FILE)
    assert flagged.select(S.Q_TABLE, S.Q_ROW, S.Q_REASON, S.Q_FIELD, S.Q_VALUE).rows() == [
        ("hosp/prescriptions", 4, reason, "pharmacy_id", "1004"),
    ]


def test_pharmacy_time_index_keeps_the_latest_time_of_an_id_and_misses_unknown_ids() -> None:
    rows = pl.DataFrame({
        "pharmacy_id": [30, 10, 20, 10, None],
        "entered": [T("2150-05-03 08:00"), T("2150-05-01 12:00"), None, T("2150-05-01 12:30"),
                    T("2150-05-04 00:00")],
    })
    index = TimeIndex.build(rows, "pharmacy_id", "entered")
    keys = pl.Series("pharmacy_id", [10, 20, 30, 40, None, 5], dtype=pl.Int64)
    # 10 twice → the later entry; 20 has no time; 40 and 5 are unknown (above and below every id).
    assert index.lookup(keys).to_list() == [T("2150-05-01 12:30"), None, T("2150-05-03 08:00"), None, None, None]
    assert TimeIndex().lookup(keys).to_list() == [None] * 6
