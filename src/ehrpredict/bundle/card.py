"""``MODEL_CARD.md``: what a bundle is for, what it was trained on, how well it does and where it may fail.

Written from the manifest and the held-out evaluation, so every figure in the card is one the bundle
also holds as data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ehrpredict.evaluation.bootstrap import Estimate
from ehrpredict.experiments.model_results import (
    BinaryModelResult,
    ModelResult,
    MultilabelModelResult,
    RegressionModelResult,
)


def _est(e: Estimate | Mapping[str, Any] | None) -> str:
    if e is None:
        return "n/a"
    value, low, high = ((e.value, e.ci_low, e.ci_high) if isinstance(e, Estimate)
                        else (e.get("value"), e.get("ci_low"), e.get("ci_high")))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def _binary_sections(manifest: Mapping[str, Any], result: BinaryModelResult) -> list[str]:
    m = result.metrics
    op = manifest["operating_point"]
    held = op["held_out"]
    cal = manifest["calibration"]
    lines = ["## Performance on the held-out split", "",
             f"{m.n:,} predictions for {m.n_patients:,} patients, prevalence {m.prevalence:.3f}. Intervals are 95% "
             f"percentile intervals from {m.n_boot} patient-level bootstrap resamples.", "",
             "| metric | value (95% CI) |", "|---|---|",
             f"| AUROC | {_est(m.auroc)} |", f"| AUPRC | {_est(m.auprc)} |",
             f"| Brier (calibrated) | {_est(held['brier'])} |", "",
             "## Operating point", "",
             f"Threshold **{op['threshold']:.4f}** on the calibrated probability, chosen as "
             f"{op['rule_description']} (`--threshold {op['rule']}`). On the tuning split it flags "
             f"{op['tuning']['alerts_per_100']:.1f} per 100 rows with sensitivity {op['tuning']['sensitivity']:.3f}.",
             "", "| held-out at the threshold | value (95% CI) |", "|---|---|",
             f"| sensitivity | {_est(held['sensitivity'])} |", f"| specificity | {_est(held['specificity'])} |",
             f"| PPV | {_est(held['ppv'])} |", f"| NPV | {_est(held['npv'])} |",
             f"| alerts per 100 patients | {op['held_out_alerts_per_100']:.1f} |", "",
             "## Calibration", "", f"{cal['reason']}. Fitted on the tuning split ({cal['n']:,} rows, "
             f"{cal['positives']:,} positives); evaluated on held_out:", "",
             "| held-out | before calibration | after |", "|---|---|---|"]
    before, after = op["held_out_calibration"]["before"], op["held_out_calibration"]["after"]
    names = {"brier": "Brier score", "ece": "ECE (10 bins)", "calibration_slope": "calibration slope (1 is ideal)",
             "calibration_intercept": "calibration intercept (0 is ideal)"}
    lines += [f"| {names[k]} | {_est(before[k])} | {_est(after[k])} |" for k in names]
    lines += ["", "## Subgroups (held-out)", "", "| attribute | group | n | positives | AUROC (95% CI) |",
              "|---|---|---|---|---|"]
    for attribute, table in result.subgroups.items():
        for value, sub in table.items():
            auroc = _est(sub.metrics.auroc) if sub.metrics is not None else sub.status
            lines.append(f"| {attribute} | {value} | {sub.n} | {sub.positives} | {auroc} |")
    control = result.label_shuffle_control.scores["auroc"]
    lines += ["", "## Leakage controls", "",
              f"- Label-shuffle control: the same model trained on permuted training labels "
              f"({result.label_shuffle_control.permutations} permutations) reaches held-out AUROC "
              f"{control.value:.3f} (range {control.min:.3f}–{control.max:.3f}); near 0.5 is what a model that "
              f"learns nothing from the features' link to the outcome should get: "
              f"**{'passed' if abs(control.value - 0.5) < 0.1 else 'NOT passed: investigate before use'}**."]
    return lines


def _regression_sections(result: RegressionModelResult) -> list[str]:
    m = result.metrics
    r2 = result.label_shuffle_control.scores["r2"]
    return ["## Performance on the held-out split", "", f"{m.n:,} predictions for {m.n_patients:,} patients "
            f"(mean true value {m.mean:.3f}); 95% patient-level bootstrap intervals.", "",
            "| metric | value (95% CI) |", "|---|---|", f"| MAE | {_est(m.mae)} |", f"| RMSE | {_est(m.rmse)} |",
            f"| R² | {_est(m.r2)} |", "", "## Leakage controls", "",
            f"- Label-shuffle control: R² {r2.value:.3f} on held_out when trained on permuted labels "
            f"(near or below 0 expected): **{'passed' if r2.value < 0.05 else 'NOT passed: investigate before use'}**."]


def _multilabel_sections(result: MultilabelModelResult) -> list[str]:
    m = result.metrics
    return ["## Performance on the held-out split", "", f"{result.categories} categories with at least 5 training "
            f"cases; per-category thresholds maximise F1 on the tuning split.", "", "| metric | value |", "|---|---|",
            f"| micro-F1 | {m.micro_f1:.3f} |", f"| macro-F1 | {m.macro_f1:.3f} |",
            f"| precision@{m.k} | {m.precision_at_k:.3f} |",
            f"| mean average precision | {m.mean_average_precision:.3f} |"]


def model_card(manifest: Mapping[str, Any], result: ModelResult) -> str:
    task, data = manifest["task"], manifest["training_data"]
    rep = manifest["representation"]
    settings = rep["settings"]
    splits = ", ".join(f"{name} {s.get('n', 0):,}" for name, s in data["splits"].items())
    lines = [f"# Model card: {manifest['name']}", "",
             f"ehrpredict {manifest['ehrpredict_version']} · bundle format {manifest['format_version']} · "
             f"created {manifest['created']}", "",
             "## Intended use", "",
             f"Predicts **{task['name']}** ({task['label_type']}): {task['description'].rstrip('.')}. "
             "The prediction time is "
             f"the task's anchor `{task['anchor']}` plus {task['offset_hours']:g} h; the model reads only events "
             "recorded at or before it. For research and for decision support reviewed by clinicians, on "
             "patients like the training cohort below; not validated for autonomous decisions.", "",
             "## Training data and cohort", "",
             f"- Dataset `{data['path']}` (content fingerprint `{data['fingerprint']}`), label rows by split: "
             f"{splits}.",
             "- The task's cohort and exclusions are in `task.yaml`; the featurizer was fitted on the train split, the "
             "head early-stopped/tuned and the calibrator and threshold chosen on the tuning split; held_out was "
             "used only for the figures below.",
             f"- Representation `{rep['name']}` ({rep['n_features']:,} features), head `{manifest['head']['name']}`, "
             f"seed {manifest['head']['seed']}; billing codes usable {settings['coding_delay']} after discharge.", ""]
    if isinstance(result, BinaryModelResult):
        lines += _binary_sections(manifest, result)
    elif isinstance(result, RegressionModelResult):
        lines += _regression_sections(result)
    elif isinstance(result, MultilabelModelResult):
        lines += _multilabel_sections(result)
    if "## Leakage controls" not in lines:
        lines += ["", "## Leakage controls", ""]
    ranked = manifest.get("global_importance") or []
    if ranked:
        at = lines.index("## Leakage controls")
        lines[at:at] = ["## What drives the predictions", "", "Mean absolute contribution over held-out rows "
                        "(TreeSHAP for LightGBM, coefficient × value for a linear head):", "",
                        "| feature | mean abs. contribution |", "|---|---|",
                        *[f"| {r['factor']} | {r['mean_abs_contribution']:.4f} |" for r in ranked[:10]], ""]
    lines += ["- Features use only events at or before the prediction time (one cutoff shared by every "
              "representation, checked by property tests); diagnosis and procedure codes count only after "
              f"the coding delay ({settings['coding_delay']}).", "",
              "## Limitations", "",
              "- Evaluated on one dataset's held-out patients: performance on another hospital, period or coding "
              "practice is unknown until measured there (`ehrpredict predict` reports codes it has never seen).",
              "- The tuning split chose the stopping point, the calibrator and the threshold; with few tuning "
              "positives these choices are noisy.",
              "- Subgroups with fewer than 30 rows or a single class are listed without metrics.",
              "- Associations, not causes: a factor that raises the risk is not a reason to intervene on it.", ""]
    return "\n".join(lines)
