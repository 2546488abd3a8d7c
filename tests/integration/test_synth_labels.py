"""Task labels computed from the ingested synthetic hospital agree with the generator's own outcomes.

Two independent paths: the generator draws each outcome and writes it to the oracle file; the
labeler finds it again from MEDS events after ingestion. Agreement is checked on the episodes both
cover, joined on (subject_id, prediction_time).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task, parse_duration

# task -> (oracle outcome, minimum agreement). Exact unless the generator documents a difference:
# new diagnoses are drawn at most once per condition per year (docs/synthetic.md).
PAIRS = {
    "mortality_in_hospital_24h": ("in_hospital_death", 1.0),
    "long_los_7d": ("long_los_7d", 1.0),
    "icu_transfer_24h": ("icu_transfer", 1.0),
    "readmission_30d": ("readmission_30d", 1.0),
    "mortality_1y_after_discharge": ("death_365d_after_discharge", 1.0),
    "hyperkalemia_48h": ("hyperkalemia_48h", 1.0),
    "hypoglycemia_48h": ("hypoglycemia_48h", 1.0),
    "hyponatremia_48h": ("hyponatremia_48h", 1.0),
    "thrombocytopenia_48h": ("thrombocytopenia_48h", 1.0),
    "anemia_48h": ("anemia_48h", 1.0),
    "aki_48h": ("aki_48h", 0.98),  # generator: rise over the admission value; task: over the last value
    "new_heart_failure_1y": ("new_heart_failure_1y", 0.97),
    "new_type2_diabetes_1y": ("new_type2_diabetes_1y", 0.97),
    "ed_hospitalization": ("ed_hospitalization", 1.0),
    "ed_critical_outcome": ("ed_critical_outcome", 1.0),
    "ed_revisit_72h": ("ed_revisit_72h", 1.0),
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("synth")
    raw, meds = root / "raw", root / "meds"
    generate(raw, SynthConfig(n_patients=400, seed=11))
    ingest_mimic4(raw, meds)
    return raw, meds


def test_labels_agree_with_the_generators_outcomes(synthetic: tuple[Path, Path]) -> None:
    raw, meds = synthetic
    oracle = pl.read_parquet(raw / "oracle" / "oracle.parquet")
    specs = {name: load_task(name) for name in PAIRS}
    results = label_many(meds, list(specs.values()))
    for task, (outcome, minimum) in PAIRS.items():
        labels = results[task].labels
        truth = oracle.filter(pl.col("outcome") == outcome)
        # The oracle states its own anchor ("admission", "admission+24h", "discharge", ...); shift its
        # time to the task's prediction time (e.g. in-hospital death is drawn at admission, the task
        # predicts it 24 h later).
        anchors = truth.get_column("anchor").unique().to_list()
        assert len(anchors) == 1, (task, anchors)
        oracle_offset = parse_duration(anchors[0].split("+")[1], "anchor") if "+" in anchors[0] else timedelta(0)
        shift = specs[task].offset - oracle_offset
        truth = truth.select("subject_id", pl.col("prediction_time") + pl.lit(shift), "realized")
        joined = labels.join(truth, on=["subject_id", "prediction_time"], how="inner")
        assert labels.height > 0, task
        # New diagnoses have an oracle row only for the first discharge of each year (see above).
        min_match = 0.3 if task.startswith("new_") else 0.6
        assert joined.height >= min_match * labels.height, f"{task}: only {joined.height} of {labels.height} matched"
        agreement = (joined.get_column("boolean_value") == joined.get_column("realized")).mean()
        assert agreement is not None and agreement >= minimum, f"{task}: agreement {agreement:.3f}"
        assert joined.get_column("realized").any(), f"{task}: no positive outcome to compare"
