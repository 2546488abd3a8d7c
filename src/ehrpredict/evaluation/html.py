"""A self-contained HTML page for a benchmark report (no scripts, fonts or requests: opens offline)."""

from __future__ import annotations

import html
from typing import Any

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:75rem}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}
th,td{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}
.muted{color:#777}
"""


def _ci(metrics: dict[str, Any], name: str) -> str:
    """``0.812 (0.781–0.840)`` from a metric stored as {value, ci_low, ci_high}."""
    estimate = metrics.get(name) or {}
    value, low, high = estimate.get("value"), estimate.get("ci_low"), estimate.get("ci_high")
    if value is None:
        return "–"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} <span class=muted>({low:.3f}–{high:.3f})</span>"


def _task_section(task: dict[str, Any]) -> str:
    title = f"<h2>{html.escape(task['task'])}</h2>"
    if task["status"] != "done":
        return f"{title}<p class=muted>skipped: {html.escape(task['reason'])}</p>"
    splits = " · ".join(
        f"{name}: n={int(s['n'])}, prevalence {s['prevalence']:.3f}" for name, s in task["splits"].items()
    )
    if task["models"] and "multilabel_metrics" in task["models"][0]:
        model = task["models"][0]
        m = model["multilabel_metrics"]
        return (f"{title}<p class=muted>{model['categories']} categories (≥ 5 train cases), "
                f"{m['labels_present']} present in held-out</p><table><tr><th>model</th><th>micro-F1</th>"
                f"<th>macro-F1 (present labels)</th><th>P@{m['k']}</th><th>mAP</th></tr><tr>"
                f"<td>{html.escape(model['representation'])} / {html.escape(model['head'])}</td>"
                f"<td>{m['micro_f1']:.3f}</td><td>{m['macro_f1']:.3f}</td><td>{m['precision_at_k']:.3f}</td>"
                f"<td>{m['mean_average_precision']:.3f}</td></tr></table>")
    rows = []
    for model in task["models"]:
        m = model["metrics"]
        shuffle = (model["label_shuffle_control"].get("auroc") or {}).get("value")
        rows.append(
            f"<tr><td>{html.escape(model['representation'])} / {html.escape(model['head'])}</td>"
            f"<td>{_ci(m, 'auroc')}</td><td>{_ci(m, 'auprc')}</td><td>{_ci(m, 'brier')}</td>"
            f"<td>{_ci(m, 'ece')}</td><td>{'–' if shuffle is None else f'{shuffle:.3f}'}</td>"
            f"<td>{model['n_features']}</td></tr>"
        )
    oracle = task.get("oracle")
    if oracle and oracle.get("status") == "done":
        rows.append(f"<tr><td>oracle (generator's true probability)</td><td>{_ci(oracle['metrics'], 'auroc')}</td>"
                    f"<td>{_ci(oracle['metrics'], 'auprc')}</td><td>{_ci(oracle['metrics'], 'brier')}</td>"
                    f"<td>{_ci(oracle['metrics'], 'ece')}</td><td></td><td></td></tr>")
    table = ("<table><tr><th>model</th><th>AUROC (95% CI)</th><th>AUPRC</th><th>Brier</th><th>ECE</th>"
             "<th>label-shuffle AUROC</th><th>features</th></tr>" + "".join(rows) + "</table>")
    comparisons = "".join(
        f"<tr><td>{html.escape(c['a'])} − {html.escape(c['b'])}</td><td>{c['delta_auroc']:+.3f} "
        f"<span class=muted>({c['ci'][0]:+.3f} to {c['ci'][1]:+.3f})</span></td>"
        f"<td>{c['p_value']:.3f}</td><td>{c.get('p_value_holm', float('nan')):.3f}</td></tr>"
        for c in task["comparisons"]
    )
    if comparisons:
        comparisons = ("<table><tr><th>paired comparison</th><th>ΔAUROC (95% CI)</th><th>p</th><th>p (Holm)</th>"
                       "</tr>" + comparisons + "</table>")
    extras = _few_shot_table(task) + _subgroup_tables(task)
    return f"{title}<p class=muted>{splits}</p>{table}{comparisons}{extras}"


def _few_shot_table(task: dict[str, Any]) -> str:
    """Mean (SD) held-out AUROC over 5 replicates for k positives and k negatives."""
    curves = [(m, m.get("few_shot")) for m in task["models"] if m.get("few_shot")]
    if not curves:
        return ""
    ks = [k for k, v in curves[0][1].items() if v.get("status") == "done"]
    head = "".join(f"<th>k={k}</th>" for k in ks)
    rows = "".join(
        f"<tr><td>{html.escape(m['representation'])}/{html.escape(m['head'])}</td>"
        + "".join(f"<td>{c[k]['auroc_mean']:.3f} <span class=muted>({c[k]['auroc_sd']:.3f})</span></td>"
                  if c.get(k, {}).get("status") == "done" else "<td>–</td>" for k in ks)
        + "</tr>"
        for m, c in curves
    )
    title = "<p>Few-shot: mean (SD) AUROC, k positives + k negatives, 5 replicates</p>"
    return f"{title}<table><tr><th>model</th>{head}</tr>{rows}</table>"


def _subgroup_tables(task: dict[str, Any]) -> str:
    """AUROC with CI per subgroup value, one row per value, one column per model."""
    models = task["models"]
    if not models or "subgroups" not in models[0]:
        return ""
    head = "".join(f"<th>{html.escape(m['representation'])}/{html.escape(m['head'])} AUROC</th>" for m in models)
    parts = []
    for attribute, values in models[0]["subgroups"].items():
        rows = []
        for value, entry in values.items():
            cells = "".join(
                f"<td>{_ci(m['subgroups'][attribute][value].get('metrics', {}), 'auroc')}</td>" for m in models
            )
            rows.append(f"<tr><td>{html.escape(str(value))}</td><td>{entry['n']}</td>"
                        f"<td>{entry['positives']}</td>{cells}</tr>")
        parts.append(f"<table><tr><th>{html.escape(attribute)}</th><th>n</th><th>positives</th>{head}</tr>"
                     + "".join(rows) + "</table>")
    return "<details><summary>subgroups</summary>" + "".join(parts) + "</details>"


def render_report(report: dict[str, Any]) -> str:
    config = report["config"]
    header = (
        f"<h1>ehrpredict benchmark</h1><p>dataset <code>{html.escape(report['dataset']['path'])}</code> "
        f"(fingerprint {report['dataset']['fingerprint']}) · seed {config['seed']} · "
        f"{config['n_boot']} patient-level bootstrap resamples · ehrpredict {report['ehrpredict_version']} · "
        f"{report['seconds']} s</p><p class=muted>Metrics are on the held-out split. Intervals are 95% "
        f"percentile intervals from resampling patients. The label-shuffle control trains the same model on "
        f"permuted training labels: its AUROC should be near 0.5.</p>"
    )
    body = "".join(_task_section(t) for t in report["tasks"])
    return (f"<!doctype html><html><head><meta charset=utf-8><title>ehrpredict benchmark</title>"
            f"<style>{STYLE}</style></head><body>{header}{body}</body></html>\n")
