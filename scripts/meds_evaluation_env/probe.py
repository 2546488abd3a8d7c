"""Runs INSIDE meds-evaluation's own virtualenv (polars 2), never with the project's python.

    probe.py PREDICTIONS.parquet   ->   one JSON object on stdout

It does what ``meds-evaluation-cli`` does (``pl.read_parquet`` then ``evaluate_binary_classification``
with the defaults of its packaged ``configs/meds_evaluation.yaml``), but reports the schema check apart
from the metrics. Its schema check is ``PredictionSchema.align`` (what ``evaluate_binary_classification``
calls: reject missing/extra columns, cast types that differ safely) followed by
``PredictionSchema.validate`` on the aligned table: when ``align`` has to cast a column (float64
probabilities always need one, the schema wants float32) it returns without checking nullability,
so a null ``boolean_value`` would otherwise pass the check and only break the metrics.
scripts/meds_evaluation_check.py drives this file; see it for what each field means.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from importlib.resources import files

import polars as pl
from flexible_schema import SchemaValidationError, TableValidationError
from meds_evaluation.evaluate import evaluate_binary_classification
from meds_evaluation.schema import PredictionSchema
from omegaconf import OmegaConf

AUROC = "roc_auc_score"


def one_line(error: Exception) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def main(path: str) -> dict[str, object]:
    config = OmegaConf.load(str(files("meds_evaluation").joinpath("configs/meds_evaluation.yaml")))
    out: dict[str, object] = {
        "meds_evaluation_version": version("meds-evaluation"),
        "polars_version": pl.__version__,
        "samples_per_subject": int(config.samples_per_subject),
        "resampling_seed": int(config.resampling_seed),
        "exact_types_error": None,
        "casts": [],
        "schema_error": None,
        "evaluation_error": None,
        "auroc_subjects_equally_weighted": None,
        "auroc_samples_equally_weighted": None,
    }
    predictions = pl.read_parquet(path)
    table = predictions.to_arrow()
    try:
        PredictionSchema.validate(table)
    except (SchemaValidationError, TableValidationError) as error:
        out["exact_types_error"] = one_line(error)
    try:
        aligned = PredictionSchema.align(table)
        PredictionSchema.validate(aligned)
    except (SchemaValidationError, TableValidationError) as error:
        out["schema_error"] = one_line(error)
        return out
    out["casts"] = [
        f"{name}: {table.schema.field(name).type} -> {aligned.schema.field(name).type}"
        for name in aligned.schema.names
        if table.schema.field(name).type != aligned.schema.field(name).type
    ]
    try:
        results = evaluate_binary_classification(
            predictions,
            samples_per_subject=int(config.samples_per_subject),
            resampling_seed=int(config.resampling_seed),
        )
    except Exception as error:  # reported, not swallowed: the caller fails on any evaluation error
        out["evaluation_error"] = one_line(error)
        return out
    out["auroc_subjects_equally_weighted"] = results["subjects_equally_weighted"].get(AUROC)
    out["auroc_samples_equally_weighted"] = results["samples_equally_weighted"].get(AUROC)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: probe.py PREDICTIONS.parquet")
    print(json.dumps(main(sys.argv[1])))
