"""A self-contained HTML page for a benchmark report (no scripts, fonts or requests: opens offline).

The layout: tables for every task, and for binary tasks the plots :mod:`ehrpredict.reporting.svg` draws
(ROC and precision-recall curves, calibration, few-shot AUROC against k, subgroup forest plots), with a
caption each. Reads a typed :class:`BenchmarkReport`; every text taken from it is escaped, and what a
report lacks (curves, a few-shot curve, subgroups too small to evaluate) is left out, not an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ehrpredict.evaluation.bootstrap import Estimate
from ehrpredict.experiments.results import (
    BenchmarkReport,
    BinaryModelResult,
    BinarySplit,
    ModelResult,
    MultilabelModelResult,
    MultilabelSplit,
    RegressionModelResult,
    RegressionSplit,
    ShuffleControl,
    SplitStats,
    TaskResult,
)
from ehrpredict.reporting import svg
from ehrpredict.reporting.svg import ORACLE_COLOR, Interval, KCurve, Series

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

ORACLE = "oracle"


def _ci(estimate: Estimate | None) -> str:
    """``0.812 (0.781–0.840)``; the value alone when its interval is undefined, ``–`` without a value."""
    if estimate is None or math.isnan(estimate.value):
        return "–"
    if math.isnan(estimate.ci_low) or math.isnan(estimate.ci_high):
        return f"{estimate.value:.3f}"
    return f"{estimate.value:.3f} <span class=muted>({estimate.ci_low:.3f}–{estimate.ci_high:.3f})</span>"


def _shuffled(control: ShuffleControl, name: str) -> str:
    """The label-shuffle control's ``name``: the mean over permutations with their range."""
    score = control.scores.get(name)
    if score is None:
        return "–"
    runs = f", {int(control.permutations)} permutations" if control.permutations else ""
    return f"{score.value:.3f} <span class=muted>({score.min:.3f} to {score.max:.3f}{runs})</span>"


def _label(model: ModelResult) -> str:
    return f"{model.representation}/{model.head}"


def _name(model: ModelResult) -> str:
    return escape(_label(model))


def _timing(model: BinaryModelResult | RegressionModelResult) -> str:
    return f"{model.featurize_seconds:.1f} / {model.seconds:.1f}"


def _figure(plot: str, caption: str, wide: bool = False) -> str:
    return f"<figure{' class=wide' if wide else ''}>{plot}<figcaption>{caption}</figcaption></figure>"


# --- binary tasks: plots ---------------------------------------------------------------------------------


def _binary_models(task: TaskResult) -> list[BinaryModelResult]:
    return [m for m in task.models if isinstance(m, BinaryModelResult)]


def _colored(task: TaskResult) -> list[tuple[BinaryModelResult, str]]:
    models = _binary_models(task)
    return list(zip(models, svg.colors(len(models)), strict=True))


CURVES = {"roc": ("fpr", "tpr"), "pr": ("recall", "precision"), "calibration": ("mean_predicted", "observed")}


def _curve_series(task: TaskResult, curve: str) -> list[Series]:
    """One series per model with curves (plus the oracle's, dashed) for ``curve`` of :class:`Curves`."""
    x, y = CURVES[curve]
    markers = curve == "calibration"
    out = [Series(_label(m), color, getattr(getattr(m.curves, curve), x), getattr(getattr(m.curves, curve), y),
                  markers=markers) for m, color in _colored(task) if m.curves is not None]
    if task.oracle is not None and task.oracle.curves is not None:
        points = getattr(task.oracle.curves, curve)
        out.append(Series(ORACLE, ORACLE_COLOR, getattr(points, x), getattr(points, y), dashed=True, markers=markers))
    return out


def curve_plots(task: TaskResult) -> list[str]:
    if not _curve_series(task, "roc"):
        return []
    held_out = task.splits.get("held_out")
    prevalence = held_out.prevalence if isinstance(held_out, BinarySplit) else None
    label = f"{task.name}: "
    return [
        _figure(svg.unit_plot(label + "roc", _curve_series(task, "roc"), ("false-positive rate", "true-positive rate"),
                              diagonal=True),
                "ROC: true- against false-positive rate over all thresholds on the held-out split. The dashed "
                "diagonal is chance (AUROC 0.5); curves towards the top left rank better."),
        _figure(svg.unit_plot(label + "pr", _curve_series(task, "pr"), ("recall", "precision"), level=prevalence),
                "Precision-recall: precision against recall (sensitivity). The dashed line is the held-out "
                "prevalence, what a random ranking achieves; more telling than ROC when positives are rare."),
        _figure(svg.unit_plot(label + "calibration", _curve_series(task, "calibration"),
                              ("mean predicted probability", "observed event rate"), diagonal=True),
                "Calibration: observed event rate against mean predicted probability in 10 equal-width bins "
                "(empty bins left out). On the diagonal is well calibrated; below it the model over-predicts."),
    ]


def _done(model: BinaryModelResult) -> dict[int, tuple[float, float]]:
    """k → (mean, SD) of the points of a model's few-shot curve that finished with a finite mean and SD."""
    points = () if model.few_shot is None else model.few_shot.points
    return {p.k: (p.auroc_mean, p.auroc_sd) for p in points if p.status == "done"
            and p.auroc_mean is not None and math.isfinite(p.auroc_mean)
            and p.auroc_sd is not None and math.isfinite(p.auroc_sd)}


def _few_shot_plot(task: TaskResult) -> str:
    curves = []
    for model, color in _colored(task):
        done = _done(model)
        if done:
            curves.append(KCurve(_label(model), color, list(done), [m for m, _ in done.values()],
                                 [sd for _, sd in done.values()]))
    if not curves:
        return ""
    plot = svg.k_plot(f"{task.name}: few-shot AUROC", curves,
                      ("k positives (+ k negatives), log2 scale", "held-out AUROC"))
    return _figure(plot, "Few-shot: mean held-out AUROC of 5 replicates, each trained on k positives and k "
                         "negatives (log2 axis); bars are ± 1 SD. The dashed line is chance.")


def _subgroup_auroc(model: BinaryModelResult, attribute: str, value: str) -> Estimate | None:
    entry = model.subgroups.get(attribute, {}).get(value)
    return None if entry is None or entry.metrics is None else entry.metrics.auroc


def forest_plot(task: TaskResult, attribute: str) -> str:
    """AUROC point and 95% CI whisker per subgroup value (rows) and model (dodged within a row)."""
    models = [(m, c) for m, c in _colored(task) if m.subgroups]
    rows: list[tuple[str, Sequence[Interval]]] = []
    for value, entry in models[0][0].subgroups.get(attribute, {}).items():
        marks = []
        for model, color in models:
            auroc = _subgroup_auroc(model, attribute, value)
            if auroc is not None and not any(math.isnan(v) for v in (auroc.value, auroc.ci_low, auroc.ci_high)):
                marks.append(Interval(color, auroc.value, auroc.ci_low, auroc.ci_high))
        if marks:
            label = str(value) if len(str(value)) <= 22 else f"{str(value)[:21]}…"
            rows.append((f"{label} (n={entry.n})", marks))
    if not rows:
        return ""
    plot = svg.forest_plot(f"{task.name}: AUROC by {attribute}", rows, len(models), f"AUROC (95% CI) by {attribute}")
    return _figure(plot, f"AUROC by {escape(attribute)}: point estimate and 95% CI per subgroup, one colour per "
                         "model; groups too small or single-class are left out. The dashed line is chance.", wide=True)


def legend(task: TaskResult) -> str:
    items = [f'<span><span class=swatch style="border-color:{c}"></span>{_name(m)}</span>' for m, c in _colored(task)]
    if task.oracle is not None and task.oracle.curves is not None:
        items.append(f'<span><span class=swatch style="border-color:{ORACLE_COLOR};border-top-style:dashed">'
                     "</span>oracle (generator's true probability)</span>")
    return f"<p class=legend>{''.join(items)}</p>"


# --- tables ----------------------------------------------------------------------------------------------


def _splits_line(splits: Mapping[str, SplitStats]) -> str:
    """n per split, and prevalence (binary), mean and SD (regression) or categories (multilabel)."""
    parts = []
    for name, s in splits.items():
        text = f"{escape(str(name))}: n={int(s.n):,}"
        if isinstance(s, MultilabelSplit):
            text += f", {int(s.categories)} categories"
        elif isinstance(s, BinarySplit):
            text += f", {int(s.positives):,} positives, prevalence {s.prevalence:.3f}"
        elif isinstance(s, RegressionSplit):
            text += f", mean {s.mean:.3g} (SD {s.sd:.3g})"
        parts.append(text)
    return f"<p class=muted>{' · '.join(parts)}</p>" if parts else ""


def _binary_table(task: TaskResult) -> str:
    rows = []
    for model in _binary_models(task):
        m = model.metrics
        rows.append(f"<tr><td>{_name(model)}</td><td>{_ci(m.auroc)}</td><td>{_ci(m.auprc)}</td>"
                    f"<td>{_ci(m.brier)}</td><td>{_ci(m.ece)}</td>"
                    f"<td>{_shuffled(model.label_shuffle_control, 'auroc')}</td>"
                    f"<td>{model.n_features}</td><td>{_timing(model)}</td></tr>")
    oracle = task.oracle
    if oracle is not None and oracle.status == "done" and oracle.metrics is not None:
        om = oracle.metrics
        rows.append(f"<tr><td>oracle (generator's true probability)</td><td>{_ci(om.auroc)}</td>"
                    f"<td>{_ci(om.auprc)}</td><td>{_ci(om.brier)}</td><td>{_ci(om.ece)}</td>"
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


def _comparisons_table(task: TaskResult) -> str:
    rows = "".join(
        f"<tr><td>{escape(c.a)} − {escape(c.b)}</td><td>{c.delta_auroc:+.3f} "
        f"<span class=muted>({c.ci[0]:+.3f} to {c.ci[1]:+.3f})</span></td>"
        f"<td>{escape(_p_value(c.p_value, c.n_boot))}</td>"
        f"<td>{escape(_p_value(c.p_value_holm, None))}</td></tr>"
        for c in task.comparisons
    )
    if not rows:
        return ""
    resamples = sorted({int(c.n_boot) for c in task.comparisons if c.n_boot})
    note = ("<p class=muted>p: two-sided paired bootstrap, min(1, 2(k+1)/(B+1)) with k of the B resamples "
            "on the far side of zero (a resampled ΔAUROC of exactly 0 counts as far side); "
            f"&lt; x: no resample crossed zero (B = {', '.join(map(str, resamples))}). "
            "p (Holm): adjusted over every comparison of the report.</p>") if resamples else ""
    return ("<table><tr><th>paired comparison</th><th>ΔAUROC (95% CI)</th><th>p</th><th>p (Holm)</th></tr>"
            + rows + "</table>" + note)


def _regression_table(task: TaskResult) -> str:
    rows = []
    for model in (m for m in task.models if isinstance(m, RegressionModelResult)):
        m = model.metrics
        rows.append(f"<tr><td>{_name(model)}</td><td>{_ci(m.mae)}</td><td>{_ci(m.rmse)}</td>"
                    f"<td>{_ci(m.r2)}</td><td>{_shuffled(model.label_shuffle_control, 'r2')}</td>"
                    f"<td>{model.n_features}</td><td>{_timing(model)}</td></tr>")
    return ("<table><tr><th>model</th><th>MAE (95% CI)</th><th>RMSE</th><th>R²</th><th>label-shuffle R²</th>"
            "<th>features</th><th>featurize s / train+eval s</th></tr>" + "".join(rows) + "</table>"
            "<p class=muted>The label-shuffle control trains the same regressor on permuted training labels: "
            "its R² should be near (or below) 0.</p>")


def _multilabel_table(task: TaskResult) -> str:
    models = [m for m in task.models if isinstance(m, MultilabelModelResult)]
    first = models[0].metrics
    rows = "".join(
        f"<tr><td>{_name(model)}</td><td>{m.micro_f1:.3f}</td><td>{m.macro_f1:.3f}</td>"
        f"<td>{m.precision_at_k:.3f}</td><td>{m.mean_average_precision:.3f}</td></tr>"
        for model in models for m in [model.metrics]
    )
    return (f"<p class=muted>{models[0].categories} categories (≥ 5 train cases), "
            f"{first.labels_present} present in held-out</p><table><tr><th>model</th><th>micro-F1</th>"
            f"<th>macro-F1 (present labels)</th><th>P@{first.k}</th><th>mAP</th></tr>{rows}</table>")


def _text_notes(models: Sequence[ModelResult]) -> str:
    """One muted line per distinct text embedding run (the models of a task share one), naming its models."""
    runs: list[tuple[Mapping[str, Any], list[str]]] = []
    for model in models:
        text = None if isinstance(model, MultilabelModelResult) else model.text
        if not text:
            continue
        for known, names in runs:
            if known == text:
                names.append(_name(model))
                break
        else:
            runs.append((text, [_name(model)]))
    return "".join(f"<p class=muted>text ({', '.join(names)}): {_text_summary(text)}</p>" for text, names in runs)


def _text_summary(text: Mapping[str, Any]) -> str:
    dimension = int(text["dimension"]) if text.get("dimension") else None
    if text.get("encoder_label"):  # "all-MiniLM-L6-v2 (sentence-transformers, fingerprint …)"
        parts = [f"encoder {escape(str(text['encoder_label']))}"] + ([f"{dimension}-d"] if dimension else [])
    else:  # reports written before encoder_label: the identity "kind|model=<directory>@<hash>|…"
        identity = str(text.get("encoder", "?")).split("|")
        model = next((p.removeprefix("model=") for p in identity[1:] if p.startswith("model=")), "")
        parts = [f"encoder {escape(' '.join(filter(None, (identity[0], model))))}"
                 + (f" ({dimension}-d)" if dimension else "")]
    serializer = text.get("serializer")
    if isinstance(serializer, Mapping) and serializer.get("format"):
        parts.append(f"{escape(str(serializer['format']))} timelines")
    counts = (("n_texts", "texts"), ("cache_hits", "cache hits"), ("embedded", "embedded"))
    parts.extend(f"{int(text[key]):,} {label}" for key, label in counts if text.get(key) is not None)
    if text.get("embed_seconds") is not None and parts[-1].endswith("embedded"):
        parts[-1] += f" in {float(text['embed_seconds']):.1f} s"
    if text.get("truncated_texts") is not None:
        parts.append(f"{int(text['truncated_texts']):,} truncated")
    return ", ".join(parts)


def _few_shot_table(task: TaskResult) -> str:
    """Mean (SD) held-out AUROC over 5 replicates for k positives and k negatives."""
    curves = [(m, _done(m)) for m in _binary_models(task) if _done(m)]
    if not curves:
        return ""
    ks = sorted(set().union(*(done for _, done in curves)))
    head = "".join(f"<th>k={k}</th>" for k in ks)
    rows = "".join(
        f"<tr><td>{_name(m)}</td>"
        + "".join(f"<td>{done[k][0]:.3f} <span class=muted>({done[k][1]:.3f})</span></td>"
                  if k in done else "<td>–</td>" for k in ks)
        + "</tr>"
        for m, done in curves
    )
    title = "<p>Few-shot: mean (SD) AUROC, k positives + k negatives, 5 replicates</p>"
    return f"{title}<table><tr><th>model</th>{head}</tr>{rows}</table>"


def subgroup_tables(task: TaskResult) -> str:
    """AUROC with CI per subgroup value, one row per value, one column per model, and a forest plot each."""
    models = [m for m in _binary_models(task) if m.subgroups]
    if not models:
        return ""
    head = "".join(f"<th>{_name(m)} AUROC</th>" for m in models)
    parts = []
    for attribute, values in models[0].subgroups.items():
        rows = []
        for value, entry in values.items():
            cells = "".join(f"<td>{_ci(_subgroup_auroc(m, attribute, value))}</td>" for m in models)
            rows.append(f"<tr><td>{escape(str(value))}</td><td>{entry.n}</td><td>{entry.positives}</td>{cells}</tr>")
        parts.append(f"<table><tr><th>{escape(attribute)}</th><th>n</th><th>positives</th>{head}</tr>"
                     + "".join(rows) + "</table>" + forest_plot(task, attribute))
    return "<details><summary>subgroups</summary>" + "".join(parts) + "</details>"


# --- page ------------------------------------------------------------------------------------------------


def _binary_body(task: TaskResult) -> str:
    plots = [*curve_plots(task), _few_shot_plot(task)]
    figures = "".join(p for p in plots if p)
    if figures:
        figures = f"{legend(task)}<div class=plots>{figures}</div>"
    return (_binary_table(task) + _comparisons_table(task) + _text_notes(task.models) + figures
            + _few_shot_table(task) + subgroup_tables(task))


def _task_section(task: TaskResult) -> str:
    title = f"<h2>{escape(task.name)}</h2>"
    splits = _splits_line(task.splits)
    if task.status != "done":
        return f"{title}<p class=muted>skipped: {escape(task.reason)}</p>{splits}"
    if any(isinstance(m, MultilabelModelResult) for m in task.models):
        return title + splits + _multilabel_table(task)
    if any(isinstance(m, RegressionModelResult) for m in task.models):
        return title + splits + _regression_table(task) + _text_notes(task.models)
    return title + splits + _binary_body(task)


def render_report(report: BenchmarkReport, title: str = "ehrpredict benchmark", extra_html: str = "") -> str:
    """The report as one HTML page: tables and inline-SVG plots, no scripts, fonts or URLs.
    ``extra_html`` (already escaped) goes between the header and the tasks (``ehrpredict fit``'s
    calibration and operating point)."""
    config = report.config
    header = (
        f"<h1>{escape(title)}</h1><p>dataset <code>{escape(report.dataset.path)}</code> "
        f"(fingerprint {escape(report.dataset.fingerprint)}) · seed {config['seed']} · "
        f"{config['n_boot']} patient-level bootstrap resamples · ehrpredict {escape(report.version)}"
        f" · {report.seconds} s</p><p class=muted>Metrics are on the held-out split. Intervals are 95% "
        f"percentile intervals from resampling patients. The label-shuffle control trains the same model on "
        f"permuted training labels: its AUROC should be near 0.5 (with several permutations: their mean, and "
        f"their range in brackets). Timings: featurization (shared by the heads "
        f"of one representation) / training and evaluation of one model, in seconds.</p>"
    )
    body = "".join(_task_section(t) for t in report.tasks)
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{header}{extra_html}{body}</body></html>\n")
