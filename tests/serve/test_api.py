"""The REST API: the service's numbers are ``ehrpredict predict``'s, errors carry field paths and the
right status, keys and scopes gate every route, the audit log records every prediction without PHI."""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from serve_support import TASK, Keys, make_context, patient_request

from ehrpredict import schema as S
from ehrpredict.bundle.predict import explanations_path, predict_bundle
from ehrpredict.errors import ConfigError
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

MODEL = f"{TASK}.counts.lgbm"
PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture(scope="module")
def predicted(hospital: Path, bundle_path: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """``ehrpredict predict --explain 5`` on the held-out split's label rows: the reference numbers."""
    labels = label_many(hospital, [load_task(TASK)])[TASK].labels
    splits = pl.read_parquet(hospital / "metadata" / "subject_splits.parquet")
    held = splits.filter(pl.col(S.SPLIT) == S.HELD_OUT).get_column(S.SUBJECT_ID)
    rows = labels.filter(pl.col(S.SUBJECT_ID).is_in(held.implode())).head(12)
    out = tmp_path_factory.mktemp("predicted") / "predictions.parquet"
    predict_bundle(bundle_path, hospital, out, labels=rows, explain=5)
    factors = pl.read_parquet(explanations_path(out))
    return pl.read_parquet(out).join(
        factors.group_by(S.SUBJECT_ID, S.PREDICTION_TIME).agg(pl.struct(pl.all()).alias("factors")),
        on=[S.SUBJECT_ID, S.PREDICTION_TIME], how="left")


def test_the_service_gives_the_predict_commands_probability_decision_and_factors(
        client: Any, hospital: Path, keys: Keys, predicted: pl.DataFrame) -> None:
    assert predicted.height >= 10
    for row in predicted.iter_rows(named=True):
        body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
        response = client.post(PREDICT, json=body, headers=keys.header("predict"))
        assert response.status_code == 200, response.text
        out = response.json()
        assert out["probability"] == float(row["predicted_boolean_probability"])  # exact, not a tolerance
        assert out["decision"] == row["predicted_boolean_value"]
        assert out["model"]["name"] == MODEL and out["subject_id"] == row[S.SUBJECT_ID]
        expected = sorted((f["direction"], f["rank"], f["feature"], f["contribution"]) for f in row["factors"] or [])
        got = sorted((f["direction"], f["rank"], f["feature"], f["contribution"]) for f in out["factors"])
        assert got == expected


def test_a_batch_gives_the_same_numbers_as_one_by_one(client: Any, hospital: Path, keys: Keys,
                                                      predicted: pl.DataFrame) -> None:
    rows = predicted.head(4).iter_rows(named=True)
    bodies = [patient_request(hospital, r[S.SUBJECT_ID], r[S.PREDICTION_TIME]) for r in rows]
    response = client.post(PREDICT + "/batch", json={"patients": bodies}, headers=keys.header("predict"))
    assert response.status_code == 200, response.text
    batch = [p["probability"] for p in response.json()["predictions"]]
    assert batch == [float(p) for p in predicted.head(4).get_column("predicted_boolean_probability")]


def test_unknown_codes_are_reported_and_change_nothing(client: Any, hospital: Path, keys: Keys,
                                                       predicted: pl.DataFrame) -> None:
    row = predicted.row(0, named=True)
    body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
    plain = client.post(PREDICT, json=body, headers=keys.header("predict")).json()
    when = row[S.PREDICTION_TIME] - timedelta(hours=1)
    body["events"] += [{"time": when.isoformat(), "code": "NEVER//SEEN"}] * 3
    out = client.post(PREDICT, json=body, headers=keys.header("predict")).json()
    assert out["unknown_codes"] == {"events": 3, "distinct": 1, "top": [["NEVER//SEEN", 3]]}
    assert plain["unknown_codes"]["events"] == 0
    assert out["probability"] == plain["probability"]


def _error(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["kind"] == kind
    return error


def test_bad_requests_get_a_4xx_naming_the_field(client: Any, hospital: Path, keys: Keys,
                                                 predicted: pl.DataFrame) -> None:
    row = predicted.row(0, named=True)
    body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
    h = keys.header("predict")
    late = dict(body, events=[*body["events"], {"time": "2999-01-01T00:00:00", "code": "LAB//X"}])
    error = _error(client.post(PREDICT, json=late, headers=h), 422, "invalid_request")
    assert error["fields"][0]["path"] == f"body.events[{len(body['events'])}].time"
    error = _error(client.post(PREDICT, json={"events": []}, headers=h), 422, "invalid_request")
    assert [f["path"] for f in error["fields"]] == ["body.prediction_time"]
    no_code = dict(body, events=[{"time": "2150-01-01T00:00:00"}])
    assert _error(client.post(PREDICT, json=no_code, headers=h), 422, "invalid_request")["fields"][0]["path"] \
        == "body.events[0].code"
    both = dict(body, fhir={"resourceType": "Bundle"})
    assert _error(client.post(PREDICT, json=both, headers=h), 422, "invalid_request")["fields"][0]["path"] == "body"
    _error(client.post(PREDICT, content=b'{"prediction_time": ', headers={**h, "content-type": "application/json"}),
           400, "malformed_json")
    error = _error(client.post("/v1/models/nope/predict", json=body, headers=h), 404, "unknown_model")
    assert MODEL in error["message"]
    batch = {"patients": [body, late]}
    error = _error(client.post(PREDICT + "/batch", json=batch, headers=h), 422, "invalid_request")
    assert error["fields"][0]["path"] == f"body.patients[1].events[{len(body['events'])}].time"


def test_keys_and_scopes_401_vs_403(client: Any, keys: Keys, hospital: Path, predicted: pl.DataFrame) -> None:
    row = predicted.row(0, named=True)
    body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
    _error(client.get("/v1/models"), 401, "unauthorized")
    _error(client.get("/v1/models", headers={"Authorization": "Bearer ehp_0000_wrong"}), 401, "unauthorized")
    forged = keys.read.rsplit("_", 1)[0] + "_" + "x" * 43
    _error(client.get("/v1/models", headers={"X-API-Key": forged}), 401, "unauthorized")
    _error(client.post(PREDICT, json=body, headers=keys.header("read")), 403, "forbidden")
    _error(client.get("/v1/models", headers=keys.header("predict")), 403, "forbidden")
    _error(client.get("/metrics", headers=keys.header("read")), 403, "forbidden")
    assert client.get("/v1/models", headers=keys.header("read")).status_code == 200
    assert client.post(PREDICT, json=body, headers=keys.header("admin")).status_code == 200  # admin: every scope
    assert client.get("/healthz").json() == {"status": "ok", "models": None}
    assert client.get("/readyz").json() == {"status": "ready", "models": 1}


def test_model_routes_show_manifest_metrics_and_card(client: Any, keys: Keys) -> None:
    models = client.get("/v1/models", headers=keys.header("read")).json()["models"]
    assert [m["name"] for m in models] == [MODEL]
    assert 0 <= models[0]["metrics"]["auroc"]["value"] <= 1
    detail = client.get(f"/v1/models/{MODEL}", headers=keys.header("read")).json()
    assert detail["manifest"]["model_version"] == detail["version"]
    assert "files" not in detail["manifest"]
    assert detail["model_card"].startswith("#")


def test_a_body_over_the_limit_gets_413(bundle_path: Path, keys: Keys, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ehrpredict.serve.app import create_app

    client = TestClient(create_app(make_context(bundle_path, keys, tmp_path, max_body_bytes=2048)))
    body = {"prediction_time": "2150-01-01T00:00:00", "events": [{"code": "X" * 100}] * 40}
    _error(client.post(PREDICT, json=body, headers=keys.header("predict")), 413, "payload_too_large")


def test_too_many_requests_from_one_key_get_429_with_retry_after(bundle_path: Path, keys: Keys,
                                                                 tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ehrpredict.serve.app import create_app

    client = TestClient(create_app(make_context(bundle_path, keys, tmp_path, rate_limit=0.01, burst=2)))
    statuses = [client.get("/v1/models", headers=keys.header("read")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.get("/v1/models", headers=keys.header("read"))
    assert int(response.headers["retry-after"]) >= 1
    assert client.get("/v1/models", headers=keys.header("admin")).status_code == 200  # the limit is per key


def test_every_prediction_is_audited_without_phi(client: Any, hospital: Path, keys: Keys, predicted: pl.DataFrame,
                                                 caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    row = predicted.row(0, named=True)
    body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
    raw = json.dumps(body).encode()
    with caplog.at_level(logging.DEBUG):
        response = client.post(PREDICT, content=raw, headers={**keys.header("predict"),
                                                             "content-type": "application/json"})
    assert response.status_code == 200
    db = sqlite3.connect(tmp_path / "audit.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    records = db.execute("SELECT key_id, endpoint, model, model_version, input_sha256, status, output, latency_ms "
                         "FROM predictions").fetchall()
    assert len(records) == 1
    key_id, endpoint, model, _version, digest, status, output, latency = records[0]
    import hashlib

    assert (endpoint, model, status) == ("/v1/models/{name}/predict", MODEL, 200)
    assert digest == hashlib.sha256(raw).hexdigest() and latency > 0 and key_id == keys.predict.split("_")[1]
    assert json.loads(output)[0]["probability"] == response.json()["probability"]
    stored = " ".join(str(v) for v in records[0])
    logged = caplog.text
    for phi in (str(row[S.SUBJECT_ID]), body["events"][0]["code"], body["events"][-1]["code"]):
        assert phi not in stored and phi not in logged
    assert "/v1/models/{name}/predict 200" in logged  # the access line: route template, status


def test_metrics_count_requests_latency_and_errors(client: Any, keys: Keys) -> None:
    client.get("/v1/models", headers=keys.header("read"))
    client.get("/v1/models")
    text = client.get("/metrics", headers=keys.header("admin")).text
    assert 'ehrpredict_requests_total{method="GET",route="/v1/models",status="200"} 1.0' in text
    assert 'ehrpredict_errors_total{kind="unauthorized"} 1.0' in text
    assert 'ehrpredict_request_seconds_bucket{le="0.1",route="/v1/models"}' in text


def test_a_broken_bundle_is_a_clear_error_at_start_up(bundle_path: Path, tmp_path: Path) -> None:
    import shutil

    from ehrpredict.bundle import BundleError
    from ehrpredict.serve.context import load_models

    copy = tmp_path / "broken"
    shutil.copytree(bundle_path, copy)
    (copy / "calibration.json").write_text("{}")
    with pytest.raises(BundleError, match=r"calibration\.json"):
        load_models([copy])
    with pytest.raises(ConfigError, match="twice"):
        load_models([bundle_path, bundle_path])


def test_the_real_server_on_loopback_answers(live_server: str, keys: Keys, hospital: Path,
                                             predicted: pl.DataFrame) -> None:
    import httpx

    row = predicted.row(1, named=True)
    body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])
    response = httpx.post(live_server + PREDICT, json=body, headers=keys.header("predict"), timeout=30)
    assert response.status_code == 200
    assert response.json()["probability"] == float(row["predicted_boolean_probability"])
    assert httpx.get(live_server + "/openapi.json", timeout=30).json()["info"]["title"] == "ehrpredict"


def test_an_internal_error_is_a_json_500_without_the_input_and_the_server_goes_on(
        client: Any, keys: Keys, hospital: Path, predicted: pl.DataFrame, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from ehrpredict.serve.scoring import ServedModel

    row = predicted.row(0, named=True)
    body = patient_request(hospital, row[S.SUBJECT_ID], row[S.PREDICTION_TIME])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"a bug that quotes {body['events'][0]['code']}")

    with monkeypatch.context() as patch:
        patch.setattr(ServedModel, "score_many", broken)
        from fastapi.testclient import TestClient

        raising = TestClient(client.app, raise_server_exceptions=False)
        with caplog.at_level(logging.ERROR):
            error = _error(raising.post(PREDICT, json=body, headers=keys.header("predict")), 500, "internal")
        assert body["events"][0]["code"] not in error["message"] + caplog.text
        assert "RuntimeError" in caplog.text
    assert client.post(PREDICT, json=body, headers=keys.header("predict")).status_code == 200
