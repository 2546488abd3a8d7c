"""FHIR on real and synthetic patients.

1. The MIMIC-IV demo on FHIR (read in place from ../shared or $EHRPREDICT_MIMIC_FHIR_DEMO; skipped when
   absent unless EHRPREDICT_REQUIRE_DEMO=1) is the same 100 patients as the CSV demo. Ingesting it must
   give the CSV route's events for every kind both carry. Compared per kind: ``subject_id, time, code``
   (with ``hadm_id``/``stay_id`` and ``numeric_value`` where named), as multisets. Differences, measured
   and asserted below so that a change is noticed:

   - MEDS_BIRTH: FHIR has an exact birthDate; the CSV route has 1 January of anchor_year - anchor_age.
     Same year for all 100 subjects, different day.
   - MEDS_DEATH: 27 of 31 times agree. The other 4 differ from the CSV route's in-hospital deathtime; per
     the FHIR work's own check, the FHIR route places them earlier (up to ~23 h), a defect still to fix
     (the cause is not settled: every deceasedDateTime in the demo is a bare date).
   - HOSPITAL_ADMISSION: MIMIC on FHIR writes the admission type as class + priority (lossy), so the code is
     ``HOSPITAL_ADMISSION//<class>``; times and hadm_ids agree for all 275.
   - MEDICATION: 2,327 extra MedicationRequests come from MIMIC's poe (IV orders), not from prescriptions;
     times differ where FHIR dropped a validity period whose stop precedes its start (the CSV starttime).
   - EMAR: FHIR codes the drug by formulary code (``ACET1000I``), the CSV by name; times agree for 86%.
   - INPUT, INPUT_START, ICU_PROCEDURE_START: FHIR carries no storetime, so events sit at their start/end,
     up to hours before the CSV route's max(time, storetime) (a leakage risk the CSV route avoids).
   - OUTPUT and DATETIME: agree except 1 (and 5) values an hour apart at a daylight-saving change.
   - PHARMACY: MedicationDispense has no time in MIMIC on FHIR: placed at its admission's end.
   - Not in FHIR (CSV only): transfers, services, DRG, labs, chartevents, OMR, POE orders, ED_REGISTRATION,
     insurance/language/race. Not in the CSV demo (FHIR only): the ED module and the MICRO_* observations.

2. Round trips MEDS → ``export fhir`` → ``ingest fhir`` on the CSV demo (a few subjects) and on the synthetic
   hospital: the same ``subject_id, time, code, numeric_value, text_value, hadm_id, stay_id`` for every
   event, apart from what is not carried: the ``table`` column and empty text values (FHIR has no empty
   string; 93 events of the whole demo).

3. The three ED tasks label and benchmark on the ingested FHIR demo: the first ED results on real
   patients. With 100 patients (16 held-out ED visits) the intervals are very wide.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.ingest.fhir import export_fhir, ingest_fhir
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[2]
FHIR_DEMO_ENV = "EHRPREDICT_MIMIC_FHIR_DEMO"
REQUIRE_ENV = "EHRPREDICT_REQUIRE_DEMO"
COMPARED = [c for c in S.EVENT_COLUMNS if c != S.TABLE]
ED_TASKS = ("ed_critical_outcome", "ed_hospitalization", "ed_revisit_72h")


@pytest.fixture(scope="session")
def mimic_fhir_demo() -> Path:
    path = Path(os.environ.get(FHIR_DEMO_ENV, REPO.parent / "shared" / "data" / "mimic-iv-fhir-demo-2.1.0" / "fhir"))
    if not (path / "MimicPatient.ndjson.gz").exists():
        message = f"the MIMIC-IV demo on FHIR is not at {path} (set {FHIR_DEMO_ENV} to its fhir/ directory)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def fhir_demo_dataset(mimic_fhir_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FHIR demo ingested once per session (~50 s: R4B validation of 152,346 resources dominates)."""
    out = tmp_path_factory.mktemp("fhir-demo") / "meds"
    ingest_fhir(mimic_fhir_demo, out)
    return out


def events(dataset: Path) -> pl.DataFrame:
    frame = pl.read_parquet(dataset / S.DATA_DIR)
    return frame.with_columns(pl.col(S.CODE).str.split(S.CODE_SEPARATOR).list.first().alias("prefix"))


def agreement(csv: pl.DataFrame, fhir: pl.DataFrame, prefix: str, key: list[str]) -> tuple[int, int, int]:
    """(CSV events, FHIR events, events matched as multisets on ``key``) of one prefix."""
    a, b = csv.filter(pl.col("prefix") == prefix), fhir.filter(pl.col("prefix") == prefix)
    if prefix in ("ICD9CM", "ICD10CM"):  # the CSV demo has no ED module: compare hospital diagnoses
        b = b.filter(pl.col(S.STAY_ID).is_null())

    def numbered(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(key).with_columns(pl.int_range(pl.len()).over(key).alias("_n"))

    matched = numbered(a).join(numbered(b), on=[*key, "_n"], nulls_equal=True).height
    return a.height, b.height, matched


EVENT = [S.SUBJECT_ID, S.TIME, S.CODE]
# prefix, compared columns, (CSV events, FHIR events, matched): measured on the demo; see the docstring.
AGREEMENT = [
    ("GENDER", [S.SUBJECT_ID, S.CODE], (100, 100, 100)),
    ("MEDS_BIRTH", [S.SUBJECT_ID], (100, 100, 100)),
    ("MEDS_DEATH", [S.SUBJECT_ID, S.TIME], (31, 31, 27)),
    ("HOSPITAL_ADMISSION", [S.SUBJECT_ID, S.TIME, S.HADM_ID], (275, 275, 275)),
    ("HOSPITAL_DISCHARGE", [*EVENT, S.HADM_ID], (275, 275, 275)),
    ("ICU_ADMISSION", [*EVENT, S.HADM_ID, S.STAY_ID], (140, 140, 140)),
    ("ICU_DISCHARGE", [*EVENT, S.HADM_ID, S.STAY_ID], (140, 140, 140)),
    ("ICD9CM", [*EVENT, S.HADM_ID], (2193, 2193, 2193)),
    ("ICD10CM", [*EVENT, S.HADM_ID], (2313, 2313, 2313)),
    ("ICD9PROC", [*EVENT, S.HADM_ID], (401, 401, 401)),
    ("ICD10PCS", [*EVENT, S.HADM_ID], (321, 321, 321)),
    ("HCPCS", [*EVENT, S.HADM_ID], (61, 61, 61)),
    ("MEDICATION", [S.SUBJECT_ID, S.CODE], (18087, 20414, 18086)),
    ("MEDICATION", EVENT, (18087, 20414, 17325)),
    ("PHARMACY", [S.SUBJECT_ID, S.CODE], (15306, 14293, 13439)),
    ("EMAR", [S.SUBJECT_ID, S.TIME], (35835, 36131, 30675)),
    ("INPUT_START", EVENT, (20404, 20404, 4069)),
    ("INPUT", [*EVENT, S.NUMERIC_VALUE], (20404, 20404, 13523)),
    ("ICU_PROCEDURE_START", EVENT, (1468, 1468, 369)),
    ("OUTPUT", [*EVENT, S.NUMERIC_VALUE], (9362, 9362, 9361)),
    ("DATETIME", [S.SUBJECT_ID, S.TIME], (15280, 15280, 15280)),
    ("DATETIME", [S.SUBJECT_ID, S.TIME, S.TEXT_VALUE], (15280, 15280, 15275)),
]


def test_every_resource_of_the_fhir_demo_is_read_and_used(fhir_demo_dataset: Path) -> None:
    report = json.loads((fhir_demo_dataset / S.QUALITY_REPORT_FILE).read_text())
    assert report["n_subjects"] == 100
    assert report["totals"]["rows_read"] == report["totals"]["rows_used"] == 152_346
    # 2,044 ED observations with a dataAbsentReason instead of a value: kept, flagged, no event
    assert report["totals"]["rows_flagged"] == 2_044


def test_fhir_and_csv_routes_agree_per_kind(demo_dataset: Path, fhir_demo_dataset: Path) -> None:
    csv, fhir = events(demo_dataset), events(fhir_demo_dataset)
    measured = [(prefix, tuple(key), agreement(csv, fhir, prefix, key)) for prefix, key, _ in AGREEMENT]
    for prefix, key, (n_csv, n_fhir, matched) in measured:
        print(f"{prefix:<22}{', '.join(key):<52} CSV {n_csv:>6}  FHIR {n_fhir:>6}  matched {matched:>6}")
    assert [m[2] for m in measured] == [expected for _, _, expected in AGREEMENT]
    birth = csv.filter(pl.col(S.CODE) == S.BIRTH_CODE).join(
        fhir.filter(pl.col(S.CODE) == S.BIRTH_CODE), on=S.SUBJECT_ID, suffix="_fhir")
    assert (birth.get_column(S.TIME).dt.year() == birth.get_column(f"{S.TIME}_fhir").dt.year()).all()


def test_the_fhir_demo_carries_the_ed_module(fhir_demo_dataset: Path) -> None:
    counts = dict(events(fhir_demo_dataset).group_by("prefix").len().iter_rows())
    assert counts["ED_ARRIVAL"] == counts["ED_DISPOSITION"] == 222
    assert counts["ED_TRIAGE"] > 0 and counts["ED_VITAL"] > 0 and counts["ED_PYXIS"] == 1082
    assert counts["ED_MEDRECON"] == 2411


def round_trip(dataset: Path, out: Path, subjects: list[int] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    # Export's own validation is skipped: ingest validates every resource again, and a resource that
    # failed would be quarantined and missing from ``back``.
    export_fhir(dataset, out / "fhir", subjects=subjects, validate=False)
    ingest_fhir(out / "fhir", out / "back")
    original = pl.read_parquet(dataset / S.DATA_DIR)
    if subjects is not None:
        original = original.filter(pl.col(S.SUBJECT_ID).is_in(subjects))
    # FHIR has no empty string: an empty text value is not carried (comes back null)
    original = original.with_columns(pl.col(S.TEXT_VALUE).replace("", None))
    back = pl.read_parquet(out / "back" / S.DATA_DIR)
    return (original.select(COMPARED).sort(COMPARED, nulls_last=False),
            back.select(COMPARED).sort(COMPARED, nulls_last=False))


def test_round_trip_of_the_csv_demo(demo_dataset: Path, tmp_path: Path) -> None:
    # Subjects in id order up to ~15,000 events (the whole demo, 962,057 events, takes minutes: see README)
    counts = pl.read_parquet(demo_dataset / S.DATA_DIR).group_by(S.SUBJECT_ID).len().sort(S.SUBJECT_ID)
    subjects = counts.filter(pl.col("len").cum_sum() <= 15_000).get_column(S.SUBJECT_ID).to_list()
    original, back = round_trip(demo_dataset, tmp_path, subjects)
    assert len(subjects) >= 3 and original.height > 5_000
    assert back.equals(original)


def test_round_trip_of_the_synthetic_hospital(tmp_path: Path) -> None:
    generate(tmp_path / "raw", SynthConfig(n_patients=40, seed=3))
    ingest_mimic4(tmp_path / "raw", tmp_path / "meds")
    original, back = round_trip(tmp_path / "meds", tmp_path)
    assert back.equals(original)


def test_ed_tasks_run_on_the_fhir_demo(fhir_demo_dataset: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", str(fhir_demo_dataset), ",".join(ED_TASKS), str(tmp_path / "labels")]) == 0
    labels = {t: pl.read_parquet(tmp_path / "labels" / f"{t}.parquet") for t in ED_TASKS}
    assert {t: frame.height for t, frame in labels.items()} == {
        "ed_critical_outcome": 222, "ed_hospitalization": 222, "ed_revisit_72h": 71}
    assert labels["ed_hospitalization"].get_column(S.BOOLEAN_VALUE).sum() == 150
    # One task and a small bootstrap keep this test short; README gives the full run's figures.
    assert main(["benchmark", str(fhir_demo_dataset), "--tasks", "ed_hospitalization", "--heads", "lr",
                 "--bootstrap", "100", "--shuffle-permutations", "1", "--out", str(tmp_path / "bench"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    print(out)
    report = json.loads((tmp_path / "bench" / "report.json").read_text())
    assert [(t["task"], t["status"]) for t in report["tasks"]] == [("ed_hospitalization", "done")]
    assert "counts/lr" in out and "AUROC" in out
