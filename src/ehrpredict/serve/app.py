"""The prediction service: a FastAPI app over loaded bundles.

    >>> app = create_app(ServeContext(models, keys, AuditLog("audit.sqlite"), SessionSigner.from_file(None)))
    ...                                                                              # doctest: +SKIP

Routes: ``POST /v1/models/{name}/predict`` (one patient, MEDS rows or a FHIR R4 Bundle),
``POST /v1/models/{name}/predict/batch``, ``GET /v1/models``, ``GET /v1/models/{name}``,
``/healthz``, ``/readyz``, ``/metrics`` (Prometheus), CDS Hooks under ``/cds-services``, the
dashboard under ``/dashboard`` with its ``/login`` page. OpenAPI at ``/openapi.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any, cast

import polars as pl
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ehrpredict import schema as S
from ehrpredict.errors import EhrPredictError
from ehrpredict.serve.audit import AuditRecord
from ehrpredict.serve.auth import SESSION_COOKIE, Principal
from ehrpredict.serve.context import ServeContext
from ehrpredict.serve.middleware import BodyLimit, Observe
from ehrpredict.serve.schemas import (
    BatchOut,
    BatchRequest,
    ErrorOut,
    FactorOut,
    ModelDetail,
    ModelList,
    ModelRef,
    ModelSummary,
    PatientRequest,
    PredictionOut,
    Status,
    UnknownCodesOut,
)
from ehrpredict.serve.scoring import InputError, PatientScore, ServedModel

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


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problem_response(ctx: ServeContext, problem: HTTPProblem) -> JSONResponse:
    ctx.metrics.errors.labels(problem.kind).inc()
    body = {"error": {"kind": problem.kind, "message": problem.message, "fields": problem.fields}}
    return JSONResponse(body, status_code=problem.status, headers=problem.headers)


def _install_errors(app: FastAPI, ctx: ServeContext) -> None:
    @app.exception_handler(HTTPProblem)
    async def problem(request: Request, exc: HTTPProblem) -> JSONResponse:
        return _problem_response(ctx, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [{"path": _path(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))} for e in exc.errors()]
        malformed = any(e.get("type") == "json_invalid" for e in exc.errors())
        kind, status = ("malformed_json", 400) if malformed else ("invalid_request", 422)
        message = "expected a JSON body" if malformed else "the request does not match the schema"
        return _problem_response(ctx, HTTPProblem(status, kind, message, fields))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the caller's fault: logged with its type only (the message may quote the input), counted,
        # answered as JSON; the worker goes on serving.
        log.error("internal error on %s: %s", _route_of(request), type(exc).__name__)
        return _problem_response(ctx, HTTPProblem(500, "internal", "an internal error; it has been logged"))

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return _problem_response(ctx, HTTPProblem(404, "not_found", f"no route {request.url.path}"))

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return _problem_response(ctx, HTTPProblem(405, "method_not_allowed", f"{request.method} is not allowed here"))


def _route_of(request: Request) -> str:
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


def _score(ctx: ServeContext, model: ServedModel, patients: list[PatientRequest]) -> list[PredictionOut]:
    batch = len(patients) > 1
    inputs, subjects = [], []
    for i, patient in enumerate(patients):
        events, subject = request_events(patient, f"body.patients[{i}]" if batch else "body")
        inputs.append((events, patient.prediction_time, subject))
        subjects.append(subject)
    try:
        scores = model.score_many(inputs, explain=max(p.explain for p in patients))
    except InputError as exc:
        raise HTTPProblem(422, "invalid_request", exc.message, [{"path": f"body.{exc.path}", "message": exc.message}]
                          ) from exc
    ctx.metrics.predictions.labels(model.name).inc(len(scores))
    outs = []
    for patient, score, subject in zip(patients, scores, subjects, strict=True):
        out = prediction_out(model, score, subject)
        out.factors = [f for f in out.factors if f.rank <= patient.explain]
        outs.append(out)
    return outs


def summary(model: ServedModel) -> ModelSummary:
    m = model.bundle.manifest
    held_out = m.get("metrics", {}).get("held_out", {}).get("metrics", {})
    keep = {k: v for k, v in held_out.items() if isinstance(v, dict) and "value" in v}
    keep.update({k: held_out[k] for k in ("n", "n_patients", "prevalence", "threshold") if k in held_out})
    return ModelSummary(name=model.name, version=model.version, task=model.bundle.task.name,
                        label_type=model.bundle.task.label_type, representation=model.bundle.pipeline.representation,
                        head=model.bundle.pipeline.head_name, created=m.get("created"), metrics=keep)


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in (
        (400, "malformed JSON"), (401, "no valid API key"), (403, "the key lacks the scope"),
        (404, "unknown model"), (413, "body over the size limit"), (422, "invalid request (field paths given)"),
        (429, "rate limited"))}


def create_app(ctx: ServeContext) -> FastAPI:
    # No /docs or /redoc: their pages load scripts from a CDN, which hospital networks (and this
    # project's machines) cannot reach; /openapi.json is the schema.
    app = FastAPI(title="ehrpredict", version="0.1.0", responses=ERRORS, docs_url=None, redoc_url=None,
                  description="Clinical risk predictions from kept ehrpredict bundles.")
    app.state.ctx = ctx
    _install_errors(app, ctx)

    @app.get("/healthz", response_model=Status, tags=["operations"])
    def healthz() -> Status:
        return Status(status="ok")

    @app.get("/readyz", response_model=Status, tags=["operations"])
    def readyz() -> Status:
        return Status(status="ready", models=len(ctx.models))

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def metrics(_: Admin) -> PlainTextResponse:
        return PlainTextResponse(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models", response_model=ModelList, tags=["models"])
    def list_models(_: Reader) -> ModelList:
        return ModelList(models=[summary(m) for m in ctx.models.values()])

    @app.get("/v1/models/{name}", response_model=ModelDetail, tags=["models"])
    def get_model(name: str, _: Reader) -> ModelDetail:
        model = served(ctx, name)
        card = model.bundle.path / "MODEL_CARD.md" if model.bundle.path else None
        manifest = {k: v for k, v in model.bundle.manifest.items() if k != "files"}
        return ModelDetail(**summary(model).model_dump(), manifest=manifest,
                           model_card=card.read_text() if card and card.exists() else "")

    @app.post("/v1/models/{name}/predict", response_model=PredictionOut, tags=["predict"])
    async def predict(name: str, patient: PatientRequest, request: Request,
                      who: Predictor) -> PredictionOut:
        start = time.perf_counter()
        model = served(ctx, name)
        out = await _run(_score, ctx, model, [patient])
        audit_prediction(ctx, request, who, model, await request.body(), 200, out, start)
        return cast(PredictionOut, out[0])

    @app.post("/v1/models/{name}/predict/batch", response_model=BatchOut, tags=["predict"])
    async def predict_batch(name: str, batch: BatchRequest, request: Request,
                            who: Predictor) -> BatchOut:
        start = time.perf_counter()
        model = served(ctx, name)
        out = await _run(_score, ctx, model, batch.patients)
        audit_prediction(ctx, request, who, model, await request.body(), 200, out, start)
        return BatchOut(predictions=out)

    from ehrpredict.serve.cds import install_cds
    from ehrpredict.serve.login import install_login

    install_cds(app, ctx)
    install_login(app, ctx)
    app.add_middleware(BodyLimit, limit=ctx.settings.max_body_bytes, metrics=ctx.metrics)
    app.add_middleware(Observe, metrics=ctx.metrics)
    return app


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    """CPU-bound scoring off the event loop, so one slow patient does not stall the others' I/O."""
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(fn, *args)
    except EhrPredictError as exc:  # the events themselves are unusable (e.g. a code the schema refuses)
        raise HTTPProblem(422, "invalid_request", str(exc)) from exc
