"""MIMIC-IV-ED and MIMIC-IV-Note mappings on tiny hand-written files.

Every expected event is written next to the row that produces it. Hospital side: subjects 1 and 3 of
``ehrpredict.testing.minimal_hospital`` (1: admission 101 on 2150-05-01; 3: admission 301 in 2170).
"""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.ingest.mimic4 import IngestConfig, IngestResult, ingest_mimic4
from ehrpredict.testing import Row, minimal_hospital, write_table

# simple-icd-10-cm 1.5.0 (used by ehrpredict.vocab to name ICD-10 categories) calls deprecated
# importlib.resources functions when imported; that is the dependency's warning, not ours.

T = datetime.fromisoformat

# ED stay 9001 (subject 1): arrived 07:00 by ambulance, left 10:00 admitted (→ hadm 101).
# ED stay 9002 (subject 3): walked in 20:15, went home 01:45 the next day, no admission.
EDSTAYS: list[Row] = [
    {"subject_id": 1, "hadm_id": 101, "stay_id": 9001, "intime": "2150-05-01 07:00:00",
     "outtime": "2150-05-01 10:00:00", "gender": "F", "race": "WHITE",
     "arrival_transport": "AMBULANCE", "disposition": "ADMITTED"},
    {"subject_id": 3, "stay_id": 9002, "intime": "2170-06-01 20:15:00",
     "outtime": "2170-06-02 01:45:00", "gender": "F", "race": "WHITE",
     "arrival_transport": "WALK IN", "disposition": "HOME"},
]
TRIAGE: list[Row] = [
    # row 1 → at arrival 2150-05-01 07:00: complaint text, acuity 2 and all seven vitals
    {"subject_id": 1, "stay_id": 9001, "temperature": 98.5, "heartrate": 112, "resprate": 22,
     "o2sat": 94, "sbp": 150, "dbp": 90, "pain": "8", "acuity": 2,
     "chiefcomplaint": "Chest pain, dyspnea"},
    # row 2 → at arrival 2170-06-01 20:15: complaint, acuity 4, heart rate, pain as text;
    # the empty vitals give no events
    {"subject_id": 3, "stay_id": 9002, "heartrate": 80, "pain": "unable", "acuity": 4,
     "chiefcomplaint": "Ankle injury"},
    # row 3 → quarantined: ED stay 9999 does not exist, so there is no arrival time to time it at
    {"subject_id": 1, "stay_id": 9999, "heartrate": 70, "acuity": 3, "chiefcomplaint": "Rash"},
]
VITALSIGN: list[Row] = [
    # → at 08:30: a vital-set event, four values and the rhythm as text (other vitals empty)
    {"subject_id": 1, "stay_id": 9001, "charttime": "2150-05-01 08:30:00", "heartrate": 98,
     "sbp": 130, "dbp": 80, "rhythm": "Sinus Rhythm", "pain": "4"},
]
MEDRECON: list[Row] = [
    # → ED_MEDRECON//metoprolol succinate at 07:30 with its drug class as text
    {"subject_id": 1, "stay_id": 9001, "charttime": "2150-05-01 07:30:00",
     "name": "metoprolol succinate", "gsn": "004499", "ndc": "0", "etc_rn": 1, "etccode": 5716,
     "etcdescription": "Beta-Blockers Cardio-Selective"},
]
PYXIS: list[Row] = [
    # → ED_PYXIS//Aspirin at 08:00, no text (pyxis has no drug class)
    {"subject_id": 1, "stay_id": 9001, "charttime": "2150-05-01 08:00:00", "med_rn": 1,
     "name": "Aspirin", "gsn_rn": 1, "gsn": "004380"},
]
DIAGNOSIS: list[Row] = [
    # known only at ED departure: stay 9001 → 2150-05-01 10:00, stay 9002 → 2170-06-02 01:45
    {"subject_id": 1, "stay_id": 9001, "seq_num": 1, "icd_code": "I509", "icd_version": 10,
     "icd_title": "Heart failure, unspecified"},                       # → ICD10CM//I50.9
    {"subject_id": 1, "stay_id": 9001, "seq_num": 2, "icd_code": "R0789", "icd_version": 10,
     "icd_title": "Other chest pain"},                                 # → ICD10CM//R07.89
    {"subject_id": 3, "stay_id": 9002, "seq_num": 1, "icd_code": "84500", "icd_version": 9,
     "icd_title": "SPRAIN OF ANKLE NOS"},                              # → ICD9CM//845.00
]
# Embedded newlines, commas and quotes: the file must quote this field, and it must come back intact.
SUMMARY = 'Discharge summary\nDx: heart failure, chest pain\nPlan: "furosemide 40 mg", follow up\n'
DISCHARGE: list[Row] = [
    # → NOTE//DISCHARGE at storetime 15:32 (charttime is midnight: written, not readable, then)
    {"note_id": "1-DS-1", "subject_id": 1, "hadm_id": 101, "note_type": "DS", "note_seq": 1,
     "charttime": "2150-05-05 00:00:00", "storetime": "2150-05-05 15:32:00", "text": SUMMARY},
]
RADIOLOGY: list[Row] = [
    # → NOTE//RADIOLOGY at storetime 11:10
    {"note_id": "1-RR-1", "subject_id": 1, "hadm_id": 101, "note_type": "RR", "note_seq": 1,
     "charttime": "2150-05-01 09:00:00", "storetime": "2150-05-01 11:10:00",
     "text": "CHEST X-RAY: mild pulmonary edema."},
    # → no storetime: falls back to charttime 22:00; no hadm_id (ED imaging)
    {"note_id": "3-RR-1", "subject_id": 3, "note_type": "RR", "note_seq": 1,
     "charttime": "2170-06-01 22:00:00", "text": "ANKLE X-RAY: no fracture."},
]

SIBLINGS = "siblings"  # RAW/hosp, RAW/mimic-iv-ed-2.2/ed, RAW/mimic-iv-note-2.2/note
ALL_BELOW = "all-below"  # RAW/mimic-iv-2.2/hosp, RAW/mimic-iv-ed-2.2/ed, RAW/mimic-iv-note-2.2/note
FLAT = "flat"  # RAW/hosp, RAW/ed, RAW/note


def write_raw(raw: Path, layout: str) -> None:
    minimal_hospital(raw / "mimic-iv-2.2" if layout == ALL_BELOW else raw)
    ed = raw if layout == FLAT else raw / "mimic-iv-ed-2.2"
    note = raw if layout == FLAT else raw / "mimic-iv-note-2.2"
    for table, rows in (("edstays", EDSTAYS), ("triage", TRIAGE), ("vitalsign", VITALSIGN),
                        ("medrecon", MEDRECON), ("pyxis", PYXIS), ("diagnosis", DIAGNOSIS)):
        write_table(ed, f"ed/{table}", rows)
    write_table(note, "note/discharge", DISCHARGE)
    write_table(note, "note/radiology", RADIOLOGY)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    tmp = tmp_path_factory.mktemp("ed_note")
    write_raw(tmp / "raw", SIBLINGS)
    return ingest_mimic4(tmp / "raw", tmp / "out", IngestConfig(subjects_per_shard=2))


def tables(result: IngestResult) -> dict[str, Any]:
    """The per-table part of the data-quality report."""
    report: Any = result.report
    return dict(report["tables"])


def events(out: Path, table: str) -> Counter[tuple[object, ...]]:
    """(subject, time, code, numeric, text, hadm, stay) of every event from ``table``."""
    data = pl.concat([pl.read_parquet(p) for p in sorted((out / S.DATA_DIR).rglob("*.parquet"))])
    rows = data.filter(pl.col(S.TABLE) == table).select(
        S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE, S.HADM_ID, S.STAY_ID
    )
    return Counter(rows.iter_rows())


def test_edstays_give_arrival_at_intime_and_disposition_at_outtime(result: IngestResult) -> None:
    assert events(result.out_dir, "ed/edstays") == Counter([
        (1, T("2150-05-01 07:00:00"), "ED_ARRIVAL//AMBULANCE", None, None, 101, 9001),
        (1, T("2150-05-01 10:00:00"), "ED_DISPOSITION//ADMITTED", None, None, 101, 9001),
        (3, T("2170-06-01 20:15:00"), "ED_ARRIVAL//WALK IN", None, None, None, 9002),
        (3, T("2170-06-02 01:45:00"), "ED_DISPOSITION//HOME", None, None, None, 9002),
    ])


def test_triage_is_timed_at_ed_arrival(result: IngestResult) -> None:
    arrival1, arrival3 = T("2150-05-01 07:00:00"), T("2170-06-01 20:15:00")
    assert events(result.out_dir, "ed/triage") == Counter([
        (1, arrival1, "ED_TRIAGE", None, "Chest pain, dyspnea", None, 9001),
        (1, arrival1, "ED_TRIAGE//acuity", 2.0, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//temperature", 98.5, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//heartrate", 112.0, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//resprate", 22.0, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//o2sat", 94.0, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//sbp", 150.0, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//dbp", 90.0, None, None, 9001),
        (1, arrival1, "ED_TRIAGE//pain", 8.0, None, None, 9001),
        (3, arrival3, "ED_TRIAGE", None, "Ankle injury", None, 9002),
        (3, arrival3, "ED_TRIAGE//acuity", 4.0, None, None, 9002),
        (3, arrival3, "ED_TRIAGE//heartrate", 80.0, None, None, 9002),
        (3, arrival3, "ED_TRIAGE//pain", None, "unable", None, 9002),
    ])


def test_triage_row_with_unknown_ed_stay_is_quarantined(result: IngestResult) -> None:
    quarantine = pl.read_parquet(result.out_dir / S.QUARANTINE_FILE).filter(pl.col(S.Q_TABLE) == "ed/triage")
    assert quarantine.select(S.Q_FILE, S.Q_ROW, S.Q_REASON, S.Q_FIELD, S.Q_VALUE).rows() == [
        ("mimic-iv-ed-2.2/ed/triage.csv.gz", 3, "unknown ED stay (stay_id not in edstays)", "stay_id",
         "9999"),
    ]
    assert '"chiefcomplaint":"Rash"' in quarantine.item(0, S.Q_RECORD)
    triage = tables(result)["ed/triage"]
    assert (triage["rows_read"], triage["rows_used"], triage["rows_quarantined"]) == (3, 2, 1)
    assert triage["quarantined_by_reason"] == {"unknown ED stay (stay_id not in edstays)": 1}
    assert triage["events_written"] == 13  # 9 from row 1, 4 from row 2


def test_ed_diagnoses_are_timed_at_ed_departure_with_dotted_icd_codes(result: IngestResult) -> None:
    assert events(result.out_dir, "ed/diagnosis") == Counter([
        (1, T("2150-05-01 10:00:00"), "ICD10CM//I50.9", None, "Heart failure, unspecified", None, 9001),
        (1, T("2150-05-01 10:00:00"), "ICD10CM//R07.89", None, "Other chest pain", None, 9001),
        (3, T("2170-06-02 01:45:00"), "ICD9CM//845.00", None, "SPRAIN OF ANKLE NOS", None, 9002),
    ])


def test_vitalsign_values_at_charttime(result: IngestResult) -> None:
    at = T("2150-05-01 08:30:00")
    assert events(result.out_dir, "ed/vitalsign") == Counter([
        (1, at, "ED_VITAL", None, None, None, 9001),
        (1, at, "ED_VITAL//heartrate", 98.0, None, None, 9001),
        (1, at, "ED_VITAL//sbp", 130.0, None, None, 9001),
        (1, at, "ED_VITAL//dbp", 80.0, None, None, 9001),
        (1, at, "ED_VITAL//pain", 4.0, None, None, 9001),
        (1, at, "ED_VITAL//rhythm", None, "Sinus Rhythm", None, 9001),
    ])


def test_medrecon_and_pyxis_are_medications_at_charttime(result: IngestResult) -> None:
    assert events(result.out_dir, "ed/medrecon") == Counter([
        (1, T("2150-05-01 07:30:00"), "ED_MEDRECON//metoprolol succinate", None,
         "Beta-Blockers Cardio-Selective", None, 9001),
    ])
    assert events(result.out_dir, "ed/pyxis") == Counter([
        (1, T("2150-05-01 08:00:00"), "ED_PYXIS//Aspirin", None, None, None, 9001),
    ])


def test_notes_keep_full_text_and_are_timed_at_storetime_else_charttime(result: IngestResult) -> None:
    assert events(result.out_dir, "note/discharge") == Counter([
        (1, T("2150-05-05 15:32:00"), "NOTE//DISCHARGE", None, SUMMARY, 101, None),
    ])
    assert events(result.out_dir, "note/radiology") == Counter([
        (1, T("2150-05-01 11:10:00"), "NOTE//RADIOLOGY", None, "CHEST X-RAY: mild pulmonary edema.",
         101, None),
        (3, T("2170-06-01 22:00:00"), "NOTE//RADIOLOGY", None, "ANKLE X-RAY: no fracture.", None, None),
    ])


def test_note_with_newlines_and_commas_is_one_quoted_csv_row(tmp_path: Path) -> None:
    # Guards the test above: the file really holds a quoted multi-line field, and it counts as one row.
    write_raw(tmp_path / "raw", SIBLINGS)
    path = tmp_path / "raw" / "mimic-iv-note-2.2" / "note" / "discharge.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    quoted = '"Discharge summary\nDx: heart failure, chest pain\nPlan: ""furosemide 40 mg"", follow up\n"'
    assert quoted in text
    result = ingest_mimic4(tmp_path / "raw", tmp_path / "out", IngestConfig(subjects_per_shard=2))
    discharge = tables(result)["note/discharge"]
    assert (discharge["rows_read"], discharge["rows_quarantined"], discharge["events_written"]) == (1, 0, 1)


def test_every_ed_and_note_row_is_accounted_for(result: IngestResult) -> None:
    written = {"ed/edstays": 2, "ed/triage": 3, "ed/vitalsign": 1, "ed/medrecon": 1, "ed/pyxis": 1,
               "ed/diagnosis": 3, "note/discharge": 1, "note/radiology": 2}
    quarantined = {"ed/triage": 1}
    for table, n in written.items():
        report = tables(result)[table]
        assert report["rows_read"] == n, table
        assert report["rows_quarantined"] == quarantined.get(table, 0), table
        assert report["rows_used"] == n - quarantined.get(table, 0), table


@pytest.mark.parametrize("layout", [SIBLINGS, ALL_BELOW, FLAT])
def test_ed_and_note_modules_are_found_beside_hosp(tmp_path: Path, layout: str) -> None:
    write_raw(tmp_path / "raw", layout)
    result = ingest_mimic4(tmp_path / "raw", tmp_path / "out", IngestConfig(subjects_per_shard=2))
    report = tables(result)
    ed_dir = "ed" if layout == FLAT else "mimic-iv-ed-2.2/ed"
    note_dir = "note" if layout == FLAT else "mimic-iv-note-2.2/note"
    hosp_dir = "mimic-iv-2.2/hosp" if layout == ALL_BELOW else "hosp"
    assert report["hosp/patients"]["file"] == f"{hosp_dir}/patients.csv.gz"
    assert report["ed/triage"]["file"] == f"{ed_dir}/triage.csv.gz"
    assert report["note/radiology"]["file"] == f"{note_dir}/radiology.csv.gz"
    missing: Any = result.report["missing_optional_tables"]
    assert [t for t in missing if t.startswith(("ed/", "note/"))] == []
    assert events(tmp_path / "out", "ed/triage")[
        (1, T("2150-05-01 07:00:00"), "ED_TRIAGE", None, "Chest pain, dyspnea", None, 9001)
    ] == 1
    assert sum(events(tmp_path / "out", "note/radiology").values()) == 2
