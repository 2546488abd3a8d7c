"""Regression and multilabel bundles through the service: the predicted value, and the categories with
their probabilities, equal `ehrpredict predict`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from serve_support import Keys, patient_request

from ehrpredict import schema as S
from ehrpredict.bundle.fit import fit_bundle
from ehrpredict.bundle.predict import predict_bundle
from ehrpredict.experiments.config import BenchmarkConfig
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

MODELS = {"regression": ("length_of_stay_days", "lgbm"), "multilabel": ("discharge_diagnoses_icd10", "lr")}


@pytest.fixture(scope="module")
def served(hospital: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fastapi.testclient import TestClient

    from ehrpredict.serve.app import create_app
    from ehrpredict.serve.audit import AuditLog
    from ehrpredict.serve.auth import SessionSigner
    from ehrpredict.serve.context import ServeContext, load_models

    root = tmp_path_factory.mktemp("label-types")
    paths = {}
    for kind, (task, head) in MODELS.items():
        config = BenchmarkConfig(dataset=hospital, out=hospital, tasks=(task,), representations=("counts",),
                                 heads=(head,), n_boot=10, shuffle_permutations=1, seed=0)
        paths[kind] = fit_bundle(config, root / kind).out
    ctx = ServeContext(load_models(list(paths.values())), keys.store, AuditLog(root / "audit.sqlite"),
                       SessionSigner.from_file(None))
    return TestClient(create_app(ctx)), paths


@pytest.mark.parametrize("kind", list(MODELS))
def test_regression_and_multilabel_answers_equal_predict(served: Any, kind: str, hospital: Path, keys: Keys,
                                                         tmp_path: Path) -> None:
    client, paths = served
    task = MODELS[kind][0]
    rows = label_many(hospital, [load_task(task)])[task].labels.head(3)
    predict_bundle(paths[kind], hospital, tmp_path / "p.parquet", labels=rows)
    expected = pl.read_parquet(tmp_path / "p.parquet")
    name = f"{task}.counts.{MODELS[kind][1]}"
    for row in expected.iter_rows(named=True):
        body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
        response = client.post(f"/v1/models/{name}/predict", json=body, headers=keys.header("predict"))
        assert response.status_code == 200, response.text
        out = response.json()
        assert out["probability"] is None
        if kind == "regression":
            assert out["prediction"] == row["predicted_float_value"]
            assert out["factors"]
        else:
            assert "|".join(out["categories"]) == row["predicted_categorical_value"]
            assert list(out["category_probabilities"].values()) == row["predicted_category_probabilities"]
            assert out["factors"] == []  # multilabel models are not explained by factors yet
