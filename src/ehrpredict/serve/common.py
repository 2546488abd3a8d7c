"""What the service's routes share (API, CDS Hooks, dashboard): the error type, who is asking and what
they may do, a served model by name, a request's events, the answer's shape and the audit record."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated

import polars as pl
from fastapi import Depends, Request

from ehrpredict import schema as S
from ehrpredict.serve.audit import AuditRecord
from ehrpredict.serve.auth import SESSION_COOKIE, Principal
from ehrpredict.serve.context import ServeContext
from ehrpredict.serve.schemas import (
    FactorOut,
    ModelRef,
    ModelSummary,
    PatientRequest,
    PredictionOut,
    UnknownCodesOut,
)
from ehrpredict.serve.scoring import PatientScore, ServedModel

log = logging.getLogger("ehrpredict.serve")


class HTTPProblem(Exception):
    """An error response: status, a kind for metrics, a message and field paths."""

    def __init__(self, status: int, kind: str, message: str, fields: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.fields, self.headers = fields or [], headers or {}


def context(request: Request) -> ServeContext:
    ctx: ServeContext = request.app.state.ctx
    return ctx


def principal(request: Request) -> Principal | None:
    """The caller from ``Authorization: Bearer KEY``, ``X-API-Key`` or the dashboard's session cookie."""
    ctx = context(request)
    header = request.headers.get("authorization", "")
    key = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
    if key:
        return ctx.keys.authenticate(key)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        found = ctx.signer.check(cookie)
        # A revoked key's sessions end with it.
        if found is not None and found.key_id in {e.id for e in ctx.keys.entries}:
            return found
    return None


def require(scope: str) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        who = principal(request)
        if who is None:
            raise HTTPProblem(401, "unauthorized", "expected an API key (Authorization: Bearer KEY or X-API-Key)",
                              headers={"WWW-Authenticate": "Bearer"})
        request.state.key_id = who.key_id
        if not who.allows(scope):
            raise HTTPProblem(403, "forbidden", f"expected a key with the {scope!r} scope, got one with "
                                                f"{', '.join(who.scopes)}")
        wait = context(request).limiter.allow(who.key_id)
        if wait > 0:
            raise HTTPProblem(429, "rate_limited", "too many requests for this key; retry later",
                              headers={"Retry-After": str(max(1, round(wait + 0.5)))})
        return who
    return dependency


Predictor = Annotated[Principal, Depends(require("predict"))]
Reader = Annotated[Principal, Depends(require("read"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def route_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))


def served(ctx: ServeContext, name: str) -> ServedModel:
    model = ctx.model(name)
    if model is None:
        raise HTTPProblem(404, "unknown_model", f"expected one of the served models ({', '.join(sorted(ctx.models))}), "
                                                f"got {name!r}", [{"path": "path.name", "message": "unknown model"}])
    return model


def request_events(patient: PatientRequest, where: str = "body") -> tuple[pl.DataFrame, int | None]:
    """The request's events as an event frame, and its subject id (the FHIR Patient's when none was given)."""
    if patient.events is not None:
        ev = patient.events  # column by column: a thousand model_dump() calls cost more than the scoring's I/O
        frame = pl.DataFrame({
            S.TIME: pl.Series([e.time for e in ev], dtype=pl.Datetime("us")),
            S.CODE: pl.Series([e.code for e in ev], dtype=pl.String),
            S.NUMERIC_VALUE: pl.Series([e.numeric_value for e in ev], dtype=pl.Float64),
            S.TEXT_VALUE: pl.Series([e.text_value for e in ev], dtype=pl.String),
            S.HADM_ID: pl.Series([e.hadm_id for e in ev], dtype=pl.Int64),
            S.STAY_ID: pl.Series([e.stay_id for e in ev], dtype=pl.Int64)})
        return frame, patient.subject_id
    from ehrpredict.ingest.fhir import FhirInputError, events_from_bundle

    try:
        events = events_from_bundle(patient.fhir or {})
    except FhirInputError as exc:
        raise HTTPProblem(422, "invalid_fhir", str(exc), [{"path": f"{where}.fhir.{exc.path}", "message": str(exc)}]
                          ) from exc
    subjects = events.get_column(S.SUBJECT_ID).unique()
    if subjects.len() > 1:
        raise HTTPProblem(422, "invalid_fhir", f"expected a FHIR Bundle of one patient, got {subjects.len()}",
                          [{"path": f"{where}.fhir", "message": "more than one patient"}])
    subject = patient.subject_id if patient.subject_id is not None else (
        int(subjects[0]) if subjects.len() else None)
    return events.drop(S.SUBJECT_ID), subject


def prediction_out(model: ServedModel, score: PatientScore, subject_id: int | None) -> PredictionOut:
    task = model.bundle.task
    return PredictionOut(
        model=ModelRef(name=model.name, version=model.version, task=task.name, label_type=task.label_type),
        subject_id=subject_id, prediction_time=score.prediction_time, probability=score.probability,
        uncalibrated_probability=score.uncalibrated_probability, threshold=score.threshold, decision=score.decision,
        prediction=score.prediction, categories=list(score.categories),
        category_probabilities=dict(score.category_probabilities),
        factors=[FactorOut(**f.__dict__) for f in score.factors],
        unknown_codes=UnknownCodesOut(events=score.unknown.events, distinct=score.unknown.distinct,
                                      top=list(score.unknown.top)),
        events_used=score.events_used)


def audit_prediction(ctx: ServeContext, request: Request, who: Principal, model: ServedModel, body: bytes, status: int,
           outputs: list[PredictionOut], start: float) -> None:
    # Outputs only: no subject id, no events; the input is kept as its hash.
    kept = [{k: v for k, v in o.model_dump(mode="json").items()
             if k in ("probability", "decision", "prediction", "categories", "threshold")} for o in outputs]
    ctx.audit.record(AuditRecord(who.key_id, request.scope["route"].path, model.name, model.version,
                                 hashlib.sha256(body).hexdigest(), status, json.dumps(kept),
                                 (time.perf_counter() - start) * 1000))


def summary(model: ServedModel) -> ModelSummary:
    m = model.bundle.manifest
    held_out = m.get("metrics", {}).get("held_out", {}).get("metrics", {})
    keep = {k: v for k, v in held_out.items() if isinstance(v, dict) and "value" in v}
    keep.update({k: held_out[k] for k in ("n", "n_patients", "prevalence", "threshold") if k in held_out})
    return ModelSummary(name=model.name, version=model.version, task=model.bundle.task.name,
                        label_type=model.bundle.task.label_type, representation=model.bundle.pipeline.representation,
                        head=model.bundle.pipeline.head_name, created=m.get("created"), metrics=keep)
