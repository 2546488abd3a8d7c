"""``ehrpredict fit``: train one model, calibrate it, pick its operating threshold, evaluate it like the
benchmark does, and keep it as a bundle.

1. The task is labeled on the dataset; the featurizer is fitted on the train split and the head
   trained on it, early-stopped/tuned on the tuning split (:func:`~ehrpredict.pipeline.fit_pipeline`).
2. The fitted featurizer and head are taken apart into plain data and rebuilt from it
   (:mod:`ehrpredict.features.portable`, :mod:`ehrpredict.models.portable`): every number below comes
   from the rebuilt model, i.e. from exactly what the bundle holds.
3. Binary tasks: a calibrator, Platt or isotonic chosen by cross-validation inside the tuning split
   (:func:`~ehrpredict.models.calibration.choose_calibrator`), then a threshold on the tuning split's
   calibrated probabilities by the stated rule (``max-youden``, ``sensitivity:X``, ``alert-rate:X``).
   The tuning split has also chosen the head's stopping point, so it is used three times; the
   held-out split is used for nothing but evaluation. Multilabel tasks get per-category thresholds
   (best F1 on tuning); regression tasks neither.
4. Held-out evaluation through the benchmark's evaluators (same report.json/report.html), plus the
   held-out calibration before and after and the metrics at the bundle's operating point.
5. The bundle is written to a staging directory and moved into place when complete.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.bundle.card import model_card
from ehrpredict.bundle.explain import DESCRIPTIONS, importance, training_descriptions
from ehrpredict.bundle.files import (
    CALIBRATION,
    FORMAT,
    FORMAT_VERSION,
    HELD_OUT_PREDICTIONS,
    MANIFEST,
    MODEL_CARD,
    REPORT_DIR,
    TASK_FILE,
    TRAINING_CODES,
    file_hashes,
    staged_bundle,
    write_featurizer,
    write_head,
)
from ehrpredict.bundle.model import Bundle, calibrated, feature_codes, prediction_frame
from ehrpredict.dataset import dataset_fingerprint
from ehrpredict.errors import ConfigError, DataError
from ehrpredict.evaluation import binary_report, choose_threshold, tune_thresholds
from ehrpredict.events.source import EventSource, ParquetEvents, ShardRef
from ehrpredict.executor import Executor, local
from ehrpredict.experiments.benchmark import PACKAGES, environment
from ehrpredict.experiments.config import BenchmarkConfig
from ehrpredict.experiments.evaluate import EVALUATORS
from ehrpredict.experiments.model_results import ModelResult, metrics_to_json
from ehrpredict.experiments.oracle import load_oracle
from ehrpredict.experiments.results import BenchmarkReport, DatasetRef, TaskResult
from ehrpredict.features.portable import featurizer_from_state, featurizer_state
from ehrpredict.ingest.output import write_json
from ehrpredict.models.calibration import CalibrationChoice, choose_calibrator
from ehrpredict.models.portable import head_from_state, head_state
from ehrpredict.pipeline import FittedPipeline, TaskData, fit_pipeline
from ehrpredict.reporting.html import render_report
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

Progress = Callable[[str], None]
THRESHOLD_RULES = ("max-youden", "sensitivity:X", "specificity:X", "alert-rate:X")
BUNDLE_PACKAGES = ("sentence-transformers", "torch")  # a text model's encoder runs on these


@dataclass(frozen=True)
class ThresholdRule:
    """How the operating threshold is chosen on the tuning split's calibrated probabilities.

    >>> ThresholdRule.parse("sensitivity:0.9")
    ThresholdRule(text='sensitivity:0.9', rule='sensitivity', target=0.9)
    >>> ThresholdRule.parse("alert-rate:1.5")
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: expected --threshold alert-rate:X with X in (0, 1], got 'alert-rate:1.5'
    """

    text: str
    rule: str
    target: float | None

    @classmethod
    def parse(cls, text: str) -> ThresholdRule:
        if text == "max-youden":
            return cls(text, "youden", None)
        name, _, value = text.partition(":")
        rules = {"sensitivity": "sensitivity", "specificity": "specificity", "alert-rate": "alert_rate"}
        if name not in rules or not value:
            raise ConfigError(f"expected --threshold as one of {', '.join(THRESHOLD_RULES)}, got {text!r}")
        try:
            target = float(value)
        except ValueError:
            target = float("nan")
        if not 0 < target <= 1:
            raise ConfigError(f"expected --threshold {name}:X with X in (0, 1], got {text!r}")
        return cls(text, rules[name], target)

    def choose(self, y: np.ndarray, p: np.ndarray) -> float:
        return choose_threshold(y, p, self.rule, self.target)  # type: ignore[arg-type]

    def describe(self) -> str:
        if self.rule == "youden":
            return "the highest sensitivity + specificity − 1 on the tuning split (max Youden)"
        if self.rule == "alert_rate":
            return f"the lowest threshold that flags at most {self.target:.0%} of the tuning split's rows"
        return f"the highest threshold with {self.rule} at least {self.target} on the tuning split"


@dataclass(frozen=True)
class FitResult:
    out: Path
    bundle: Bundle
    report: BenchmarkReport
    seconds: float


def _portable(pipeline: FittedPipeline) -> FittedPipeline:
    """The pipeline rebuilt from the plain data a bundle stores (what every later number comes from)."""
    return FittedPipeline(pipeline.task, pipeline.label_type, pipeline.representation, pipeline.head_name,
                          featurizer_from_state(featurizer_state(pipeline.featurizer)),
                          head_from_state(head_state(pipeline.head)), pipeline.target)


def _code_counts(source: EventSource, subjects: pl.Series, shard: ShardRef) -> pl.DataFrame:
    return source.read(shard, [S.SUBJECT_ID, S.CODE], subjects).group_by(S.CODE).len("n_events")


def training_codes(source: EventSource, subjects: pl.Series, executor: Executor | None = None) -> pl.DataFrame:
    """Every code of the training subjects' events with its number of events (what the model has seen)."""
    parts = (executor or local()).map(partial(_code_counts, source, subjects), source.shards())
    frame = pl.concat([pl.DataFrame(schema={S.CODE: pl.String, "n_events": pl.UInt32}), *parts], how="vertical_relaxed")
    return frame.group_by(S.CODE).agg(pl.col("n_events").sum().cast(pl.Int64)).sort(S.CODE)


def _calibration_json(before: Any, after: Any) -> dict[str, Any]:
    keys = ("brier", "ece", "calibration_slope", "calibration_intercept")
    return {name: {k: v for k, v in metrics_to_json(m).items() if k in keys} for name, m in
            (("before", before), ("after", after))}


def fit_bundle(config: BenchmarkConfig, out: Path, threshold: str = "max-youden", name: str | None = None,
               overwrite: bool = False, progress: Progress | None = None, executor: Executor | None = None
               ) -> FitResult:
    """Fit ``config``'s one task × representation × head on ``config.dataset`` and write a bundle to ``out``."""
    say = progress or (lambda message: None)
    start = time.perf_counter()
    if len(config.tasks) != 1 or len(config.representations) != 1 or len(config.heads) != 1:
        raise ConfigError(f"expected one task, one representation and one head to fit, got {config.tasks}, "
                          f"{config.representations}, {config.heads}")
    rule = ThresholdRule.parse(threshold)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        what = "a non-empty directory" if out.is_dir() else "a file"
        raise ConfigError(f"expected a new or empty bundle directory, got {what}: {out} (pass --overwrite to "
                          "replace it)")
    spec = load_task(config.tasks[0])
    representation, head = config.representations[0], config.heads[0]
    if spec.label_type not in EVALUATORS:
        raise ConfigError(f"expected a binary, regression or multilabel task to fit, got {spec.name} "
                          f"({spec.label_type}): "
                          "time-to-event bundles come with the survival heads")
    if spec.label_type == "multilabel" and (representation, head) != ("counts", "lr"):
        raise ConfigError(f"expected --representation counts --head lr for the multilabel task {spec.name}, got "
                          f"{representation}/{head}")
    source = ParquetEvents(Path(config.dataset))
    say(f"labeling {spec.name}")
    labels = label_many(config.dataset, [spec], executor=executor)[spec.name].labels
    data = TaskData.from_splits(source, labels, source.splits(), config.settings(), executor)
    evaluation = EVALUATORS[spec.label_type](spec, data, config)
    reason = evaluation.skip_reason()
    if reason is not None:
        raise DataError(f"expected a task with enough labels in every split to fit {spec.name} on {config.dataset}, "
                        f"got: {reason}")
    say(f"featurizing ({representation}) and training {head}")
    t = time.perf_counter()
    fitted = _portable(fit_pipeline(spec, representation, head, data, seed=config.seed))
    say("evaluating on held_out (bootstrap, label-shuffle control)")
    result: ModelResult = evaluation.evaluate(fitted, started=t)
    oracle = load_oracle(Path(config.dataset))
    task_result = TaskResult(name=spec.name, splits=evaluation.splits(), models=(result,),
                             oracle=None if oracle is None else evaluation.oracle(oracle),
                             seconds=round(time.perf_counter() - t, 1))
    report = BenchmarkReport(
        version=__version__, created_by="ehrpredict fit",
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        dataset=DatasetRef(path=str(config.dataset), fingerprint=dataset_fingerprint(config.dataset)),
        environment=environment((*PACKAGES, *BUNDLE_PACKAGES)), seconds=round(time.perf_counter() - start, 1),
        tasks=(task_result,))

    X_tune, X_test = data.matrix(representation, S.TUNING), data.matrix(representation, S.HELD_OUT)
    held_out = data.parts[S.HELD_OUT]
    groups = held_out.get_column(S.SUBJECT_ID).to_numpy()
    calibration: CalibrationChoice | None = None
    operating: dict[str, Any] = {}
    model_spec: dict[str, Any] = {"representation": representation, "head": head}
    threshold_value: float | None = None
    category_thresholds: np.ndarray | None = None
    if spec.label_type == "binary":
        y_tune = fitted.target.encode(data.parts[S.TUNING])
        y_test = fitted.target.encode(held_out)
        p_tune, p_test = fitted.predict_proba_features(X_tune), fitted.predict_proba_features(X_test)
        calibration = choose_calibrator(y_tune, p_tune, seed=config.seed)
        say(f"calibration: {calibration.reason}")
        cal_tune, cal_test = calibrated(calibration.calibrator, p_tune), calibrated(calibration.calibrator, p_test)
        threshold_value = rule.choose(y_tune, cal_tune)
        before = binary_report(y_test, p_test, groups, threshold_value, n_boot=config.n_boot, seed=config.seed)
        after = binary_report(y_test, cal_test, groups, threshold_value, n_boot=config.n_boot, seed=config.seed)
        operating = {
            "threshold": threshold_value, "rule": rule.text, "rule_description": rule.describe(),
            "tuning": {"sensitivity": float(np.mean(cal_tune[y_tune == 1] >= threshold_value)),
                       "specificity": float(np.mean(cal_tune[y_tune == 0] < threshold_value)),
                       "alerts_per_100": float(100 * np.mean(cal_tune >= threshold_value))},
            "held_out": metrics_to_json(after),
            "held_out_alerts_per_100": float(100 * np.mean(cal_test >= threshold_value)),
            "held_out_calibration": _calibration_json(before, after),
        }
    elif spec.label_type == "multilabel":
        Y_tune = fitted.target.encode(data.parts[S.TUNING])
        category_thresholds = tune_thresholds(Y_tune, fitted.predict_proba_features(X_tune))
        model_spec["categories"] = list(getattr(fitted.target, "categories_", ()))
        model_spec["category_thresholds"] = [float(v) for v in category_thresholds]

    bundle = Bundle(manifest={}, task=spec, pipeline=fitted,
                    calibrator=None if calibration is None else calibration.calibrator, threshold=threshold_value,
                    category_thresholds=category_thresholds, training_codes=pl.DataFrame(), path=None)
    held_out_frame = prediction_frame(bundle, held_out, bundle.score_features(X_test), with_uncalibrated=True)
    say("counting the training subjects' codes")
    train_subjects = data.parts[S.TRAIN].get_column(S.SUBJECT_ID).unique()
    codes = training_codes(source, train_subjects, executor)
    bundle.training_codes = codes
    descriptions = training_descriptions(source, feature_codes(fitted.featurizer))
    say("global importance (mean |contribution| on held_out)")
    ranked = importance(bundle, X_test, source)

    name = name or f"{spec.name}.{representation}.{head}"
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "ehrpredict_version": __version__,
        "task": {"name": spec.name, "label_type": spec.label_type, "description": spec.description,
                 "anchor": spec.anchor, "offset_hours": spec.offset.total_seconds() / 3600, "file": TASK_FILE},
        "model": model_spec,
        "representation": {"name": representation, "settings": _settings_json(config),
                           "featurizer": fitted.featurizer.describe(),
                           "n_features": int(X_test.shape[1])},
        "head": {"name": head, "seed": config.seed},
        "training_data": {"path": str(Path(config.dataset).absolute()), "fingerprint": report.dataset.fingerprint,
                          "splits": {k: asdict(v) for k, v in task_result.splits.items()},
                          "training_codes": codes.height, "training_events": int(codes.get_column("n_events").sum())},
        "metrics": {"held_out": result.to_json()},
        "calibration": None if calibration is None else calibration.to_json(),
        "operating_point": operating or None,
        "global_importance": ranked,
        "environment": report.environment,
    }
    text = _text_part(fitted)
    if text is not None:
        manifest["text"] = {"serializer_version": text["serializer_version"], "encoder_identity": text["encoder"],
                            "encoder_label": text["encoder_label"]}
    say(f"writing the bundle to {out}")
    with staged_bundle(out, overwrite) as staging:
        (staging / TASK_FILE).write_text(Path(spec.source).read_text())
        write_featurizer(staging, featurizer_state(fitted.featurizer))
        write_head(staging, head_state(fitted.head))
        if calibration is not None:
            write_json(staging / CALIBRATION, {**calibration.to_json(), "threshold": {
                "value": threshold_value, "rule": rule.text, "description": rule.describe()}})
        (staging / TRAINING_CODES).parent.mkdir(parents=True, exist_ok=True)
        codes.write_parquet(staging / TRAINING_CODES)
        descriptions.write_parquet(staging / DESCRIPTIONS)
        (staging / REPORT_DIR).mkdir()
        held_out_frame.write_parquet(staging / HELD_OUT_PREDICTIONS)
        write_json(staging / REPORT_DIR / "report.json", {**report.to_json(), "bundle": {
            "operating_point": operating or None, "calibration": manifest["calibration"]}})
        (staging / REPORT_DIR / "report.html").write_text(
            render_report(report, title=f"ehrpredict fit: {name}", extra_html=_fit_html(manifest)))
        (staging / MODEL_CARD).write_text(model_card(manifest, result))
        manifest["files"] = file_hashes(staging)
        manifest["model_version"] = hashlib.sha256(
            # the model's own files: not the report or the card, which carry timings and the creation time
            "".join(f"{k}={v}\n" for k, v in sorted(manifest["files"].items())
                    if not k.startswith(REPORT_DIR) and k != MODEL_CARD)
            .encode()).hexdigest()[:12]
        write_json(staging / MANIFEST, manifest)
    bundle.manifest, bundle.path = manifest, out
    return FitResult(out=out, bundle=bundle, report=report, seconds=round(time.perf_counter() - start, 1))


def _text_part(pipeline: FittedPipeline) -> dict[str, Any] | None:
    """The text featurizer's description (a text or counts+text model), else None."""
    described = pipeline.featurizer.describe()
    if "encoder" in described:
        return described
    text = described.get("text")
    return text if isinstance(text, dict) else None


def _settings_json(config: BenchmarkConfig) -> dict[str, Any]:
    settings = asdict(config.settings())
    settings.pop("cache_dir", None)  # where this machine caches embeddings, not part of the model
    return settings


def _fit_html(manifest: dict[str, Any]) -> str:
    """The bundle's calibration and operating point, as HTML for the fit report."""
    ranked = manifest.get("global_importance") or []
    importance_html = "" if not ranked else (
        "<h2>What drives the predictions</h2><p class=muted>Mean absolute contribution to the score (log-odds for "
        "a binary task) over the held-out rows: TreeSHAP for LightGBM, coefficient × value for a linear head.</p>"
        "<table><tr><th>feature</th><th>mean |contribution|</th><th>rows with a value</th></tr>"
        + "".join(f"<tr><td class=text>{escape(r['factor'])}</td><td>{r['mean_abs_contribution']:.4f}</td>"
                  f"<td>{r['rows_with_value']}</td></tr>" for r in ranked) + "</table>")
    op = manifest.get("operating_point")
    if not op:
        return importance_html
    cal = manifest["calibration"]
    rows = "".join(
        f"<tr><td>{escape(k)}</td><td>{_ci(v)}</td><td>{_ci(op['held_out_calibration']['after'][k])}</td></tr>"
        for k, v in op["held_out_calibration"]["before"].items())
    held = op["held_out"]
    return (f"<h2>Calibration and operating point</h2><p>{escape(cal['reason'])}.</p>"
            f"<table><tr><th>held-out</th><th>before calibration</th><th>after</th></tr>{rows}</table>"
            f"<p>Threshold {op['threshold']:.4f} on the calibrated probability: {escape(op['rule_description'])}. "
            f"On held_out: sensitivity {_ci(held['sensitivity'])}, specificity {_ci(held['specificity'])}, PPV "
            f"{_ci(held['ppv'])}, {op['held_out_alerts_per_100']:.1f} alerts per 100 patients.</p>{importance_html}")


def _ci(estimate: dict[str, Any]) -> str:
    value, low, high = estimate.get("value"), estimate.get("ci_low"), estimate.get("ci_high")
    if value is None:
        return "n/a"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} ({low:.3f}–{high:.3f})"
