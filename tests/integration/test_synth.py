"""The synthetic hospital end to end: `ehrpredict synth` → `ehrpredict ingest mimic4`, and realism vs the demo."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ehrpredict.cli import main
from ehrpredict.dataset import dataset_code_kinds, dataset_info
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS

N_PATIENTS = 500
LABS = {50912: "creatinine", 50971: "potassium", 50983: "sodium", 50931: "glucose", 51222: "hemoglobin",
        51265: "platelets", 51301: "wbc", 50813: "lactate", 50882: "bicarbonate", 51006: "bun"}


@pytest.fixture(scope="module")
def synth_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    assert main(["synth", str(out), "--patients", str(N_PATIENTS), "--seed", "11", "--quiet"]) == 0
    return out


def test_ingests_unchanged_with_nothing_quarantined(synth_raw: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    meds = tmp_path / "meds"
    assert main(["ingest", "mimic4", str(synth_raw), str(meds), "--quiet"]) == 0
    report = json.loads((meds / "data_quality.json").read_text())
    assert report["n_subjects"] == N_PATIENTS
    assert report["totals"]["rows_quarantined"] == 0
    assert report["unrecognized_files"] == []
    tables = set(report["tables"])
    assert {"hosp/labevents", "icu/chartevents", "ed/triage", "note/discharge", "note/radiology"} <= tables
    # The oracle never enters the dataset: not a table, not a file, not an event.
    listed = [*tables, *report["tables_not_mapped"], *report["unrecognized_files"]]
    assert not [t for t in listed if "oracle" in t]
    assert not [p for p in meds.rglob("*") if "oracle" in p.name.lower()]
    events = pl.scan_parquet(meds / "data" / "**" / "*.parquet")
    found = events.filter(pl.col("table").str.contains("oracle") | pl.col("code").str.contains("(?i)oracle"))
    assert found.select(pl.len()).collect().item() == 0
    assert "wrote" in capsys.readouterr().out
    # Every prefix the code kinds name is written (but HCPCS: the synthetic hospital has no hcpcsevents;
    # the MIMIC-IV demo has, see tests/integration/test_mimic_demo.py).
    assert dataset_code_kinds(meds) == DEFAULT_CODE_KINDS
    kinds = DEFAULT_CODE_KINDS.to_json().values()
    named = {p for value in kinds for p in (value if isinstance(value, list) else [value]) if p}
    assert named - set(dataset_info(meds).events_by_prefix) == {"HCPCS"}


def _stats(raw: Path) -> dict[str, float]:
    """The realism figures of docs/synthetic.md, from the raw tables of a MIMIC-IV directory."""
    adm = pl.read_csv(raw / "hosp/admissions.csv.gz", infer_schema_length=0).with_columns(
        pl.col("admittime", "dischtime").str.to_datetime("%Y-%m-%d %H:%M:%S"))
    los = ((adm["dischtime"] - adm["admittime"]).dt.total_seconds() / 86400)
    dx = pl.read_csv(raw / "hosp/diagnoses_icd.csv.gz", infer_schema_length=0).group_by("hadm_id").len()["len"]
    out = {
        "admissions_per_patient": adm.height / adm["subject_id"].n_unique(),
        "los_median": float(los.median()), "los_q25": float(los.quantile(0.25)), "los_q75": float(los.quantile(0.75)),
        "death_rate": float(adm["hospital_expire_flag"].cast(pl.Int64).mean()),  # type: ignore[arg-type]
        "dx_per_admission": float(dx.median()),  # type: ignore[arg-type]
    }
    labs = pl.read_csv(raw / "hosp/labevents.csv.gz", columns=["itemid", "valuenum"],
                       schema_overrides={"itemid": pl.Int64, "valuenum": pl.Float64})
    for itemid, name in LABS.items():
        values = labs.filter(pl.col("itemid") == itemid)["valuenum"].drop_nulls()
        for q in (0.01, 0.05, 0.5, 0.95, 0.99):
            out[f"{name}_p{round(q * 100)}"] = float(values.quantile(q))  # type: ignore[arg-type]
    return out


@pytest.mark.demo
def test_realism_against_the_mimic_demo(synth_raw: Path, mimic_demo: Path) -> None:
    synth, demo = _stats(synth_raw), _stats(mimic_demo)
    # Patients with at least one admission, as in the demo (ED-only patients have none).
    for key in ("admissions_per_patient", "los_median", "los_q25", "los_q75", "dx_per_admission"):
        assert demo[key] / 1.5 <= synth[key] <= demo[key] * 1.5, (key, synth[key], demo[key])
    assert demo["death_rate"] / 2 <= synth["death_rate"] <= demo["death_rate"] * 2
    for name in LABS.values():
        assert demo[f"{name}_p1"] <= synth[f"{name}_p5"], name
        assert synth[f"{name}_p95"] <= demo[f"{name}_p99"], name
