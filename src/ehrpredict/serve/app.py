"""The prediction service: a FastAPI app over loaded bundles.

    >>> app = create_app(ServeContext(models, keys, AuditLog("audit.sqlite"), SessionSigner.from_file(None)))
    ...                                                                              # doctest: +SKIP

Routes: ``POST /v1/models/{name}/predict`` (one patient, MEDS rows or a FHIR R4 Bundle),
``POST /v1/models/{name}/predict/batch``, ``GET /v1/models``, ``GET /v1/models/{name}``,
``/healthz``, ``/readyz``, ``/metrics`` (Prometheus), CDS Hooks under ``/cds-services``, the
dashboard under ``/dashboard`` with its ``/login`` page. OpenAPI at ``/openapi.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ehrpredict.errors import EhrPredictError
from ehrpredict.serve.cds import install_cds
from ehrpredict.serve.common import (
    Admin,
    HTTPProblem,
    Predictor,
    Reader,
    audit_prediction,
    log,
    prediction_out,
    request_events,
    route_of,
    served,
    summary,
)
from ehrpredict.serve.context import ServeContext
from ehrpredict.serve.dashboard import install_dashboard
from ehrpredict.serve.login import install_login
from ehrpredict.serve.middleware import BodyLimit, Observe
from ehrpredict.serve.schemas import (
    BatchOut,
    BatchRequest,
    ErrorOut,
    ModelDetail,
    ModelList,
    PatientRequest,
    PredictionOut,
    Status,
)
from ehrpredict.serve.scoring import InputError, ServedModel


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
        log.error("internal error on %s: %s", route_of(request), type(exc).__name__)
        return _problem_response(ctx, HTTPProblem(500, "internal", "an internal error; it has been logged"))

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return _problem_response(ctx, HTTPProblem(404, "not_found", f"no route {request.url.path}"))

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return _problem_response(ctx, HTTPProblem(405, "method_not_allowed", f"{request.method} is not allowed here"))


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

    install_cds(app, ctx)
    install_login(app, ctx)
    install_dashboard(app, ctx)
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
