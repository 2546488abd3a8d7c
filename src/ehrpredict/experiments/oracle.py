"""The synthetic hospital's oracle: the generator's true risk for each outcome, scored like a model.

A dataset ingested from a synthetic hospital names its source in ``data_quality.json``; the generator
wrote ``oracle/oracle.parquet`` there (subject, anchor time, outcome, probability). The oracle's AUROC
on the held-out rows is the ceiling a model could reach on that task.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl

from ehrpredict import schema as S
from ehrpredict.evaluation import binary_report
from ehrpredict.evaluation.curves import binary_curves
from ehrpredict.experiments.model_results import Curves
from ehrpredict.experiments.results import OracleResult
from ehrpredict.tasks.spec import TaskSpec, parse_duration

# Built-in task -> outcome name in a synthetic hospital's oracle file.
ORACLE_OUTCOMES = {
    "mortality_in_hospital_24h": "in_hospital_death", "mortality_in_hospital_48h": "in_hospital_death",
    "long_los_7d": "long_los_7d", "icu_transfer_24h": "icu_transfer", "readmission_30d": "readmission_30d",
    "mortality_1y_after_discharge": "death_365d_after_discharge",
    **{t: t for t in ("hyperkalemia_48h", "hypoglycemia_48h", "hyponatremia_48h", "thrombocytopenia_48h",
                      "anemia_48h", "aki_48h", "ed_hospitalization", "ed_critical_outcome", "ed_revisit_72h",
                      "new_hypertension_1y", "new_hyperlipidemia_1y", "new_chronic_kidney_disease_1y",
                      "new_heart_failure_1y", "new_type2_diabetes_1y")},
}


def load_oracle(dataset: Path) -> pl.DataFrame | None:
    """The generator's oracle when the dataset was ingested from a synthetic hospital."""
    quality = dataset / S.QUALITY_REPORT_FILE
    if not quality.exists():
        return None
    source = Path(json.loads(quality.read_text()).get("source", ""))
    path = source / "oracle" / "oracle.parquet"
    return pl.read_parquet(path) if path.exists() else None


def oracle_matches(spec: TaskSpec, oracle: pl.DataFrame, rows: pl.DataFrame) -> pl.DataFrame | None:
    """``rows`` (label rows of ``spec``) that the oracle has a probability for, with a
    ``probability`` column (in no particular order); None when the oracle's outcome has no single anchor."""
    truth = oracle.filter(pl.col("outcome") == ORACLE_OUTCOMES[spec.name])
    anchors = truth.get_column("anchor").unique().to_list()
    if len(anchors) != 1:
        return None
    offset = parse_duration(anchors[0].split("+")[1], "anchor") if "+" in anchors[0] else timedelta(0)
    truth = truth.select(S.SUBJECT_ID, pl.col(S.PREDICTION_TIME) + pl.lit(spec.offset - offset), "probability")
    return rows.join(truth, on=[S.SUBJECT_ID, S.PREDICTION_TIME], how="inner")


def oracle_auroc(spec: TaskSpec, oracle: pl.DataFrame, held_out: pl.DataFrame, n_boot: int,
                 seed: int) -> OracleResult:
    """The oracle's metrics on the held-out label rows it has a probability for."""
    joined = oracle_matches(spec, oracle, held_out)
    if joined is None:
        return OracleResult(status="no single oracle anchor")
    if joined.height < 10 or joined.get_column(S.BOOLEAN_VALUE).n_unique() < 2:
        return OracleResult(status="too few matched episodes", matched=joined.height)
    y = joined.get_column(S.BOOLEAN_VALUE).to_numpy().astype(int)
    metrics = binary_report(y, joined.get_column("probability").to_numpy(), joined.get_column(S.SUBJECT_ID).to_numpy(),
                            0.5, n_boot=n_boot, seed=seed)
    return OracleResult(status="done", matched=joined.height, of=held_out.height, metrics=metrics,
                        curves=Curves.from_json(binary_curves(y, joined.get_column("probability").to_numpy())))
