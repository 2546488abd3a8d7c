"""A self-contained HTML page for a benchmark report (no scripts, fonts or requests: opens offline).

Tables for every task, and for binary tasks inline-SVG plots drawn here by hand (no plotting library,
no JavaScript): ROC and precision-recall curves, calibration, few-shot AUROC against k, and subgroup
forest plots. The SVG carries no ``xmlns`` attribute (HTML5 does not need one), so the page contains no
URL at all. Every text taken from the report is escaped; entries a report lacks (``curves`` in reports
written before they existed, subgroups that were too small to evaluate) are left out, not errors.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, NamedTuple

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:75rem}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}
th,td{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
.muted{color:#777}
.plots{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
figure{margin:0 0 1rem;max-width:22rem}
figure.wide{max-width:30rem}
figcaption{font-size:0.85rem;color:#555}
.legend span{display:inline-block;margin-right:1rem;font-size:0.9rem}
.swatch{display:inline-block;width:1.4rem;height:0;border-top:3px solid;vertical-align:middle;margin-right:0.3rem}
svg text{font-size:10px;fill:#444}
"""

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies); black is the oracle's.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f")
ORACLE = "oracle"
ORACLE_COLOR = "#000000"
DASH = ' stroke-dasharray="5 3"'
GRID = "#e4e4e4"


def _ci(metrics: dict[str, Any], name: str) -> str:
    """``0.812 (0.781–0.840)`` from a metric stored as {value, ci_low, ci_high}."""
    estimate = metrics.get(name) or {}
    value, low, high = estimate.get("value"), estimate.get("ci_low"), estimate.get("ci_high")
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} <span class=muted>({low:.3f}–{high:.3f})</span>"


def _value(metrics: dict[str, Any], name: str) -> str:
    value = (metrics.get(name) or {}).get("value")
    return "–" if value is None else f"{value:.3f}"


def _shuffled(model: dict[str, Any], name: str) -> str:
    """The label-shuffle control's ``name``: the mean over permutations with their range when the report
    has several (``{"permutations": 5, name: {value, sd, min, max, replicates}}``), else its value."""
    control = model.get("label_shuffle_control") or {}
    estimate = control.get(name) or {}
    low, high = estimate.get("min"), estimate.get("max")
    if estimate.get("value") is None or low is None or high is None:
        return _value(control, name)
    runs = control.get("permutations")
    runs_text = f", {int(runs)} permutations" if runs else ""
    return f"{estimate['value']:.3f} <span class=muted>({low:.3f} to {high:.3f}{runs_text})</span>"


def _name(model: dict[str, Any]) -> str:
    return escape(f"{model.get('representation', '?')}/{model.get('head', '?')}")


def _timing(model: dict[str, Any]) -> str:
    featurize, seconds = model.get("featurize_seconds"), model.get("seconds")
    if featurize is None and seconds is None:
        return "–"
    return " / ".join("–" if s is None else f"{s:.1f}" for s in (featurize, seconds))


# --- SVG primitives ---------------------------------------------------------------------------------------


class _Series(NamedTuple):
    """One line (or set of points) on a plot, in data coordinates."""

    label: str
    color: str
    xs: list[float]
    ys: list[float]
    dashed: bool = False
    markers: bool = False
    sd: list[float] | None = None  # vertical error bars, ± this much at each point


class _Frame(NamedTuple):
    """Data ranges [x0, x1] × [y0, y1] mapped into a width × height pixel box inside its margins."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 300
    height: int = 250
    left: int = 46
    top: int = 8
    right: int = 12
    bottom: int = 38

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        return self.height - self.bottom - (value - self.y0) / (self.y1 - self.y0) * (
            self.height - self.top - self.bottom
        )

    def point(self, x: float, y: float) -> str:
        return f"{self.x(x):.1f},{self.y(y):.1f}"


def _ticks(low: float, high: float, step: float) -> list[tuple[float, str]]:
    count = round((high - low) / step)
    return [(low + i * step, f"{round(low + i * step, 2):g}") for i in range(count + 1)]


def _svg(frame: _Frame, label: str, content: str, x_ticks: list[tuple[float, str]],
         y_ticks: list[tuple[float, str]], x_label: str, y_label: str) -> str:
    """An ``<svg>`` with grid, tick labels and axis titles around ``content`` (already SVG)."""
    bottom, top = frame.y(frame.y0), frame.y(frame.y1)
    left, right = frame.x(frame.x0), frame.x(frame.x1)
    grid = []
    for value, text in x_ticks:
        x = frame.x(value)
        grid.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="{GRID}"/>'
                    f'<text x="{x:.1f}" y="{bottom + 13:.1f}" text-anchor="middle">{escape(text)}</text>')
    for value, text in y_ticks:
        y = frame.y(value)
        grid.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                    f'<text x="{left - 4:.1f}" y="{y + 3:.1f}" text-anchor="end">{escape(text)}</text>')
    box = (f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
           f'fill="none" stroke="#999"/>')
    titles = f'<text x="{(left + right) / 2:.1f}" y="{frame.height - 4}" text-anchor="middle">{escape(x_label)}</text>'
    if y_label:
        titles += (f'<text transform="translate(11 {(top + bottom) / 2:.1f}) rotate(-90)" text-anchor="middle">'
                   f"{escape(y_label)}</text>")
    return (f'<svg viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" height="{frame.height}" '
            f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
            f"{''.join(grid)}{box}{content}{titles}</svg>")


def _draw(frame: _Frame, series: _Series) -> str:
    dash = DASH if series.dashed else ""
    points = " ".join(frame.point(x, y) for x, y in zip(series.xs, series.ys, strict=True))
    parts = [f'<polyline fill="none" stroke="{series.color}" stroke-width="1.6"{dash} points="{points}">'
             f"<title>{escape(series.label)}</title></polyline>"]
    if series.sd is not None:
        for x, y, sd in zip(series.xs, series.ys, series.sd, strict=True):
            px = frame.x(x)
            parts.append(f'<line x1="{px:.1f}" y1="{frame.y(max(y - sd, frame.y0)):.1f}" x2="{px:.1f}" '
                         f'y2="{frame.y(min(y + sd, frame.y1)):.1f}" stroke="{series.color}"/>')
    if series.markers:
        parts.extend(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.5" fill="{series.color}"/>'
                     for x, y in zip(series.xs, series.ys, strict=True))
    return "".join(parts)


def _reference(frame: _Frame, x1: float, y1: float, x2: float, y2: float) -> str:
    """A dashed grey reference line (chance, perfect calibration, prevalence) in data coordinates."""
    return (f'<line x1="{frame.x(x1):.1f}" y1="{frame.y(y1):.1f}" x2="{frame.x(x2):.1f}" y2="{frame.y(y2):.1f}" '
            f'stroke="#aaa"{DASH}/>')


def _figure(svg: str, caption: str, wide: bool = False) -> str:
    return f"<figure{' class=wide' if wide else ''}>{svg}<figcaption>{caption}</figcaption></figure>"


# --- binary tasks: plots ---------------------------------------------------------------------------------


def _colors(models: list[dict[str, Any]]) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(len(models))]


def _curve_series(task: dict[str, Any], curve: str, x: str, y: str) -> list[_Series]:
    """One series per model with stored curves (plus the oracle, dashed), for curve/x/y of binary_curves."""
    out = [_Series(f"{m.get('representation')}/{m.get('head')}", color, m["curves"][curve][x], m["curves"][curve][y],
                   markers=curve == "calibration")
           for m, color in zip(task["models"], _colors(task["models"]), strict=True) if m.get("curves")]
    oracle = task.get("oracle") or {}
    if oracle.get("curves"):
        out.append(_Series(ORACLE, ORACLE_COLOR, oracle["curves"][curve][x], oracle["curves"][curve][y], dashed=True,
                           markers=curve == "calibration"))
    return out


def _unit_plot(task: dict[str, Any], curve: str, x: str, y: str, axes: tuple[str, str], reference: str) -> str:
    series = _curve_series(task, curve, x, y)
    frame = _Frame(0.0, 1.0, 0.0, 1.0)
    lines = reference + "".join(_draw(frame, s) for s in series)
    ticks = _ticks(0.0, 1.0, 0.2)
    return _svg(frame, f"{task['task']}: {curve}", lines, ticks, ticks, *axes)


def _curve_plots(task: dict[str, Any]) -> list[str]:
    if not _curve_series(task, "roc", "fpr", "tpr"):
        return []
    frame = _Frame(0.0, 1.0, 0.0, 1.0)
    prevalence = (task.get("splits", {}).get("held_out") or {}).get("prevalence")
    baseline = "" if prevalence is None else _reference(frame, 0.0, prevalence, 1.0, prevalence)
    diagonal = _reference(frame, 0.0, 0.0, 1.0, 1.0)
    return [
        _figure(_unit_plot(task, "roc", "fpr", "tpr", ("false-positive rate", "true-positive rate"), diagonal),
                "ROC: true- against false-positive rate over all thresholds on the held-out split. The dashed "
                "diagonal is chance (AUROC 0.5); curves towards the top left rank better."),
        _figure(_unit_plot(task, "pr", "recall", "precision", ("recall", "precision"), baseline),
                "Precision-recall: precision against recall (sensitivity). The dashed line is the held-out "
                "prevalence, what a random ranking achieves; more telling than ROC when positives are rare."),
        _figure(_unit_plot(task, "calibration", "mean_predicted", "observed",
                           ("mean predicted probability", "observed event rate"), diagonal),
                "Calibration: observed event rate against mean predicted probability in 10 equal-width bins "
                "(empty bins left out). On the diagonal is well calibrated; below it the model over-predicts."),
    ]


def _done_ks(model: dict[str, Any]) -> list[int]:
    """The k of a model's few-shot curve that finished with a finite mean and SD."""
    return [int(k) for k, v in (model.get("few_shot") or {}).items()
            if v.get("status") == "done" and all(_finite(v.get(key)) for key in ("auroc_mean", "auroc_sd"))]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _few_shot_plot(task: dict[str, Any]) -> str:
    """Mean AUROC (± SD error bars) against k on a log2 axis, one line per model, dodged sideways."""
    models = [(m, c) for m, c in zip(task["models"], _colors(task["models"]), strict=True) if _done_ks(m)]
    if not models:
        return ""
    ks = sorted({k for m, _ in models for k in _done_ks(m)})
    entries = [m["few_shot"][str(k)] for m, _ in models for k in _done_ks(m)]
    low = min(0.5, *(e["auroc_mean"] - e["auroc_sd"] for e in entries))
    high = max(e["auroc_mean"] + e["auroc_sd"] for e in entries)
    y0 = math.floor(low * 10 + 1e-9) / 10
    y1 = min(1.0, max(math.ceil(high * 10 - 1e-9) / 10, y0 + 0.2))
    x0, x1 = math.log2(ks[0]) - 0.4, math.log2(ks[-1]) + 0.4
    frame = _Frame(x0, x1, y0, y1)
    lines = [_reference(frame, x0, 0.5, x1, 0.5)]  # y0 <= 0.5 by construction
    for j, (model, color) in enumerate(models):
        dodge = (j - (len(models) - 1) / 2) * 0.08
        done = _done_ks(model)
        curve = [model["few_shot"][str(k)] for k in done]
        lines.append(_draw(frame, _Series(f"{model.get('representation')}/{model.get('head')}", color,
                                          [math.log2(k) + dodge for k in done], [c["auroc_mean"] for c in curve],
                                          markers=True, sd=[c["auroc_sd"] for c in curve])))
    x_ticks = [(math.log2(k), str(k)) for k in ks]
    y_ticks = _ticks(y0, y1, 0.1 if y1 - y0 <= 0.6 else 0.2)
    svg = _svg(frame, f"{task['task']}: few-shot AUROC", "".join(lines), x_ticks, y_ticks,
               "k positives (+ k negatives), log2 scale", "held-out AUROC")
    return _figure(svg, "Few-shot: mean held-out AUROC of 5 replicates, each trained on k positives and k "
                        "negatives (log2 axis); bars are ± 1 SD. The dashed line is chance.")


def _forest_plot(task: dict[str, Any], attribute: str) -> str:
    """AUROC point and 95% CI whisker per subgroup value (rows) and model (dodged within a row)."""
    models = [(m, c) for m, c in zip(task["models"], _colors(task["models"]), strict=True) if m.get("subgroups")]
    rows: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    for value, entry in models[0][0]["subgroups"].get(attribute, {}).items():
        marks = []
        for model, color in models:
            auroc = (((model["subgroups"].get(attribute) or {}).get(value) or {}).get("metrics") or {}).get("auroc")
            if auroc and None not in (auroc.get("value"), auroc.get("ci_low"), auroc.get("ci_high")):
                marks.append((color, auroc))
        if marks:
            label = str(value) if len(str(value)) <= 22 else f"{str(value)[:21]}…"
            rows.append((f"{label} (n={entry.get('n', '?')})", marks))
    if not rows:
        return ""
    x0 = min(0.5, *(a["ci_low"] for _, marks in rows for _, a in marks))
    x0 = math.floor(x0 * 10 + 1e-9) / 10
    band = 10 + 7 * len(models)
    frame = _Frame(x0, 1.0, 0.0, float(len(rows)), width=440, height=len(rows) * band + 46, left=150)
    parts = [_reference(frame, 0.5, 0.0, 0.5, float(len(rows)))]  # x0 <= 0.5 by construction
    for i, (_, marks) in enumerate(rows):
        for j, (color, a) in enumerate(marks):
            y = frame.y(len(rows) - i - 0.5 - (j - (len(marks) - 1) / 2) * 7 / band)
            parts.append(f'<line x1="{frame.x(a["ci_low"]):.1f}" y1="{y:.1f}" x2="{frame.x(a["ci_high"]):.1f}" '
                         f'y2="{y:.1f}" stroke="{color}" stroke-width="1.5"/>'
                         f'<circle cx="{frame.x(a["value"]):.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    y_ticks = [(len(rows) - i - 0.5, label) for i, (label, _) in enumerate(rows)]
    x_ticks = _ticks(x0, 1.0, 0.1 if 1.0 - x0 <= 0.6 else 0.2)
    svg = _svg(frame, f"{task['task']}: AUROC by {attribute}", "".join(parts), x_ticks, y_ticks,
               f"AUROC (95% CI) by {attribute}", "")
    return _figure(svg, f"AUROC by {escape(attribute)}: point estimate and 95% CI per subgroup, one colour per "
                        "model; groups too small or single-class are left out. The dashed line is chance.", wide=True)


def _legend(task: dict[str, Any]) -> str:
    items = [f'<span><span class=swatch style="border-color:{c}"></span>{_name(m)}</span>'
             for m, c in zip(task["models"], _colors(task["models"]), strict=True)]
    if (task.get("oracle") or {}).get("curves"):
        items.append(f'<span><span class=swatch style="border-color:{ORACLE_COLOR};border-top-style:dashed">'
                     "</span>oracle (generator's true probability)</span>")
    return f"<p class=legend>{''.join(items)}</p>"


# --- tables ----------------------------------------------------------------------------------------------


def _splits_line(splits: dict[str, dict[str, Any]]) -> str:
    """n per split, and prevalence (binary), mean and SD (regression) or categories (multilabel)."""
    parts = []
    for name, s in splits.items():
        text = f"{escape(str(name))}: n={int(s.get('n', 0)):,}"
        if "categories" in s:
            text += f", {int(s['categories'])} categories"
        elif "prevalence" in s:
            positives = f"{int(s['positives']):,} positives, " if "positives" in s else ""
            text += f", {positives}prevalence {s['prevalence']:.3f}"
        elif "mean" in s:
            text += f", mean {s['mean']:.3g} (SD {s.get('sd', float('nan')):.3g})"
        parts.append(text)
    return f"<p class=muted>{' · '.join(parts)}</p>" if parts else ""


def _binary_table(task: dict[str, Any]) -> str:
    rows = []
    for model in task["models"]:
        m = model.get("metrics") or {}
        rows.append(f"<tr><td>{_name(model)}</td><td>{_ci(m, 'auroc')}</td><td>{_ci(m, 'auprc')}</td>"
                    f"<td>{_ci(m, 'brier')}</td><td>{_ci(m, 'ece')}</td>"
                    f"<td>{_shuffled(model, 'auroc')}</td>"
                    f"<td>{model.get('n_features', '–')}</td><td>{_timing(model)}</td></tr>")
    oracle = task.get("oracle")
    if oracle and oracle.get("status") == "done":
        om = oracle["metrics"]
        rows.append(f"<tr><td>oracle (generator's true probability)</td><td>{_ci(om, 'auroc')}</td>"
                    f"<td>{_ci(om, 'auprc')}</td><td>{_ci(om, 'brier')}</td><td>{_ci(om, 'ece')}</td>"
                    "<td></td><td></td><td></td></tr>")
    return ("<table><tr><th>model</th><th>AUROC (95% CI)</th><th>AUPRC</th><th>Brier</th><th>ECE</th>"
            "<th>label-shuffle AUROC</th><th>features</th><th>featurize s / train+eval s</th></tr>"
            + "".join(rows) + "</table>")


def _p_value(p: float | None, n_boot: int | None) -> str:
    """A bootstrap p-value; at its floor ``2 / (B + 1)`` (no resample crossed zero) it reads
    ``< 0.010`` (for B = 199), the bound rounded up, since the p-value is only known to be that small.

    >>> _p_value(0.01, 199), _p_value(2 / 1001, 1000), _p_value(0.0421, 199), _p_value(0.0, None)
    ('< 0.010', '< 0.002', '0.042', '0.000')
    """
    if p is None or math.isnan(p):
        return "–"
    if n_boot:
        floor = 2 / (n_boot + 1)
        if p <= floor * (1 + 1e-9):
            return f"< {math.ceil(floor * 1000 - 1e-9) / 1000:.3f}"
    return f"{p:.3f}"


def _comparisons_table(task: dict[str, Any]) -> str:
    comparisons = task.get("comparisons") or []
    rows = "".join(
        f"<tr><td>{escape(c['a'])} − {escape(c['b'])}</td><td>{c['delta_auroc']:+.3f} "
        f"<span class=muted>({c['ci'][0]:+.3f} to {c['ci'][1]:+.3f})</span></td>"
        f"<td>{escape(_p_value(c['p_value'], c.get('n_boot')))}</td>"
        f"<td>{escape(_p_value(c.get('p_value_holm'), None))}</td></tr>"
        for c in comparisons
    )
    if not rows:
        return ""
    resamples = sorted({int(c["n_boot"]) for c in comparisons if c.get("n_boot")})
    note = ("<p class=muted>p: two-sided paired bootstrap, min(1, 2(k+1)/(B+1)) with k of the B resamples "
            "on the far side of zero (a resampled ΔAUROC of exactly 0 counts as far side); "
            f"&lt; x: no resample crossed zero (B = {', '.join(map(str, resamples))}). "
            "p (Holm): adjusted over every comparison of the report.</p>") if resamples else ""
    return ("<table><tr><th>paired comparison</th><th>ΔAUROC (95% CI)</th><th>p</th><th>p (Holm)</th></tr>"
            + rows + "</table>" + note)


def _regression_table(task: dict[str, Any]) -> str:
    rows = []
    for model in task["models"]:
        m = model.get("regression_metrics") or {}
        rows.append(f"<tr><td>{_name(model)}</td><td>{_ci(m, 'mae')}</td><td>{_ci(m, 'rmse')}</td>"
                    f"<td>{_ci(m, 'r2')}</td><td>{_shuffled(model, 'r2')}</td>"
                    f"<td>{model.get('n_features', '–')}</td><td>{_timing(model)}</td></tr>")
    return ("<table><tr><th>model</th><th>MAE (95% CI)</th><th>RMSE</th><th>R²</th><th>label-shuffle R²</th>"
            "<th>features</th><th>featurize s / train+eval s</th></tr>" + "".join(rows) + "</table>"
            "<p class=muted>The label-shuffle control trains the same regressor on permuted training labels: "
            "its R² should be near (or below) 0.</p>")


def _multilabel_table(task: dict[str, Any]) -> str:
    models = [m for m in task["models"] if "multilabel_metrics" in m]
    first = models[0]["multilabel_metrics"]
    rows = "".join(
        f"<tr><td>{_name(model)}</td><td>{m['micro_f1']:.3f}</td><td>{m['macro_f1']:.3f}</td>"
        f"<td>{m['precision_at_k']:.3f}</td><td>{m['mean_average_precision']:.3f}</td></tr>"
        for model in models for m in [model["multilabel_metrics"]]
    )
    return (f"<p class=muted>{models[0].get('categories', '?')} categories (≥ 5 train cases), "
            f"{first['labels_present']} present in held-out</p><table><tr><th>model</th><th>micro-F1</th>"
            f"<th>macro-F1 (present labels)</th><th>P@{first['k']}</th><th>mAP</th></tr>{rows}</table>")


def _text_notes(models: list[dict[str, Any]]) -> str:
    """One muted line per distinct text embedding run (the models of a task share one), naming its models."""
    runs: list[tuple[dict[str, Any], list[str]]] = []
    for model in models:
        text = model.get("text")
        if not text:
            continue
        for known, names in runs:
            if known == text:
                names.append(_name(model))
                break
        else:
            runs.append((text, [_name(model)]))
    return "".join(f"<p class=muted>text ({', '.join(names)}): {_text_summary(text)}</p>" for text, names in runs)


def _text_summary(text: dict[str, Any]) -> str:
    dimension = int(text["dimension"]) if text.get("dimension") else None
    if text.get("encoder_label"):  # "all-MiniLM-L6-v2 (sentence-transformers, fingerprint …)"
        parts = [f"encoder {escape(str(text['encoder_label']))}"] + ([f"{dimension}-d"] if dimension else [])
    else:  # reports written before encoder_label: the identity "kind|model=<directory>@<hash>|…"
        identity = str(text.get("encoder", "?")).split("|")
        model = next((p.removeprefix("model=") for p in identity[1:] if p.startswith("model=")), "")
        parts = [f"encoder {escape(' '.join(filter(None, (identity[0], model))))}"
                 + (f" ({dimension}-d)" if dimension else "")]
    serializer = text.get("serializer")
    if isinstance(serializer, dict) and serializer.get("format"):
        parts.append(f"{escape(str(serializer['format']))} timelines")
    counts = (("n_texts", "texts"), ("cache_hits", "cache hits"), ("embedded", "embedded"))
    parts.extend(f"{int(text[key]):,} {label}" for key, label in counts if text.get(key) is not None)
    if text.get("embed_seconds") is not None and parts[-1].endswith("embedded"):
        parts[-1] += f" in {float(text['embed_seconds']):.1f} s"
    if text.get("truncated_texts") is not None:
        parts.append(f"{int(text['truncated_texts']):,} truncated")
    return ", ".join(parts)


def _few_shot_table(task: dict[str, Any]) -> str:
    """Mean (SD) held-out AUROC over 5 replicates for k positives and k negatives."""
    curves = [(m, m["few_shot"], set(_done_ks(m))) for m in task["models"] if _done_ks(m)]
    if not curves:
        return ""
    ks = sorted(set().union(*(done for _, _, done in curves)))
    head = "".join(f"<th>k={k}</th>" for k in ks)
    rows = "".join(
        f"<tr><td>{_name(m)}</td>"
        + "".join(f"<td>{c[str(k)]['auroc_mean']:.3f} <span class=muted>({c[str(k)]['auroc_sd']:.3f})</span></td>"
                  if k in done else "<td>–</td>" for k in ks)
        + "</tr>"
        for m, c, done in curves
    )
    title = "<p>Few-shot: mean (SD) AUROC, k positives + k negatives, 5 replicates</p>"
    return f"{title}<table><tr><th>model</th>{head}</tr>{rows}</table>"


def _subgroup_tables(task: dict[str, Any]) -> str:
    """AUROC with CI per subgroup value, one row per value, one column per model, and a forest plot each."""
    models = [m for m in task["models"] if m.get("subgroups")]
    if not models:
        return ""
    head = "".join(f"<th>{_name(m)} AUROC</th>" for m in models)
    parts = []
    for attribute, values in models[0]["subgroups"].items():
        rows = []
        for value, entry in values.items():
            cells = "".join(
                f"<td>{_ci(((m['subgroups'].get(attribute) or {}).get(value) or {}).get('metrics') or {}, 'auroc')}"
                "</td>" for m in models
            )
            rows.append(f"<tr><td>{escape(str(value))}</td><td>{entry.get('n', '–')}</td>"
                        f"<td>{entry.get('positives', '–')}</td>{cells}</tr>")
        parts.append(f"<table><tr><th>{escape(attribute)}</th><th>n</th><th>positives</th>{head}</tr>"
                     + "".join(rows) + "</table>" + _forest_plot(task, attribute))
    return "<details><summary>subgroups</summary>" + "".join(parts) + "</details>"


# --- page ------------------------------------------------------------------------------------------------


def _binary_body(task: dict[str, Any]) -> str:
    plots = [*_curve_plots(task), _few_shot_plot(task)]
    figures = "".join(p for p in plots if p)
    if figures:
        figures = f"{_legend(task)}<div class=plots>{figures}</div>"
    return (_binary_table(task) + _comparisons_table(task) + _text_notes(task["models"]) + figures
            + _few_shot_table(task) + _subgroup_tables(task))


def _task_section(task: dict[str, Any]) -> str:
    title = f"<h2>{escape(str(task['task']))}</h2>"
    splits = _splits_line(task.get("splits") or {})
    if task["status"] != "done":
        return f"{title}<p class=muted>skipped: {escape(str(task.get('reason', '')))}</p>{splits}"
    models = task.get("models") or []
    if any("multilabel_metrics" in m for m in models):
        return title + splits + _multilabel_table(task)
    if any("regression_metrics" in m for m in models):
        return title + splits + _regression_table(task) + _text_notes(models)
    return title + splits + _binary_body(task)


def render_report(report: dict[str, Any]) -> str:
    """The report as one HTML page: tables and inline-SVG plots, no scripts, fonts or URLs."""
    config = report["config"]
    header = (
        f"<h1>ehrpredict benchmark</h1><p>dataset <code>{escape(str(report['dataset']['path']))}</code> "
        f"(fingerprint {escape(str(report['dataset']['fingerprint']))}) · seed {config['seed']} · "
        f"{config['n_boot']} patient-level bootstrap resamples · ehrpredict {escape(str(report['ehrpredict_version']))}"
        f" · {report['seconds']} s</p><p class=muted>Metrics are on the held-out split. Intervals are 95% "
        f"percentile intervals from resampling patients. The label-shuffle control trains the same model on "
        f"permuted training labels: its AUROC should be near 0.5 (with several permutations: their mean, and "
        f"their range in brackets). Timings: featurization (shared by the heads "
        f"of one representation) / training and evaluation of one model, in seconds.</p>"
    )
    body = "".join(_task_section(t) for t in report["tasks"])
    return (f"<!doctype html><html><head><meta charset=utf-8><title>ehrpredict benchmark</title>"
            f"<style>{STYLE}</style></head><body>{header}{body}</body></html>\n")
