"""Ingestion of the real MIMIC-IV demo. Expected counts are read from the source files themselves."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.dataset import dataset_code_kinds, dataset_info
from ehrpredict.ingest.mimic4 import _EMPTY_LOOKUPS, ingest_mimic4
from ehrpredict.ingest.mimic4_tables import UNMAPPED_TABLES, table_specs
from ehrpredict.ingest.output import validate_dataset
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS, CodeKinds

pytestmark = pytest.mark.demo


def source_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a source table parsed with the standard library (independent of the engine)."""
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def events(dataset: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((dataset / "data").rglob("*.parquet")))


def report(dataset: Path) -> dict:
    return json.loads((dataset / "data_quality.json").read_text())


def test_every_source_row_is_read_and_accounted_for(mimic_demo: Path, demo_dataset: Path) -> None:
    tables = report(demo_dataset)["tables"]
    mapped = {spec.name for spec in table_specs(_EMPTY_LOOKUPS)}
    for name, stats in tables.items():
        n_source = len(source_rows(mimic_demo / stats["file"]))
        assert stats["rows_read"] == n_source, name
        assert stats["rows_used"] + stats["rows_quarantined"] == stats["rows_read"], name
        assert sum(stats["quarantined_by_reason"].values()) == stats["rows_quarantined"], name
    present = {f"{p.parent.name}/{p.name.removesuffix('.csv.gz')}" for p in mimic_demo.glob("*/*.csv.gz")}
    unmapped = {u.name for u in UNMAPPED_TABLES}
    assert present - unmapped == set(tables), "every table is either mapped or listed as not mapped"
    assert set(tables) <= mapped


def test_quarantine_file_matches_the_report(demo_dataset: Path) -> None:
    quarantine = pl.read_parquet(demo_dataset / "quarantine.parquet")
    counts = dict(quarantine.group_by("table").len().iter_rows())
    for name, stats in report(demo_dataset)["tables"].items():
        assert counts.get(name, 0) == stats["rows_quarantined"], name
    # The demo's chartevents are a reconstruction without caregiver/storetime/text, so some rows are
    # exact copies of another row: each names the row it duplicates.
    dupes = quarantine.filter(pl.col("reason") == "duplicate row")
    assert dupes.get_column("value").str.starts_with("same fields as row ").all()


def test_one_admission_event_per_admissions_row(mimic_demo: Path, demo_dataset: Path) -> None:
    admissions = source_rows(mimic_demo / "hosp" / "admissions.csv.gz")
    data = events(demo_dataset)
    admission_events = data.filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION//"))
    assert admission_events.height == len(admissions)
    assert set(admission_events.get_column("hadm_id").to_list()) == {int(a["hadm_id"]) for a in admissions}


def test_subjects_splits_and_shards(mimic_demo: Path, demo_dataset: Path) -> None:
    patients = {int(p["subject_id"]) for p in source_rows(mimic_demo / "hosp" / "patients.csv.gz")}
    splits = pl.read_parquet(demo_dataset / S.SPLITS_FILE)
    assert set(splits.get_column("subject_id").to_list()) == patients
    assert splits.get_column("subject_id").n_unique() == splits.height  # no subject in two splits
    seen: set[int] = set()
    for shard in sorted((demo_dataset / "data").rglob("*.parquet")):
        frame = pl.read_parquet(shard)
        ids = set(frame.get_column("subject_id").unique().to_list())
        assert not ids & seen, "a subject appears in two shards"
        seen |= ids
        split_of = dict(splits.iter_rows())
        assert {split_of[i] for i in ids} == {shard.parent.name}
        key = frame.select("subject_id", pl.col("time").fill_null(pl.datetime(1, 1, 1)))
        assert key.equals(key.sort("subject_id", "time")), f"{shard} is not sorted by subject and time"
    assert seen == patients


def test_diagnoses_are_timed_at_discharge(mimic_demo: Path, demo_dataset: Path) -> None:
    discharge = {
        int(a["hadm_id"]): a["dischtime"] for a in source_rows(mimic_demo / "hosp" / "admissions.csv.gz")
    }
    diagnoses = events(demo_dataset).filter(pl.col("table") == "hosp/diagnoses_icd")
    assert diagnoses.height == len(source_rows(mimic_demo / "hosp" / "diagnoses_icd.csv.gz"))
    for hadm_id, time in diagnoses.select("hadm_id", pl.col("time").dt.strftime("%Y-%m-%d %H:%M:%S")).iter_rows():
        assert time == discharge[hadm_id]


def test_labs_are_timed_when_the_result_was_stored(mimic_demo: Path, demo_dataset: Path) -> None:
    first = source_rows(mimic_demo / "hosp" / "labevents.csv.gz")[0]
    labs = events(demo_dataset).filter(
        (pl.col("subject_id") == int(first["subject_id"]))
        & pl.col("code").str.starts_with(f"LAB//{first['itemid']}")
        & (pl.col("time").dt.strftime("%Y-%m-%d %H:%M:%S") == first["storetime"])
    )
    assert labs.height >= 1
    assert first["storetime"] > first["charttime"]


def test_codes_have_descriptions_from_mimic_dictionaries(mimic_demo: Path, demo_dataset: Path) -> None:
    codes = pl.read_parquet(demo_dataset / S.CODES_FILE)
    data_codes = set(events(demo_dataset).get_column("code").unique().to_list())
    assert data_codes <= set(codes.get_column("code").to_list())
    assert codes.get_column("description").str.len_chars().min() > 0
    described = dict(codes.select("code", "description").iter_rows())
    lab = source_rows(mimic_demo / "hosp" / "d_labitems.csv.gz")
    label = {r["itemid"]: r["label"] for r in lab}
    creatinine = [c for c in data_codes if c.startswith("LAB//50912//")]
    assert creatinine and described[creatinine[0]].startswith(label["50912"])
    diagnosis = source_rows(mimic_demo / "hosp" / "diagnoses_icd.csv.gz")[0]
    titles = {
        (r["icd_code"], r["icd_version"]): r["long_title"]
        for r in source_rows(mimic_demo / "hosp" / "d_icd_diagnoses.csv.gz")
    }
    matching = [
        c for c in data_codes
        if c.startswith(f"ICD{diagnosis['icd_version']}CM//")
        and c.split("//")[1].replace(".", "") == diagnosis["icd_code"]
    ]
    assert described[matching[0]] == titles[(diagnosis["icd_code"], diagnosis["icd_version"])]


def test_output_validates_against_meds_schema(demo_dataset: Path) -> None:
    validate_dataset(demo_dataset)
    dataset = json.loads((demo_dataset / S.DATASET_FILE).read_text())
    assert dataset["etl_name"] == "ehrpredict"
    assert "created_at" not in dataset  # would break byte-identical reruns


def named_prefixes(kinds: CodeKinds) -> set[str]:
    return {p for value in kinds.to_json().values() for p in (value if isinstance(value, list) else [value]) if p}


def test_the_code_kinds_name_prefixes_the_ingestion_writes(demo_dataset: Path) -> None:
    # dataset.json states ehrpredict's own code kinds, and they name codes the ingestion really writes: a
    # prefix renamed in ingestion but not in vocab/kinds.py would silently empty a section of the text.
    assert dataset_code_kinds(demo_dataset) == DEFAULT_CODE_KINDS
    written = set(dataset_info(demo_dataset).events_by_prefix)
    # the demo has no ED or note module (the synthetic hospital has both: tests/integration/test_synth.py)
    assert named_prefixes(DEFAULT_CODE_KINDS) - written == {
        "ED_ARRIVAL", "ED_DISPOSITION", "ED_MEDRECON", "ED_PYXIS", "ED_TRIAGE", "ED_VITAL", "NOTE"}


def test_info_json_summarizes_the_dataset(demo_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(demo_dataset), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    data = events(demo_dataset)
    assert info["n_subjects"] == data.get_column("subject_id").n_unique()
    assert info["n_events"] == data.height == report(demo_dataset)["n_events"]
    assert info["n_codes"] == data.get_column("code").n_unique()
    assert sum(info["events_by_prefix"].values()) == data.height
    assert info["events_by_prefix"]["HOSPITAL_ADMISSION"] == len(
        data.filter(pl.col("code").str.starts_with("HOSPITAL_ADMISSION//"))
    )


def test_same_input_gives_byte_identical_output_and_reruns_are_noops(
    mimic_demo: Path, demo_dataset: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    ingest_mimic4(mimic_demo, again)
    files = sorted(p.relative_to(demo_dataset) for p in demo_dataset.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (demo_dataset / name).read_bytes() == (again / name).read_bytes(), name
    stamp = {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    assert ingest_mimic4(mimic_demo, again).skipped
    assert stamp == {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}


def test_ingest_meds_round_trips_our_own_output(demo_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "normalized"
    assert main(["ingest", "meds", str(demo_dataset), str(out), "--quiet"]) == 0
    assert events(out).equals(events(demo_dataset))
    assert pl.read_parquet(out / S.SPLITS_FILE).equals(pl.read_parquet(demo_dataset / S.SPLITS_FILE))
    original = pl.read_parquet(demo_dataset / S.CODES_FILE).select("code", "description")
    assert pl.read_parquet(out / S.CODES_FILE).select("code", "description").equals(original)


def test_nothing_from_an_admission_row_precedes_its_admittime(mimic_demo: Path, demo_dataset: Path) -> None:
    # edregtime comes before admittime, but the admission is only known once it happens: an event at
    # edregtime would tell an ED-triage model who will be admitted.
    admit = {int(a["hadm_id"]): a["admittime"] for a in source_rows(mimic_demo / "hosp" / "admissions.csv.gz")}
    rows = events(demo_dataset).filter(pl.col("table") == "hosp/admissions")
    times = rows.select("hadm_id", pl.col("time").dt.strftime("%Y-%m-%d %H:%M:%S")).iter_rows()
    assert all(time >= admit[hadm_id] for hadm_id, time in times)
    registrations = rows.filter(pl.col("code") == "ED_REGISTRATION")
    with_ed = [a for a in source_rows(mimic_demo / "hosp" / "admissions.csv.gz") if a["edregtime"]]
    assert registrations.height == len(with_ed)
    stamp = registrations.select("hadm_id", pl.col("time").dt.strftime("%Y-%m-%d %H:%M:%S")).iter_rows()
    assert all(time == admit[hadm_id] for hadm_id, time in stamp)
    # hours from ED registration to admission (negative in the few rows registered after admission)
    assert registrations.get_column("numeric_value").is_not_null().all()


def _times(frame: pl.DataFrame) -> list[tuple[int, str]]:
    """Sorted (subject_id, time as text) pairs: the multiset of event times of a frame."""
    return sorted(frame.select(pl.col("subject_id").cast(pl.Int64),
                               pl.col("time").dt.strftime("%Y-%m-%d %H:%M:%S%.f")).rows())


def _source(path: Path, times: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame(source_rows(path)).with_columns(
        pl.col(times).replace("", None).str.to_datetime(time_unit="us")
    )


def test_icu_interval_events_wait_for_their_storetime(mimic_demo: Path, demo_dataset: Path) -> None:
    # Demo subject 10007818, ICU stay 32359580: invasive ventilation (225792) started 2146-06-22 12:49
    # and was charted at its end, 2146-07-12 17:39. Neither its start nor its duration is known before.
    data = events(demo_dataset)
    vent = data.filter((pl.col("stay_id") == 32359580) & pl.col("code").str.contains(r"^ICU_PROCEDURE.*//225792"))
    assert vent.select("code", pl.col("time").dt.strftime("%Y-%m-%d %H:%M:%S")).sort("code").rows() == [
        ("ICU_PROCEDURE//225792//min", "2146-07-12 17:39:00"),
        ("ICU_PROCEDURE_START//225792", "2146-07-12 17:39:00"),
    ]
    # Every event of the three tables, recomputed from the source rows: an amount at the later of
    # endtime and storetime, a start (inputevents, procedureevents) at the later of starttime and storetime.
    for table, has_start in (("procedureevents", True), ("inputevents", True), ("ingredientevents", False)):
        rows = _source(mimic_demo / "icu" / f"{table}.csv.gz", ("starttime", "endtime", "storetime"))
        expected = rows.select("subject_id", pl.max_horizontal("endtime", "storetime").alias("time"))
        if has_start:
            starts = rows.select("subject_id", pl.max_horizontal("starttime", "storetime").alias("time"))
            expected = pl.concat([expected, starts])
        assert _times(data.filter(pl.col("table") == f"icu/{table}")) == _times(expected), table


def test_medications_wait_for_pharmacy_entry_and_verification(mimic_demo: Path, demo_dataset: Path) -> None:
    pharmacy = _source(mimic_demo / "hosp" / "pharmacy.csv.gz", ("starttime", "entertime", "verifiedtime"))
    prescriptions = _source(mimic_demo / "hosp" / "prescriptions.csv.gz", ("starttime",))
    data = events(demo_dataset)
    expected = pharmacy.select("subject_id", pl.max_horizontal("starttime", "entertime", "verifiedtime").alias("time"))
    assert _times(data.filter(pl.col("table") == "hosp/pharmacy")) == _times(expected)
    entered = pharmacy.select("pharmacy_id", pl.max_horizontal("entertime", "verifiedtime").alias("entered"))
    linked = prescriptions.join(entered, on="pharmacy_id", how="left")
    assert linked.get_column("entered").null_count() == 0  # every demo prescription has its pharmacy row
    expected = linked.select("subject_id", pl.max_horizontal("starttime", "entered").alias("time"))
    assert _times(data.filter(pl.col("table") == "hosp/prescriptions")) == _times(expected)
    assert report(demo_dataset)["tables"]["hosp/prescriptions"]["rows_flagged"] == 0


def test_negative_ed_duration_is_flagged(demo_dataset: Path) -> None:
    # Demo subject 10019003, admission 26529390: ED registration 21 h after admission.
    flagged = pl.read_parquet(demo_dataset / S.FLAGGED_FILE)
    assert flagged.select("table", "reason", "field", "value").rows() == [
        ("hosp/admissions", "edregtime after admittime (negative ED duration)", "edregtime", "2155-05-17 21:03:00"),
    ]
    assert json.loads(flagged.item(0, "record"))["hadm_id"] == "26529390"
