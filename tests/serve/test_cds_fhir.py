"""FHIR in through the service: a patient posted as a FHIR R4 Bundle gets the probability the dataset
route gives, and CDS Hooks (discovery, patient-view with prefetch) answers with a card of that risk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from serve_support import TASK, Keys

from ehrpredict import schema as S
from ehrpredict.bundle.predict import predict_bundle
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

MODEL = f"{TASK}.counts.lgbm"
SERVICE = f"ehrpredict-{MODEL}"


@pytest.fixture(scope="module")
def rows(hospital: Path, bundle_path: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    labels = label_many(hospital, [load_task(TASK)])[TASK].labels
    chosen = labels.unique(S.SUBJECT_ID, keep="first", maintain_order=True).head(6)
    out = tmp_path_factory.mktemp("cds") / "predictions.parquet"
    predict_bundle(bundle_path, hospital, out, labels=chosen)
    return pl.read_parquet(out)


def _fhir_bundle(hospital: Path, subject_id: int, until: Any) -> dict[str, Any]:
    from ehrpredict.ingest.fhir import bundle_from_events

    events = pl.scan_parquet(hospital / S.DATA_DIR / "**" / "*.parquet").filter(
        (pl.col(S.SUBJECT_ID) == subject_id) & (pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= until))).collect()
    return bundle_from_events(events)


def test_a_patient_posted_as_a_fhir_bundle_gets_the_datasets_probability(client: Any, hospital: Path, keys: Keys,
                                                                          rows: pl.DataFrame) -> None:
    for row in rows.iter_rows(named=True):
        when = row[S.PREDICTION_TIME]
        body = {"prediction_time": when.isoformat(), "fhir": _fhir_bundle(hospital, row[S.SUBJECT_ID], when)}
        response = client.post(f"/v1/models/{MODEL}/predict", json=body, headers=keys.header("predict"))
        assert response.status_code == 200, response.text
        out = response.json()
        assert out["subject_id"] == row[S.SUBJECT_ID]
        assert out["probability"] == float(row["predicted_boolean_probability"])


def test_an_invalid_fhir_bundle_gets_422_with_the_field_path(client: Any, keys: Keys) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": {"resourceType": "Patient", "id": "p1", "gender": 7}}]}
    response = client.post(f"/v1/models/{MODEL}/predict", json={"prediction_time": "2150-01-01T00:00:00",
                                                                 "fhir": bundle}, headers=keys.header("predict"))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["kind"] == "invalid_fhir"
    assert error["fields"][0]["path"].startswith("body.fhir.entry[0]")


def test_cds_discovery_lists_a_patient_view_service_per_model(client: Any, keys: Keys) -> None:
    services = client.get("/cds-services", headers=keys.header("predict")).json()["services"]
    assert [(s["hook"], s["id"]) for s in services] == [("patient-view", SERVICE)]
    assert services[0]["prefetch"]["patient"] == "Patient/{{context.patientId}}"
    assert client.get("/cds-services").status_code == 401


def _hook_request(bundle: dict[str, Any], patient_id: str, when: Any) -> dict[str, Any]:
    """A patient-view request as an EHR sends it: the discovery answer's prefetch keys, each filled with
    the resources its template asks for (a resource, or a searchset Bundle)."""
    from ehrpredict.serve.cds import PREFETCH

    resources = [e["resource"] for e in bundle["entry"]]
    prefetch: dict[str, Any] = {}
    for key, template in PREFETCH.items():
        kind = template.split("?")[0].split("/")[0]
        found = [r for r in resources if r["resourceType"] == kind]
        if template.startswith("Patient/"):
            prefetch[key] = found[0]
        else:
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                             "entry": [{"resource": r} for r in found]}
    asked = {t.split("?")[0].split("/")[0] for t in PREFETCH.values()}
    assert {r["resourceType"] for r in resources} <= asked, "the prefetch templates must cover every resource"
    return {"hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", "hook": "patient-view",
            "context": {"userId": "Practitioner/123", "patientId": patient_id}, "prefetch": prefetch,
            "extension": {"org.ehrpredict.prediction_time": when.isoformat()}}


def test_patient_view_answers_with_a_card_of_the_patients_risk(client: Any, hospital: Path, keys: Keys,
                                                               rows: pl.DataFrame) -> None:
    with_notes = 0
    for row in rows.iter_rows(named=True):
        when = row[S.PREDICTION_TIME]
        bundle = _fhir_bundle(hospital, row[S.SUBJECT_ID], when)
        with_notes += any(e["resource"]["resourceType"] == "DocumentReference" for e in bundle["entry"])
        patient_id = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        response = client.post(f"/cds-services/{SERVICE}", json=_hook_request(bundle, patient_id, when),
                               headers=keys.header("predict"))
        assert response.status_code == 200, response.text
        (card,) = response.json()["cards"]
        probability = float(row["predicted_boolean_probability"])
        assert card["summary"].startswith(f"{TASK}: risk {probability:.0%}"), (card["summary"], probability)
        assert card["extension"]["org.ehrpredict.probability"] == probability  # exact: the dataset route's
    assert with_notes > 0  # notes are features: a prefetch without them would change the risk
    assert len(card["summary"]) <= 140
    assert "topic" not in card["source"]  # absent fields are left out, not null
    assert card["indicator"] == ("warning" if row["predicted_boolean_value"] else "info")
    assert card["source"]["label"] == f"ehrpredict {MODEL}"
    assert f"/dashboard/patients/{row[S.SUBJECT_ID]}?model={MODEL}" in card["links"][0]["url"]
    assert "Raises the risk" in card["detail"] or "Lowers the risk" in card["detail"]


def test_patient_view_without_prefetch_is_412_and_a_wrong_hook_422(client: Any, keys: Keys) -> None:
    request = {"hookInstance": "x", "hook": "patient-view", "context": {"patientId": "p"}}
    response = client.post(f"/cds-services/{SERVICE}", json=request, headers=keys.header("predict"))
    assert response.status_code == 412 and response.json()["error"]["kind"] == "prefetch_missing"
    request = {**request, "hook": "order-sign", "prefetch": {"patient": {"resourceType": "Patient", "id": "p"}}}
    response = client.post(f"/cds-services/{SERVICE}", json=request, headers=keys.header("predict"))
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["path"] == "body.hook"
    assert client.post("/cds-services/ehrpredict-nope", json=request,
                       headers=keys.header("predict")).status_code == 404
