"""CDS Hooks 2.0: how an EHR asks for decision support when a clinician opens a chart.

``GET /cds-services`` lists one ``patient-view`` service per served model, with the prefetch templates
it needs (the patient, encounters, conditions, observations, medications, procedures). ``POST
/cds-services/{id}`` takes the hook request, turns the prefetched FHIR resources into events with the
same mapper as ``ingest fhir``, scores the patient and answers with one card: the risk, the decision at
the model's threshold, the top factors, and a link to the dashboard's patient page.

Prediction time: ``extension["org.ehrpredict.prediction_time"]`` when the request carries it (replays,
tests, de-identified charts whose dates are shifted), else the server's local clock now. The chart may
hold resources dated after that moment (planned encounters, shifted dates); they are left out of the
features, as every cutoff leaves them out, and the card says how many. The service never calls the
EHR's FHIR server itself: without prefetched data it answers 412, as the specification allows.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from ehrpredict import schema as S
from ehrpredict.ingest.fhir.mapper import MAPPED_TYPES
from ehrpredict.serve.common import HTTPProblem, Predictor, audit_prediction, prediction_out, served
from ehrpredict.serve.context import ServeContext
from ehrpredict.serve.scoring import PatientScore, ServedModel

HOOK = "patient-view"
SERVICE_PREFIX = "ehrpredict-"
TIME_EXTENSION = "org.ehrpredict.prediction_time"


def _prefetch() -> dict[str, str]:
    """One template per resource type the FHIR mapper reads (a type left out would silently change the
    score: notes, for one, are features), medications included where orders reference them."""
    templates = {"patient": "Patient/{{context.patientId}}"}
    for kind in MAPPED_TYPES:
        if kind == "Patient":
            continue
        include = f"&_include={kind}:medication" if kind.startswith("Medication") else ""
        templates[kind[0].lower() + kind[1:]] = f"{kind}?patient={{{{context.patientId}}}}{include}"
    return templates


PREFETCH = _prefetch()


class CdsService(BaseModel):
    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str]


class CdsDiscovery(BaseModel):
    services: list[CdsService]


class CdsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    hook: str
    hookInstance: str
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    fhirServer: str | None = None
    extension: dict[str, Any] | None = None


class CdsLink(BaseModel):
    label: str
    url: str
    type: str = "absolute"


class CdsSource(BaseModel):
    label: str
    topic: dict[str, str] | None = None


class CdsCard(BaseModel):
    uuid: str
    summary: str = Field(max_length=140)
    indicator: str
    detail: str
    source: CdsSource
    links: list[CdsLink] = Field(default_factory=list)
    extension: dict[str, Any] | None = None  # the exact numbers, for systems that act on them


class CdsResponse(BaseModel):
    cards: list[CdsCard]


def service_id(model: ServedModel) -> str:
    return SERVICE_PREFIX + model.name


def _resources(prefetch: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource of the prefetch: single resources, and searchset Bundles' entries. A null
    prefetch value means the EHR found nothing for that template (or could not fetch it)."""
    out: list[dict[str, Any]] = []
    for value in prefetch.values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            out.extend(e["resource"] for e in value.get("entry") or [] if isinstance(e, dict) and
                       isinstance(e.get("resource"), dict))
        elif value.get("resourceType") != "OperationOutcome":
            out.append(value)
    return out


def _prediction_time(request: CdsRequest) -> datetime:

    raw = (request.extension or {}).get(TIME_EXTENSION)
    if raw is None:
        return datetime.now().replace(microsecond=0)
    try:
        return datetime.fromisoformat(str(raw)).replace(tzinfo=None)
    except ValueError as exc:
        raise HTTPProblem(422, "invalid_request", f"expected an ISO time, got {raw!r}",
                          [{"path": f"body.extension.{TIME_EXTENSION}", "message": "not an ISO time"}]) from exc


def _card(model: ServedModel, score: PatientScore, dropped: int, link: str) -> CdsCard:
    task = model.bundle.task.name
    if score.probability is not None:
        side = "at or above" if score.decision else "below"
        summary = f"{task}: risk {score.probability:.0%} ({side} the alert threshold {score.threshold:.0%})"
        indicator = "warning" if score.decision else "info"
    elif score.prediction is not None:
        summary, indicator = f"{task}: predicted {score.prediction:.3g}", "info"
    else:
        summary, indicator = f"{task}: {', '.join(score.categories) or 'no category'} predicted", "info"
    lines = []
    for direction, title in (("up", "Raises the risk"), ("down", "Lowers the risk")):
        factors = [f for f in score.factors if f.direction == direction]
        if factors:
            lines.append(f"**{title}**")
            lines.extend(f"- {f.factor} ({f.contribution:+.2f})" for f in factors)
    if score.unknown.events:
        lines.append(f"{score.unknown.events} of {score.events_used} events have codes this model never saw "
                     "(ignored).")
    if dropped:
        lines.append(f"{dropped} resources dated after the prediction time were left out.")
    lines.append(f"Model {model.name}, version {model.version}.")
    return CdsCard(uuid=str(uuid.uuid4()), summary=summary[:140], indicator=indicator, detail="\n".join(lines),
                   source=CdsSource(label=f"ehrpredict {model.name}"),
                   links=[CdsLink(label="Open in the ehrpredict dashboard", url=link)],
                   extension={"org.ehrpredict.probability": score.probability,
                              "org.ehrpredict.decision": score.decision,
                              "org.ehrpredict.prediction": score.prediction,
                              "org.ehrpredict.model_version": model.version})


def install_cds(app: FastAPI, ctx: ServeContext) -> None:

    @app.get("/cds-services", response_model=CdsDiscovery, tags=["cds-hooks"])
    def discovery(_: Predictor) -> CdsDiscovery:
        return CdsDiscovery(services=[
            CdsService(hook=HOOK, id=service_id(m), title=f"ehrpredict: {m.bundle.task.name}",
                       description=m.bundle.task.description or f"{m.bundle.task.name} ({m.name})",
                       prefetch=PREFETCH) for m in ctx.models.values()])

    @app.post("/cds-services/{service}", response_model=CdsResponse, response_model_exclude_none=True,
              tags=["cds-hooks"])
    async def hook(service: str, body: CdsRequest, request: Request,
                   who: Predictor) -> CdsResponse:
        from starlette.concurrency import run_in_threadpool

        start = time.perf_counter()
        if not service.startswith(SERVICE_PREFIX):
            raise HTTPProblem(404, "unknown_service", f"expected a service id from /cds-services, got {service!r}")
        model = served(ctx, service.removeprefix(SERVICE_PREFIX))
        if body.hook != HOOK:
            raise HTTPProblem(422, "invalid_request", f"expected hook {HOOK!r}, got {body.hook!r}",
                              [{"path": "body.hook", "message": f"this service answers {HOOK}"}])
        resources = _resources(body.prefetch or {})
        if not any(r.get("resourceType") == "Patient" for r in resources):
            raise HTTPProblem(412, "prefetch_missing", "expected the prefetched Patient and their records; this "
                                                       "service does not query the FHIR server itself",
                              [{"path": "body.prefetch.patient", "message": "missing"}])
        when = _prediction_time(body)
        score, subject, dropped = await run_in_threadpool(_score_resources, model, resources, when)
        ctx.metrics.predictions.labels(model.name).inc()
        base = ctx.settings.public_url or str(request.base_url).rstrip("/")
        link = f"{base}/dashboard/patients/{subject}?model={model.name}&at={when.isoformat()}"
        out = prediction_out(model, score, subject)
        audit_prediction(ctx, request, who, model, await request.body(), 200, [out], start)
        return CdsResponse(cards=[_card(model, score, dropped, link)])


def _score_resources(model: ServedModel, resources: list[dict[str, Any]], when: datetime
                     ) -> tuple[PatientScore, int, int]:
    from ehrpredict.ingest.fhir import FhirInputError, events_from_resources

    try:
        events = events_from_resources(resources)
    except FhirInputError as exc:
        raise HTTPProblem(422, "invalid_fhir", str(exc),
                          [{"path": f"body.prefetch.{exc.path}", "message": str(exc)}]) from exc
    subjects = events.get_column(S.SUBJECT_ID).unique()
    if subjects.len() != 1:
        raise HTTPProblem(422, "invalid_fhir", f"expected the records of one patient, got {subjects.len()}",
                          [{"path": "body.prefetch", "message": "not one patient"}])
    late = events.get_column(S.TIME).is_not_null() & (events.get_column(S.TIME) > when)
    kept = events.filter(~late)
    subject = int(subjects[0])
    return model.score(kept.drop(S.SUBJECT_ID), when, subject_id=subject), subject, int(late.sum())
