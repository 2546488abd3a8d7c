"""Labels on the real MIMIC-IV demo, checked against the raw tables with independent code: the audit's
cases (ICU stays that begin before admittime, planned returns, deaths before readmission) and the
agreement between the time-to-event and the binary 1-year mortality tasks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

pytestmark = pytest.mark.demo

PLANNED = ("ELECTIVE", "SURGICAL SAME DAY ADMISSION")


@pytest.fixture(scope="module")
def labels(demo_dataset: Path) -> dict[str, pl.DataFrame]:
    names = ["icu_transfer_24h", "readmission_30d", "time_to_death_after_discharge", "mortality_1y_after_discharge"]
    return {name: result.labels for name, result in label_many(demo_dataset, [load_task(n) for n in names]).items()}


def _admissions(mimic_demo: Path) -> pl.DataFrame:
    times = ("admittime", "dischtime", "deathtime")
    return pl.read_csv(mimic_demo / "hosp" / "admissions.csv.gz", infer_schema_length=0).with_columns(
        pl.col("subject_id").cast(pl.Int64), *(pl.col(c).str.to_datetime("%Y-%m-%d %H:%M:%S") for c in times)
    )


def test_an_icu_stay_that_began_before_admittime_excludes_icu_transfer(
    mimic_demo: Path, labels: dict[str, pl.DataFrame]
) -> None:
    # Cardiac surgery: the CVICU stay starts before the admission is recorded (10013049: in at
    # 09:32:58, admitted 10:15) and lasts past admission + 24 h, so the patient is already in an ICU.
    adm = _admissions(mimic_demo).filter(pl.col("hadm_id").is_in(["22675517", "23251352"]))
    assert adm.height == 2
    predicted = labels["icu_transfer_24h"].join(
        adm.select("subject_id", (pl.col("admittime") + timedelta(hours=24)).alias("prediction_time")),
        on=["subject_id", "prediction_time"],
    )
    assert predicted.is_empty()


def test_readmission_labels_match_an_independent_computation(
    mimic_demo: Path, labels: dict[str, pl.DataFrame]
) -> None:
    adm = _admissions(mimic_demo)
    dod = pl.read_csv(mimic_demo / "hosp" / "patients.csv.gz", infer_schema_length=0).select(
        pl.col("subject_id").cast(pl.Int64), (pl.col("dod").str.to_date().cast(pl.Datetime("us"))
                                             + timedelta(hours=23, minutes=59, seconds=59)).alias("dod"),
    )
    index = adm.filter(pl.col("deathtime").is_null() & (pl.col("hospital_expire_flag") == "0")).join(
        dod, on="subject_id", how="left"
    ).filter(pl.col("dod").is_null() | (pl.col("dod") > pl.col("dischtime")))
    later = adm.select(
        "subject_id", pl.col("admittime").alias("next_admit"), pl.col("admission_type").alias("next_type")
    )
    after = pl.col("next_admit") - pl.col("dischtime")
    window = index.join(later, on="subject_id").filter((after > timedelta(0)) & (after <= timedelta(days=30)))
    unplanned = window.filter(~pl.col("next_type").is_in(PLANNED))
    first = unplanned.group_by("hadm_id").agg(pl.col("next_admit").min().alias("readmit"))
    expected = index.join(first, on="hadm_id", how="left").with_columns(pl.col("readmit").is_not_null().alias("value"))
    competing = ~pl.col("value") & (pl.col("dod") <= pl.col("dischtime") + timedelta(days=30)).fill_null(False)
    expected = expected.filter(~competing).select(
        "subject_id", pl.col("dischtime").alias("prediction_time"), pl.col("value").alias("boolean_value")
    ).sort("subject_id", "prediction_time")
    got = labels["readmission_30d"].select("subject_id", "prediction_time", "boolean_value")
    assert got.sort("subject_id", "prediction_time").to_dicts() == expected.to_dicts()
    # the audit's 3 planned-only returns are among the discharges that are now negative
    planned_only = window.join(first, on="hadm_id", how="anti").select("hadm_id").unique()
    assert planned_only.height == 3


def _kaplan_meier(days: list[float], events: list[bool], horizon: float) -> float:
    """1 - S(horizon), by hand: at each event time, multiply by 1 - deaths / at risk."""
    survival = 1.0
    for t in sorted({d for d, e in zip(days, events, strict=True) if e and d <= horizon}):
        at_risk = sum(1 for d in days if d >= t)
        deaths = sum(1 for d, e in zip(days, events, strict=True) if e and d == t)
        survival *= 1 - deaths / at_risk
    return 1 - survival


def test_kaplan_meier_one_year_mortality_equals_the_binary_task(labels: dict[str, pl.DataFrame]) -> None:
    survival = labels["time_to_death_after_discharge"]
    binary = labels["mortality_1y_after_discharge"]
    assert survival.select("subject_id", "prediction_time").equals(binary.select("subject_id", "prediction_time"))
    km = _kaplan_meier(survival.get_column("float_value").to_list(), survival.get_column("boolean_value").to_list(),
                       365.0)
    rate = binary.get_column("boolean_value").mean()
    assert isinstance(rate, float) and rate > 0.05  # the demo has deaths within a year of discharge
    assert km == pytest.approx(rate, abs=1e-9)
