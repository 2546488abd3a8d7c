"""The dashboard through the app: a session is needed, the model page carries the report's charts and a
threshold explorer whose numbers are the held-out predictions', the patient page shows the service's
probability, the risk over the stay and the timeline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from serve_support import TASK, Keys

from ehrpredict import schema as S
from ehrpredict.serve.dashboard import threshold_table

MODEL = f"{TASK}.counts.lgbm"


def _login(client: Any, key: str) -> Any:
    return client.post("/login", data={"key": key}, follow_redirects=False)


def test_pages_need_a_session_with_the_read_scope(client: Any, keys: Keys) -> None:
    response = client.get("/dashboard/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=%2Fdashboard%2F"
    refused = _login(client, keys.predict)
    assert refused.status_code == 403 and "read scope" in refused.text
    assert _login(client, "ehp_nope_nope").status_code == 401
    assert client.get("/dashboard/", headers=keys.header("predict")).status_code == 403
    signed_in = _login(client, keys.read)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard/"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    page = client.get("/dashboard/")
    assert page.status_code == 200 and MODEL in page.text
    client.post("/logout")
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


def test_the_login_page_sends_back_only_to_the_dashboard(client: Any, keys: Keys) -> None:
    back = client.post("/login?next=/dashboard/models/x", data={"key": keys.read}, follow_redirects=False)
    assert back.headers["location"] == "/dashboard/models/x"
    away = client.post("/login?next=https://evil.example/", data={"key": keys.read}, follow_redirects=False)
    assert away.headers["location"] == "/dashboard/"


def test_the_model_page_has_the_charts_subgroups_card_and_threshold_explorer(client: Any, keys: Keys,
                                                                             bundle_path: Path) -> None:
    _login(client, keys.read)
    page = client.get(f"/dashboard/models/{MODEL}").text
    assert page.count("<svg") >= 3 and "ROC" in page and "Calibration" in page
    assert "Subgroups" in page and "Model card" in page and "# Model card" in page
    data = json.loads(re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', page,
                                re.S).group(1).replace("<\\/", "</"))
    held = pl.read_parquet(bundle_path / "report" / "held_out_predictions.parquet")
    p = held.get_column("predicted_boolean_probability").to_numpy().astype(np.float64)
    y = held.get_column(S.BOOLEAN_VALUE).to_numpy()
    assert len(data) == 101
    for row in (data[0], data[30], data[55], data[100]):
        alert = p >= row["threshold"]
        tp, fp = int((alert & y).sum()), int((alert & ~y).sum())
        assert row["sensitivity"] == pytest.approx(tp / y.sum())
        assert row["specificity"] == pytest.approx(((~y).sum() - fp) / (~y).sum())
        assert row["alerts_per_100"] == pytest.approx(100 * alert.mean())
        assert row["ppv"] == (pytest.approx(tp / (tp + fp)) if tp + fp else None)
    assert data[0]["sensitivity"] == 1.0 and data[0]["alerts_per_100"] == 100.0


def test_threshold_table_by_hand() -> None:
    rows = threshold_table(np.array([0.1, 0.4, 0.6, 0.9]), np.array([False, True, False, True]),
                           np.array([0.0, 0.5, 0.95]))
    assert rows[1] == {"threshold": 0.5, "sensitivity": 0.5, "specificity": 0.5, "ppv": 0.5, "alerts_per_100": 50.0}
    assert rows[2]["ppv"] is None and rows[2]["alerts_per_100"] == 0.0 and rows[0]["sensitivity"] == 1.0


def test_the_patient_page_shows_the_services_probability_risk_curve_and_timeline(
        client: Any, keys: Keys, hospital: Path, bundle_path: Path) -> None:
    from ehrpredict.serve.scoring import ServedModel

    held = pl.read_parquet(bundle_path / "report" / "held_out_predictions.parquet").row(0, named=True)
    subject, when = held[S.SUBJECT_ID], held[S.PREDICTION_TIME]
    _login(client, keys.read)
    page = client.get(f"/dashboard/patients/{subject}", params={"model": MODEL, "at": when.isoformat()}).text
    expected = held["predicted_boolean_probability"]
    assert f"Risk <b>{expected:.1%}</b>" in page
    events = pl.scan_parquet(hospital / "data" / "**" / "*.parquet").filter(
        (pl.col(S.SUBJECT_ID) == subject) & (pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= when))).collect()
    score = ServedModel.load(bundle_path).score(events.drop(S.SUBJECT_ID), when)
    assert f"Risk <b>{score.probability:.1%}</b>" in page
    assert 'id="risk-chart"' in page and page.count("<circle") >= 2
    assert "Top factors" in page and escape_first_factor(score) in page
    assert "Timeline" in page and f"{when:%Y-%m-%d}" in page
    listing = client.get("/dashboard/patients").text
    assert f">{subject}</a>" in listing or "next" in listing
    assert client.get("/dashboard/patients/999999999", params={"model": MODEL}).status_code == 404
    assert client.get(f"/dashboard/patients/{subject}", params={"model": "nope"}).status_code == 404
    assert client.get(f"/dashboard/patients/{subject}", params={"at": "yesterday"}).status_code == 422


def escape_first_factor(score: Any) -> str:
    from html import escape

    return escape(score.factors[0].factor)


def test_a_pasted_fhir_bundle_is_scored_on_the_patient_page(client: Any, keys: Keys, hospital: Path,
                                                            bundle_path: Path) -> None:
    fhir = pytest.importorskip("ehrpredict.ingest.fhir", reason="the FHIR mapper")
    held = pl.read_parquet(bundle_path / "report" / "held_out_predictions.parquet").row(1, named=True)
    subject, when = held[S.SUBJECT_ID], held[S.PREDICTION_TIME]
    events = pl.scan_parquet(hospital / "data" / "**" / "*.parquet").filter(
        pl.col(S.SUBJECT_ID) == subject).collect()
    bundle = fhir.bundle_from_events(events)
    _login(client, keys.read)
    page = client.post("/dashboard/patients/fhir", data={"model": MODEL, "at": when.isoformat(),
                                                         "bundle": json.dumps(bundle)})
    assert page.status_code == 200, page.text[:2000]
    assert f"Risk <b>{held['predicted_boolean_probability']:.1%}</b>" in page.text
    assert "dated after the prediction time are left out" in page.text
    bad = client.post("/dashboard/patients/fhir", data={"model": MODEL, "bundle": "{not json"})
    assert bad.status_code == 422 and "not JSON" in bad.text


def test_pages_escape_what_they_show(client: Any, keys: Keys) -> None:
    _login(client, keys.read)
    page = client.get("/dashboard/patients", params={"q": "<script>alert(1)</script>"}).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
