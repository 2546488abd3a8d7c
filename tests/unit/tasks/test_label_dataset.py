"""label_dataset + write_labels and ``ehrpredict label`` on a tiny MIMIC-shaped hospital ingested to disk.

The hospital is ``ehrpredict.testing.minimal_hospital`` plus two rows:

    subject 1 (born 2100) admission 101  2150-05-01 10:00 → 05-05 12:00 HOME, diagnoses I50.9, I50.1
                          admission 102  2150-05-20 08:00 → 05-22 08:00 HOME (15 days after 101)
    subject 2 (born 2090) admission 201  2160-03-01 09:00 → 03-12 08:00 DIED (deathtime 03-12 08:00)
    subject 3 (age 91)    admission 301  2170-07-10 14:30 → 07-11 10:00 HOME (under 24 h)
    subject 4 (born 2140) admission 401  2150-02-01 08:00 → 02-03 08:00 HOME (10 years old)
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import meds
import polars as pl
import pyarrow.parquet as pq
import pytest

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.ingest.mimic4 import IngestConfig, ingest_mimic4
from ehrpredict.tasks.labeler import label_dataset, write_labels
from ehrpredict.tasks.spec import library_names, load_task
from ehrpredict.testing import ADMISSIONS, PATIENTS, minimal_hospital, write_table

T = datetime.fromisoformat


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = minimal_hospital(tmp_path_factory.mktemp("raw"))
    child = {"subject_id": 4, "gender": "M", "anchor_age": 10, "anchor_year": 2150}
    write_table(raw, "hosp/patients", [*PATIENTS, child])
    write_table(raw, "hosp/admissions", [
        *ADMISSIONS,
        {"subject_id": 1, "hadm_id": 102, "admittime": "2150-05-20 08:00:00", "dischtime": "2150-05-22 08:00:00",
         "admission_type": "URGENT", "discharge_location": "HOME"},
        {"subject_id": 4, "hadm_id": 401, "admittime": "2150-02-01 08:00:00", "dischtime": "2150-02-03 08:00:00",
         "admission_type": "URGENT", "discharge_location": "HOME"},
    ])
    write_table(raw, "hosp/diagnoses_icd", [
        {"subject_id": 1, "hadm_id": 101, "seq_num": 1, "icd_code": "I509", "icd_version": 10},
        {"subject_id": 1, "hadm_id": 101, "seq_num": 2, "icd_code": "I501", "icd_version": 10},
    ])
    out = tmp_path_factory.mktemp("meds") / "meds"
    ingest_mimic4(raw, out, IngestConfig(subjects_per_shard=2))
    return out


def splits_of(dataset: Path) -> dict[int, str]:
    return dict(pl.read_parquet(dataset / S.SPLITS_FILE).select(S.SUBJECT_ID, S.SPLIT).iter_rows())


def test_readmission_labels_and_cohort_report_are_written(dataset: Path, tmp_path: Path) -> None:
    assert len(list((dataset / S.DATA_DIR).rglob("*.parquet"))) >= 2  # the labeler reads several shards
    result = label_dataset(dataset, load_task("readmission_30d"))
    out = tmp_path / "labels" / "readmission_30d.parquet"
    report_path = write_labels(result, out)

    table = pq.read_table(out)
    meds.LabelSchema.validate(table)
    assert table.column_names == [S.SUBJECT_ID, "prediction_time", "boolean_value"]  # nothing extra
    assert sorted(table.to_pylist(), key=lambda r: (r[S.SUBJECT_ID], r["prediction_time"])) == [
        {S.SUBJECT_ID: 1, "prediction_time": T("2150-05-05 12:00"), "boolean_value": True},  # back on 05-20
        {S.SUBJECT_ID: 1, "prediction_time": T("2150-05-22 08:00"), "boolean_value": False},
        {S.SUBJECT_ID: 3, "prediction_time": T("2170-07-11 10:00"), "boolean_value": False},
    ]

    split = splits_of(dataset)
    values = {1: [True, False], 3: [False]}  # per subject, from the rows above
    by_split: dict[str, dict[str, float]] = {}
    for name in S.SPLITS:
        mine = [v for subject, vs in values.items() if split[subject] == name for v in vs]
        by_split[name] = {"n": len(mine), **({"prevalence": round(sum(mine) / len(mine), 4)} if mine else {})}
    assert report_path == tmp_path / "labels" / "readmission_30d.cohort.json"
    assert json.loads(report_path.read_text()) == {
        "task": "readmission_30d",
        "n_episodes": 5,
        "n_labels": 3,
        "excluded": {"died at or before prediction time": 1, "younger than 18 or unknown age": 1},  # 2, 4
        "by_split": by_split,
    }


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        # only admission 101 lasts 24 h and has ICD-10 diagnoses: I50.9 and I50.1 are one category
        ("discharge_diagnoses_icd10", [{"prediction_time": T("2150-05-02 10:00"), "categorical_value": "I50"}]),
        # no deaths after discharge: each is censored at subject 1's last discharge (05-22 08:00) + 365 d
        ("time_to_death_after_discharge", [
            {"prediction_time": T("2150-05-05 12:00"), "boolean_value": False, "float_value": 381.8333},
            {"prediction_time": T("2150-05-22 08:00"), "boolean_value": False, "float_value": 365.0},
        ]),
    ],
)
def test_other_label_types_write_meds_labels(dataset: Path, tmp_path: Path, task: str, expected: list[dict]) -> None:
    write_labels(label_dataset(dataset, load_task(task)), tmp_path / "labels.parquet")
    table = pq.read_table(tmp_path / "labels.parquet")
    meds.LabelSchema.validate(table)
    rows = [r for r in table.to_pylist() if r.pop(S.SUBJECT_ID) == 1]
    rows = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    assert rows == expected


def test_cli_label_all_writes_every_task(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", str(dataset), "all", str(tmp_path)]) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.parquet")) == library_names()
    for path in tmp_path.glob("*.parquet"):
        meds.LabelSchema.validate(pq.read_table(path))
    assert "readmission_30d: 3 labels from 5 episodes" in capsys.readouterr().out


def test_cli_label_an_unknown_task(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", str(dataset), "no_such_task", str(tmp_path / "out.parquet")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "'no_such_task'" in err and "\n" not in err
    assert all(name in err for name in library_names())
    assert list(tmp_path.iterdir()) == []
