"""The dashboard, served by the same app: models, a model page, patient pages.

Every page needs a session (the login page's cookie) or a key with the ``read`` scope; without one the
browser is sent to ``/login``. Pages are server-rendered HTML with the benchmark report's style and SVG
charts; the only script is the threshold explorer's lookup in a table computed here. Everything taken
from data or requests is escaped; nothing here changes state on a GET.

- ``/dashboard/``: the served models with version, task and held-out metrics.
- ``/dashboard/models/{name}``: ROC and calibration, subgroups, the model card, and the threshold
  explorer (sensitivity, specificity, PPV and alerts per 100 patients as the threshold moves, from the
  held-out predictions kept in the bundle).
- ``/dashboard/patients``: pick a patient of ``--dataset``, or paste a FHIR R4 Bundle.
- ``/dashboard/patients/{id}?model=NAME&at=TIME``: the timeline, the risk over the stay (the model at
  every 6 hours since the visit started, each point from the events known by then) and the top factors.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ehrpredict import schema as S
from ehrpredict.errors import EhrPredictError
from ehrpredict.events.cutoff import PREDICTION_TIME
from ehrpredict.events.source import InMemoryEvents, ParquetEvents
from ehrpredict.experiments.results import BenchmarkReport
from ehrpredict.reporting.html import STYLE, curve_plots, legend, subgroup_tables
from ehrpredict.serve.common import principal, summary
from ehrpredict.serve.context import ServeContext
from ehrpredict.serve.scoring import PatientScore, ServedModel
from ehrpredict.text.serialize import describe_codes
from ehrpredict.vocab.kinds import code_kinds

ROOT = "/dashboard"
PAGE_SIZE = 50
RISK_STEP = timedelta(hours=6)
MAX_RISK_POINTS = 60
MAX_TIMELINE = 400
PREDICTED = "predicted_boolean_probability"
CSS = STYLE + """
nav{display:flex;gap:1.2rem;align-items:center;margin-bottom:1rem}
nav form{margin-left:auto}
.up{color:#b2182b}.down{color:#2166ac}
#explorer output{font-weight:bold}
textarea{width:100%;font-family:monospace}
.day{margin:0.6rem 0 0.2rem;font-weight:bold}
td.text,th.text{text-align:left}
"""


def _page(title: str, body: str) -> HTMLResponse:
    nav = (f'<nav><a href="{ROOT}/">Models</a><a href="{ROOT}/patients">Patients</a>'
           '<form method="post" action="/logout"><button type="submit">Sign out</button></form></nav>')
    return HTMLResponse(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
                        f' · ehrpredict</title><style>{CSS}</style></head><body>{nav}<h1>{escape(title)}</h1>'
                        f'{body}</body></html>')


def _gate(request: Request) -> Response | None:
    """None when the caller may read; else the login redirect (no session) or a 403 page."""
    who = principal(request)
    if who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    request.state.key_id = who.key_id
    if not who.allows("read"):
        page = _page("Not allowed", "<p>This key does not have the read scope the dashboard needs.</p>")
        page.status_code = 403
        return page
    return None


def _error_page(status: int, title: str, message: str) -> HTMLResponse:
    page = _page(title, f'<p role="alert">{escape(message)}</p>')
    page.status_code = status
    return page


def _ci(metric: Any) -> str:
    if not isinstance(metric, dict) or metric.get("value") is None:
        return "–"
    low, high = metric.get("ci_low"), metric.get("ci_high")
    interval = f" ({low:.3f}–{high:.3f})" if isinstance(low, float) and isinstance(high, float) else ""
    return f"{metric['value']:.3f}{interval}"


def models_page(ctx: ServeContext) -> HTMLResponse:
    rows = []
    for model in ctx.models.values():
        s = summary(model)
        threshold = s.metrics.get("threshold")
        rows.append(
            f'<tr><td><a href="{ROOT}/models/{quote(s.name)}">{escape(s.name)}</a></td><td>{escape(s.task)}</td>'
            f"<td>{escape(s.version)}</td><td>{escape(s.created or '')}</td>"
            f"<td>{escape(s.representation)}/{escape(s.head)}</td><td>{_ci(s.metrics.get('auroc'))}</td>"
            f"<td>{_ci(s.metrics.get('brier'))}</td>"
            f"<td>{'–' if threshold is None else f'{threshold:.3f}'}</td></tr>")
    table = ("<table><tr><th>model</th><th>task</th><th>version</th><th>created</th><th>representation/head</th>"
             "<th>held-out AUROC (95% CI)</th><th>Brier</th><th>threshold</th></tr>" + "".join(rows) + "</table>")
    return _page("Models", table)


def threshold_table(probability: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> list[dict[str, Any]]:
    """At each threshold (alert when probability ≥ threshold): sensitivity, specificity, PPV (None when
    nothing alerts) and alerts per 100 rows."""
    p = np.asarray(probability, dtype=np.float64)
    y = np.asarray(truth, dtype=bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    out = []
    for t in thresholds:
        alert = p >= t
        tp, fp = int((alert & y).sum()), int((alert & ~y).sum())
        out.append({"threshold": round(float(t), 4),
                    "sensitivity": tp / positives if positives else None,
                    "specificity": (negatives - fp) / negatives if negatives else None,
                    "ppv": tp / (tp + fp) if tp + fp else None,
                    "alerts_per_100": 100 * (tp + fp) / len(p) if len(p) else None})
    return out


def _explorer(model: ServedModel) -> str:
    if model.bundle.path is None or model.bundle.threshold is None:
        return ""
    path = model.bundle.path / "report" / "held_out_predictions.parquet"
    if not path.exists():
        return ""
    held = pl.read_parquet(path).drop_nulls([PREDICTED, S.BOOLEAN_VALUE])
    grid = np.round(np.linspace(0, 1, 101), 2)
    table = threshold_table(held.get_column(PREDICTED).to_numpy(), held.get_column(S.BOOLEAN_VALUE).to_numpy(), grid)
    own = threshold_table(held.get_column(PREDICTED).to_numpy(), held.get_column(S.BOOLEAN_VALUE).to_numpy(),
                          np.array([model.bundle.threshold]))[0]
    data = json.dumps(table).replace("</", "<\\/")
    start = round(model.bundle.threshold * 100)
    rule = model.bundle.manifest.get("operating_point", {}).get("rule", "")

    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    return f"""<h2>Threshold explorer</h2>
<p>Alert when the calibrated probability is at or above the threshold; figures on the {held.height:,} held-out
rows kept in the bundle. The model's own threshold is {model.bundle.threshold:.4f} ({escape(str(rule))}):
sensitivity {fmt(own['sensitivity'])}, specificity {fmt(own['specificity'])}, PPV {fmt(own['ppv'])},
{fmt(own['alerts_per_100'])} alerts per 100.</p>
<div id="explorer"><label for="threshold">threshold</label>
<input id="threshold" type="range" min="0" max="100" step="1" value="{start}">
<output id="t-value"></output>
<table><tr><th>sensitivity</th><th>specificity</th><th>PPV</th><th>alerts per 100</th></tr>
<tr><td><output id="t-sensitivity"></output></td><td><output id="t-specificity"></output></td>
<td><output id="t-ppv"></output></td><td><output id="t-alerts"></output></td></tr></table></div>
<script type="application/json" id="explorer-data">{data}</script>
<script>
(function () {{
  const table = JSON.parse(document.getElementById("explorer-data").textContent);
  const slider = document.getElementById("threshold");
  const f = (v) => v === null ? "–" : v.toFixed(3);
  function show() {{
    const row = table[Number(slider.value)];
    document.getElementById("t-value").textContent = row.threshold.toFixed(2);
    document.getElementById("t-sensitivity").textContent = f(row.sensitivity);
    document.getElementById("t-specificity").textContent = f(row.specificity);
    document.getElementById("t-ppv").textContent = f(row.ppv);
    document.getElementById("t-alerts").textContent = f(row.alerts_per_100);
  }}
  slider.addEventListener("input", show);
  show();
}})();
</script>"""


def model_page(model: ServedModel) -> HTMLResponse:
    s = summary(model)
    parts = [f"<p>Task <b>{escape(s.task)}</b> ({escape(s.label_type)}), {escape(s.representation)}/"
             f"{escape(s.head)}, version {escape(s.version)}, created {escape(s.created or '?')}. Held-out AUROC "
             f"{_ci(s.metrics.get('auroc'))}, Brier {_ci(s.metrics.get('brier'))}.</p>"]
    report_path = None if model.bundle.path is None else model.bundle.path / "report" / "report.json"
    if report_path is not None and report_path.exists():
        report = BenchmarkReport.from_json(json.loads(report_path.read_text()))
        for task in report.tasks:
            plots = curve_plots(task)  # ROC, precision-recall, calibration: the report's own charts
            if plots:
                parts.append("<h2>Discrimination and calibration</h2>" + legend(task)
                             + f"<div class=plots>{''.join(plots)}</div>")
            groups = subgroup_tables(task)
            if groups:
                parts.append("<h2>Subgroups</h2>" + groups.replace("<details>", "<details open>", 1))
    parts.append(_explorer(model))
    card = model.bundle.path / "MODEL_CARD.md" if model.bundle.path else None
    if card is not None and card.exists():
        parts.append(f"<h2>Model card</h2><pre style='white-space:pre-wrap'>{escape(card.read_text())}</pre>")
    return _page(model.name, "".join(parts))


# --- patients ----------------------------------------------------------------------------------------


def _subject_events(dataset: Path, subject_id: int) -> pl.DataFrame:
    return (pl.scan_parquet(dataset / S.DATA_DIR / "**" / "*.parquet")
            .filter(pl.col(S.SUBJECT_ID) == subject_id).collect())


def _stay_start(events: pl.DataFrame, at: datetime, prefixes: tuple[str, ...]) -> datetime | None:
    code = pl.col(S.CODE)
    starts = events.filter(pl.col(S.TIME).is_not_null() & (pl.col(S.TIME) <= at)
                           & pl.any_horizontal(pl.lit(False), *((code == p) | code.str.starts_with(p + "//")
                                                                for p in prefixes)))
    value = starts.get_column(S.TIME).max()
    return value if isinstance(value, datetime) else None


def risk_over_time(model: ServedModel, events: pl.DataFrame, at: datetime, start: datetime | None
                   ) -> list[tuple[datetime, float]]:
    """The model's probability every 6 h from the visit's start to ``at`` (and at ``at``): one
    featurization of all those rows; each row's features come from the events known by its time."""
    if model.bundle.calibrator is None:
        return []
    first = start or at - timedelta(days=2)
    times = [first + RISK_STEP * i for i in range(MAX_RISK_POINTS) if first + RISK_STEP * i < at][-MAX_RISK_POINTS + 1:]
    times.append(at)
    frame = events.with_columns(pl.lit(0, pl.Int64).alias(S.SUBJECT_ID))
    labels = pl.DataFrame({S.SUBJECT_ID: [0] * len(times), PREDICTION_TIME: times},
                          schema={S.SUBJECT_ID: pl.Int64, PREDICTION_TIME: pl.Datetime("us")})
    scores = model.bundle.score_features(model.bundle.pipeline.features(InMemoryEvents(frame), labels))
    assert scores.probability is not None
    return list(zip(times, (float(p) for p in scores.probability), strict=True))


def risk_chart(points: list[tuple[datetime, float]], threshold: float | None) -> str:
    """An inline SVG line of probability against hours before the prediction time."""
    if len(points) < 2:
        return ""
    w, h, left, bottom, top, right = 560, 220, 44, 32, 12, 12
    t0, t1 = points[0][0], points[-1][0]
    span = max((t1 - t0).total_seconds() / 3600, 1e-9)

    def x(t: datetime) -> float:
        return left + (w - left - right) * ((t - t0).total_seconds() / 3600) / span

    def y(p: float) -> float:
        return top + (h - top - bottom) * (1 - p)

    line = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in points)
    ticks = "".join(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e4e4e4"/>'
                    f'<text x="{left - 6}" y="{y(v) + 3:.1f}" text-anchor="end">{v:.2f}</text>'
                    for v in (0.0, 0.25, 0.5, 0.75, 1.0))
    mark = "" if threshold is None else (
        f'<line x1="{left}" x2="{w - right}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="#b2182b" '
        f'stroke-dasharray="5 3"/><text x="{w - right}" y="{y(threshold) - 4:.1f}" text-anchor="end" '
        f'fill="#b2182b">threshold {threshold:.2f}</text>')
    dots = "".join(f'<circle cx="{x(t):.1f}" cy="{y(p):.1f}" r="2.5" fill="#0072b2"><title>{t:%Y-%m-%d %H:%M}: '
                   f"{p:.3f}</title></circle>" for t, p in points)
    return (f'<svg id="risk-chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
            f'aria-label="risk over the stay">{ticks}{mark}<polyline fill="none" stroke="#0072b2" stroke-width="2" '
            f'points="{line}"/>{dots}<text x="{left}" y="{h - 8}">{t0:%Y-%m-%d %H:%M}</text>'
            f'<text x="{w - right}" y="{h - 8}" text-anchor="end">{t1:%Y-%m-%d %H:%M} (prediction time)</text>'
            f"</svg>")


def _factors_table(score: PatientScore) -> str:
    if not score.factors:
        return "<p class=muted>No factors (this model is not explained by factors).</p>"
    rows = "".join(f'<tr class="{f.direction}"><td class=text>{escape(f.factor)}</td>'
                   f"<td>{f.contribution:+.3f}</td></tr>" for f in score.factors)
    return ("<table id=factors><tr><th class=text>factor (red raises, blue lowers the risk)</th>"
            f"<th>contribution (log-odds)</th></tr>{rows}</table>")


def _timeline(events: pl.DataFrame, descriptions: dict[str, str]) -> str:
    timed = events.filter(pl.col(S.TIME).is_not_null()).sort(S.TIME, descending=True).head(MAX_TIMELINE)
    if timed.is_empty():
        return "<p class=muted>No timed events.</p>"
    out, day = [], None
    for when, code, value in timed.select(S.TIME, S.CODE, S.NUMERIC_VALUE).iter_rows():
        if when.date() != day:
            if day is not None:
                out.append("</table>")
            day = when.date()
            out.append(f"<div class=day>{day:%Y-%m-%d}</div><table>")
        shown = "" if value is None or math.isnan(value) else f"{value:g}"
        out.append(f"<tr><td>{when:%H:%M}</td><td class=text>{escape(descriptions.get(code, code))}</td>"
                   f"<td class=text><code>{escape(code)}</code></td><td>{escape(shown)}</td></tr>")
    out.append("</table>")
    more = events.height - timed.height
    note = (f"<p class=muted>The latest {timed.height:,} events, newest first ({more:,} more not shown).</p>"
            if more else "")
    return note + "".join(out)


def patient_view(ctx: ServeContext, model: ServedModel, events: pl.DataFrame, subject: int | None, at: datetime,
                 descriptions: dict[str, str], note: str = "") -> HTMLResponse:
    known = events.filter(pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= at))
    score = model.score(known.drop(S.SUBJECT_ID, strict=False), at, subject_id=subject, explain=5)
    start = _stay_start(known, at, code_kinds(ctx_metadata(ctx)).visit_starts)
    points = risk_over_time(model, known.drop(S.SUBJECT_ID, strict=False), at, start)
    if score.probability is not None:
        side = "at or above" if score.decision else "below"
        head = (f"<p id=risk>Risk <b>{score.probability:.1%}</b> of {escape(model.bundle.task.name)} at "
                f"{at:%Y-%m-%d %H:%M}, {side} the alert threshold {score.threshold:.1%}.</p>")
    elif score.prediction is not None:
        head = f"<p id=risk>Predicted {escape(model.bundle.task.name)}: <b>{score.prediction:.3g}</b>.</p>"
    else:
        head = f"<p id=risk>Predicted: {escape(', '.join(score.categories) or 'none')}.</p>"
    unknown = (f"<p class=muted>{score.unknown.events:,} of {score.events_used:,} events have codes the model never "
               "saw (ignored).</p>" if score.unknown.events else "")
    chart = risk_chart(points, score.threshold)
    body = (f"{note}{head}{unknown}<h2>Risk over the stay</h2>"
            + (chart or "<p class=muted>Not enough time in this stay for a curve.</p>")
            + "<p class=muted>Each point is the model's probability from the events known at that time.</p>"
            f"<h2>Top factors</h2>{_factors_table(score)}<h2>Timeline</h2>{_timeline(known, descriptions)}")
    title = f"Patient {subject}" if subject is not None else "Pasted patient"
    return _page(f"{title} · {model.name}", body)


def ctx_metadata(ctx: ServeContext) -> dict[str, Any]:
    if ctx.dataset is None:
        return {}
    return dict(ParquetEvents(ctx.dataset).metadata())


def _model_choice(ctx: ServeContext, name: str | None) -> ServedModel | None:
    return ctx.models.get(name) if name else next(iter(ctx.models.values()))


def _at(raw: str | None, events: pl.DataFrame) -> datetime | None:
    if raw:
        return datetime.fromisoformat(raw).replace(tzinfo=None)
    last = events.get_column(S.TIME).max()
    return last if isinstance(last, datetime) else None


def patients_page(ctx: ServeContext, page: int, search: str) -> HTMLResponse:
    models = "".join(f"<option>{escape(name)}</option>" for name in ctx.models)
    paste = (f'<h2>Paste a FHIR R4 Bundle</h2><form method="post" action="{ROOT}/patients/fhir">'
             f'<label>model <select name="model">{models}</select></label> '
             '<label>prediction time <input name="at" placeholder="2150-01-02T08:00 (default: the last event)">'
             '</label><textarea name="bundle" rows="10" required placeholder=\'{"resourceType": "Bundle", ...}\'>'
             '</textarea><button type="submit">Score</button></form>')
    if ctx.dataset is None:
        return _page("Patients", "<p>No dataset was given to the server (<code>--dataset</code>): paste a patient."
                     "</p>" + paste)
    ids = (pl.scan_parquet(ctx.dataset / S.DATA_DIR / "**" / "*.parquet").select(S.SUBJECT_ID).unique()
           .sort(S.SUBJECT_ID).collect().get_column(S.SUBJECT_ID))
    if search:
        ids = ids.filter(ids.cast(pl.String).str.contains(search, literal=True))
    shown = ids.slice(page * PAGE_SIZE, PAGE_SIZE).to_list()
    first = next(iter(ctx.models))
    links = "".join(f'<li><a href="{ROOT}/patients/{sid}?model={quote(first)}">{sid}</a></li>' for sid in shown)
    pager = []
    if page > 0:
        pager.append(f'<a href="?page={page - 1}&q={quote(search)}">previous</a>')
    if (page + 1) * PAGE_SIZE < ids.len():
        pager.append(f'<a href="?page={page + 1}&q={quote(search)}">next</a>')
    body = (f'<form method="get"><label>subject id contains <input name="q" value="{escape(search)}"></label>'
            f'<button type="submit">Search</button></form><p>{ids.len():,} patients in {escape(str(ctx.dataset))}'
            f"</p><ul id=patients>{links}</ul><p>{' · '.join(pager)}</p>{paste}")
    return _page("Patients", body)


def install_dashboard(app: FastAPI, ctx: ServeContext) -> None:
    @app.get(ROOT, include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(ROOT + "/", status_code=307)

    @app.get(ROOT + "/", response_class=HTMLResponse, include_in_schema=False)
    def models(request: Request) -> Response:
        return _gate(request) or models_page(ctx)

    @app.get(ROOT + "/models/{name}", response_class=HTMLResponse, include_in_schema=False)
    def model(name: str, request: Request) -> Response:
        gate = _gate(request)
        if gate is not None:
            return gate
        chosen = ctx.models.get(name)
        return model_page(chosen) if chosen else _error_page(404, "Unknown model", f"No model named {name!r}.")

    @app.get(ROOT + "/patients", response_class=HTMLResponse, include_in_schema=False)
    def patients(request: Request, page: int = 0, q: str = "") -> Response:
        return _gate(request) or patients_page(ctx, max(page, 0), q[:40])

    @app.get(ROOT + "/patients/{subject_id}", response_class=HTMLResponse, include_in_schema=False)
    def patient(subject_id: int, request: Request, model: str | None = None, at: str | None = None) -> Response:
        gate = _gate(request)
        if gate is not None:
            return gate
        chosen = _model_choice(ctx, model)
        if chosen is None:
            return _error_page(404, "Unknown model", f"No model named {model!r}.")
        if ctx.dataset is None:
            return _error_page(404, "No dataset", "The server was started without --dataset.")
        events = _subject_events(ctx.dataset, subject_id)
        if events.is_empty():
            return _error_page(404, "Unknown patient", f"No events of subject {subject_id} in the dataset.")
        try:
            when = _at(at, events)
        except ValueError:
            return _error_page(422, "Bad time", "Expected the prediction time as an ISO time, e.g. 2150-01-02T08:00.")
        if when is None:
            return _error_page(422, "No time", "This patient has no timed event to predict at.")
        codes = ParquetEvents(ctx.dataset).codes()
        descriptions = describe_codes(set(events.get_column(S.CODE).unique().to_list()), codes)
        return patient_view(ctx, chosen, events, subject_id, when, descriptions)

    @app.post(ROOT + "/patients/fhir", response_class=HTMLResponse, include_in_schema=False)
    async def pasted(request: Request) -> Response:
        gate = _gate(request)
        if gate is not None:
            return gate
        form = await request.form()
        chosen = _model_choice(ctx, str(form.get("model") or "") or None)
        if chosen is None:
            return _error_page(404, "Unknown model", "No such model.")
        try:
            from ehrpredict.ingest.fhir import events_from_bundle

            events = events_from_bundle(json.loads(str(form.get("bundle") or "")))
            when = _at(str(form.get("at") or "") or None, events)
        except json.JSONDecodeError as exc:
            return _error_page(422, "Not JSON", f"The pasted text is not JSON: {exc}")
        except (EhrPredictError, ValueError) as exc:
            return _error_page(422, "Not a usable FHIR Bundle", str(exc))
        if when is None or events.is_empty():
            return _error_page(422, "No events", "The Bundle holds no timed events to predict from.")
        subjects = events.get_column(S.SUBJECT_ID).unique()
        if subjects.len() != 1:
            return _error_page(422, "Not one patient", f"Expected one patient in the Bundle, got {subjects.len()}.")
        later = events.filter(pl.col(S.TIME).is_not_null() & (pl.col(S.TIME) > when)).height
        note = f"<p class=muted>{later:,} resources dated after the prediction time are left out.</p>" if later else ""
        codes = ParquetEvents(ctx.dataset).codes() if ctx.dataset is not None else pl.DataFrame(
            schema={S.CODE: pl.String, S.DESCRIPTION: pl.String})
        descriptions = describe_codes(set(events.get_column(S.CODE).unique().to_list()), codes)
        return patient_view(ctx, chosen, events, int(subjects[0]), when, descriptions, note)
