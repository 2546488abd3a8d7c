"""`ehrpredict benchmark`: labels → features → heads → evaluation, for every task × representation × head.

Writes ``RUN_DIR/report.json`` (metrics with patient-level bootstrap CIs, paired ΔAUROC with Holm
correction, a label-shuffle control, the oracle's AUROC on synthetic data, n and prevalence per split,
timings, and what makes the run reproducible) and ``RUN_DIR/report.html`` (self-contained).

Representations: ``counts`` (windowed code counts and value aggregates), ``text`` (the serialized
timeline embedded by a text encoder) and ``counts+text`` (both, concatenated). Binary tasks get every
representation × head (lr, lgbm) with subgroup tables (sex, age band, race/ethnicity, insurance) and,
with ``few_shot``, the EHRSHOT few-shot protocol; regression tasks get ridge / LightGBM regressors
(MAE, RMSE, R²); multilabel tasks a one-vs-rest logistic regression on counts. Other label types
(time-to-event) are listed in the report as skipped, with the reason.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.dataset import dataset_fingerprint
from ehrpredict.errors import ConfigError
from ehrpredict.evaluation import auroc, binary_report, choose_threshold, holm, paired_delta_auroc
from ehrpredict.evaluation.curves import binary_curves
from ehrpredict.evaluation.multilabel import multilabel_report, tune_thresholds
from ehrpredict.evaluation.regression import regression_report
from ehrpredict.evaluation.subgroups import subgroups
from ehrpredict.events.cutoff import DEFAULT_CODING_DELAY
from ehrpredict.experiments.results import BenchmarkReport
from ehrpredict.features.counts import CountsFeaturizer
from ehrpredict.ingest.output import write_json
from ehrpredict.models.heads import HEADS, make_head, make_regressor
from ehrpredict.models.multilabel import make_multilabel_head
from ehrpredict.models.preprocess import log1p as log1p_counts
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import TaskSpec, load_library, load_task, parse_duration

REPRESENTATIONS = ("counts", "text", "counts+text")
TEXT_FORMATS = ("markdown", "recent_codes")
# Built-in task -> outcome name in a synthetic hospital's oracle file.
ORACLE_OUTCOMES = {
    "mortality_in_hospital_24h": "in_hospital_death", "mortality_in_hospital_48h": "in_hospital_death",
    "long_los_7d": "long_los_7d", "icu_transfer_24h": "icu_transfer", "readmission_30d": "readmission_30d",
    "mortality_1y_after_discharge": "death_365d_after_discharge",
    **{t: t for t in ("hyperkalemia_48h", "hypoglycemia_48h", "hyponatremia_48h", "thrombocytopenia_48h",
                      "anemia_48h", "aki_48h", "ed_hospitalization", "ed_critical_outcome", "ed_revisit_72h",
                      "new_hypertension_1y", "new_hyperlipidemia_1y", "new_chronic_kidney_disease_1y",
                      "new_heart_failure_1y", "new_type2_diabetes_1y")},
}
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchmarkConfig:
    dataset: Path
    out: Path
    tasks: tuple[str, ...] = ("all",)
    representations: tuple[str, ...] = ("counts",)
    heads: tuple[str, ...] = ("lgbm", "lr")
    n_boot: int = 1000
    seed: int = 0
    min_count: int = 5
    few_shot: bool = False
    shuffle_permutations: int = 5  # label-shuffle control replicates
    # Billing codes are usable by features this long after their time (discharge); "0" is the
    # optimistic setting where a stay's codes are known the moment it ends. See events/cutoff.py.
    coding_delay: str = DEFAULT_CODING_DELAY
    # text representation
    text_format: str = "markdown"
    text_max_tokens: int | None = None  # None: sized to the encoder
    include_notes: bool = True
    encoder: str = "sentence-transformers"  # or "openai"
    encoder_model: str = "all-MiniLM-L6-v2"
    encoder_url: str | None = None
    encoder_instruction: str = ""
    cache_dir: Path | None = None  # None: $EHRPREDICT_CACHE/embeddings or ~/.cache/ehrpredict/embeddings

    def __post_init__(self) -> None:
        if self.text_format not in TEXT_FORMATS:
            raise ConfigError(f"expected --text-format in {list(TEXT_FORMATS)}, got {self.text_format!r}")
        unknown = [r for r in self.representations if r not in REPRESENTATIONS]
        if unknown:
            raise ConfigError(f"expected representations from {list(REPRESENTATIONS)}, got {unknown}")
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown:
            raise ConfigError(f"expected heads from {list(HEADS)}, got {unknown}")
        if self.shuffle_permutations < 1:
            raise ConfigError(f"expected --shuffle-permutations >= 1, got {self.shuffle_permutations}")
        if self.n_boot < 10:
            raise ConfigError(f"expected --bootstrap >= 10, got {self.n_boot}")
        parse_duration(self.coding_delay, "--coding-delay")


@dataclass
class _TaskOutcome:
    task: str
    status: str = "done"
    reason: str = ""
    splits: dict[str, dict[str, float]] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    oracle: dict[str, Any] | None = None
    seconds: float = 0.0


def _specs(names: tuple[str, ...]) -> list[TaskSpec]:
    if names == ("all",):
        return load_library()
    return [load_task(n) for n in names]


class _Progress:
    """Numbered progress lines with elapsed time: ``[3/12 12.4 s] readmission_30d counts/lgbm: ...``."""

    def __init__(self, say: Progress, total: int) -> None:
        self.say, self.total, self.done, self.start = say, total, 0, time.perf_counter()

    def step(self, message: str) -> None:
        self.done += 1
        self.note(message)

    def note(self, message: str) -> None:
        self.say(f"[{self.done}/{self.total} {time.perf_counter() - self.start:.1f} s] {message}")


def _steps(specs: list[TaskSpec], config: BenchmarkConfig) -> int:
    per_model = len(config.representations) * len(config.heads)
    return sum(1 if s.label_type == "multilabel" else per_model for s in specs)


def run_benchmark(config: BenchmarkConfig, progress: Progress | None = None) -> BenchmarkReport:
    """Run the benchmark and write the report files; returns the report."""
    start = time.perf_counter()
    specs = _specs(config.tasks)
    bar = _Progress(progress or (lambda message: None), _steps(specs, config))
    bar.note(f"labeling {len(specs)} task(s)")
    labeled = label_many(config.dataset, specs)
    splits = pl.read_parquet(Path(config.dataset) / S.SPLITS_FILE)
    oracle = _oracle(Path(config.dataset))
    outcomes = []
    for spec in specs:
        outcomes.append(_run_task(spec, labeled[spec.name].labels, splits, oracle, config, bar))
    _holm_adjust(outcomes)
    report = {
        "ehrpredict_version": __version__,
        "created_by": "ehrpredict benchmark",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "dataset": {"path": str(config.dataset), "fingerprint": dataset_fingerprint(config.dataset)},
        "environment": _environment(),
        "seconds": round(time.perf_counter() - start, 1),
        "tasks": [asdict(o) for o in outcomes],
    }
    typed = BenchmarkReport.from_json(report)
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / "report.json", typed.to_json())
    from ehrpredict.reporting.html import render_report

    html = config.out / "report.html"
    tmp = html.with_name(".report.html.tmp")
    tmp.write_text(render_report(typed))
    tmp.replace(html)
    return typed


def _text_featurizer(config: BenchmarkConfig) -> Any:
    from ehrpredict.features.text import TextFeaturizer
    from ehrpredict.text.encoders import EncoderConfig
    from ehrpredict.text.serialize import SerializerConfig

    return TextFeaturizer(
        config.dataset,
        serializer=SerializerConfig(format=config.text_format, include_notes=config.include_notes,
                                    coding_delay=config.coding_delay),
        encoder=EncoderConfig(kind=config.encoder, model=config.encoder_model, url=config.encoder_url,
                              instruction=config.encoder_instruction),
        max_tokens=config.text_max_tokens, cache_dir=config.cache_dir,
    )


class _Features:
    """Feature matrices of one task's splits per representation; text is embedded once per task.

    Returns ``(X by split, log1p, info)``: ``log1p`` tells the linear heads whether the matrix holds
    raw counts (counts) or already-transformed values (embeddings; counts+text log-transforms its
    counts block before concatenating)."""

    def __init__(self, parts: dict[str, pl.DataFrame], config: BenchmarkConfig) -> None:
        self.parts, self.config = parts, config
        self._counts: tuple[dict[str, Any], dict[str, Any]] | None = None
        self._text: tuple[dict[str, Any], dict[str, Any]] | None = None

    def counts(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._counts is None:
            t = time.perf_counter()
            featurizer = CountsFeaturizer(self.config.dataset, min_count=self.config.min_count,
                                          coding_delay=self.config.coding_delay).fit(self.parts[S.TRAIN])
            X = {name: featurizer.transform(part) for name, part in self.parts.items()}
            self._counts = X, {"n_features": int(X[S.TRAIN].shape[1]), "seconds": round(time.perf_counter() - t, 2)}
        return self._counts

    def text(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._text is None:
            t = time.perf_counter()
            featurizer = _text_featurizer(self.config).fit(self.parts[S.TRAIN])
            X = {name: featurizer.transform(part) for name, part in self.parts.items()}
            info = {"n_features": int(X[S.TRAIN].shape[1]), "seconds": round(time.perf_counter() - t, 2),
                    "text": featurizer.describe()}
            self._text = X, info
        return self._text

    def get(self, representation: str) -> tuple[dict[str, Any], bool, dict[str, Any]]:
        if representation == "counts":
            X, info = self.counts()
            return X, True, info
        if representation == "text":
            X, info = self.text()
            return X, False, info
        (Xc, counts_info), (Xt, text_info) = self.counts(), self.text()
        X = {name: sp.hstack([log1p_counts(Xc[name]), sp.csr_matrix(Xt[name])]).tocsr() for name in Xc}
        info = {"n_features": int(X[S.TRAIN].shape[1]), "seconds": counts_info["seconds"] + text_info["seconds"],
                "text": text_info["text"]}
        return X, False, info


def _split_parts(labels: pl.DataFrame, splits: pl.DataFrame) -> dict[str, pl.DataFrame]:
    frame = labels.join(splits, on=S.SUBJECT_ID, how="inner")
    return {s: frame.filter(pl.col(S.SPLIT) == s) for s in S.SPLITS}


def _run_task(spec: TaskSpec, labels: pl.DataFrame, splits: pl.DataFrame, oracle: pl.DataFrame | None,
              config: BenchmarkConfig, bar: _Progress) -> _TaskOutcome:
    outcome = _TaskOutcome(spec.name)
    start = time.perf_counter()
    if spec.label_type == "multilabel":
        bar.step(f"{spec.name}: counts/lr one-vs-rest")
        return _run_multilabel(spec, labels, splits, config, outcome, start)
    if spec.label_type == "regression":
        return _run_regression(spec, labels, splits, config, outcome, start, bar)
    if spec.label_type != "binary":
        outcome.status, outcome.reason = "skipped", f"{spec.label_type} tasks are not benchmarked yet"
        bar.note(f"{spec.name}: skipped ({outcome.reason})")
        return outcome
    parts = _split_parts(labels, splits)
    for name, part in parts.items():
        flags = part.get_column(S.BOOLEAN_VALUE).cast(pl.Float64).to_numpy()
        prevalence = round(float(flags.mean()), 4) if part.height else 0.0
        outcome.splits[name] = {"n": part.height, "positives": int(flags.sum()), "prevalence": prevalence}
    for name, part in parts.items():
        if part.height == 0 or part.get_column(S.BOOLEAN_VALUE).n_unique() < 2:
            outcome.status, outcome.reason = "skipped", f"the {name} split has {part.height} labels, not both classes"
            bar.note(f"{spec.name}: skipped ({outcome.reason})")
            outcome.seconds = round(time.perf_counter() - start, 1)
            return outcome
    predictions: dict[str, np.ndarray] = {}
    held_out = parts[S.HELD_OUT]
    y = {name: part.get_column(S.BOOLEAN_VALUE).to_numpy().astype(int) for name, part in parts.items()}
    y_test = y[S.HELD_OUT]
    groups = held_out.get_column(S.SUBJECT_ID).to_numpy()
    attributes = subgroups(config.dataset, held_out)
    features = _Features(parts, config)
    for representation in config.representations:
        bar.note(f"{spec.name}: featurizing ({representation})")
        X, log1p, info = features.get(representation)
        for head in config.heads:
            bar.step(f"{spec.name} {representation}/{head}: training and evaluating")
            t = time.perf_counter()
            model = make_head(head, config.seed, log1p).fit(X[S.TRAIN], y[S.TRAIN], X_val=X[S.TUNING],
                                                            y_val=y[S.TUNING])
            p_tune = model.predict_proba(X[S.TUNING])[:, 1]
            p_test = model.predict_proba(X[S.HELD_OUT])[:, 1]
            threshold = choose_threshold(y[S.TUNING], p_tune)
            metrics = binary_report(y_test, p_test, groups, threshold, n_boot=config.n_boot, seed=config.seed)
            control = _shuffle_control(partial(_control_head, model, head, config, log1p), X, y, True,
                                       {"auroc": lambda p: auroc(y_test, p)}, config)
            predictions[f"{representation}/{head}"] = p_test
            outcome.models.append({
                "representation": representation, "head": head, "n_features": info["n_features"],
                "metrics": _as_json(metrics), "label_shuffle_control": control,
                "curves": binary_curves(y_test, p_test),
                "subgroups": _subgroup_metrics(y_test, p_test, groups, threshold, attributes, config),
                "few_shot": _few_shot(head, log1p, X, y, y_test, config) if config.few_shot else None,
                "featurize_seconds": info["seconds"], "text": info.get("text"),
                "seconds": round(time.perf_counter() - t, 2),
            })
    keys = sorted(predictions)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            paired = paired_delta_auroc(y_test, predictions[a], predictions[b], groups,
                                        n_boot=config.n_boot, seed=config.seed)
            outcome.comparisons.append({"a": a, "b": b, "delta_auroc": paired.delta,
                                        "ci": [paired.ci_low, paired.ci_high], "p_value": paired.p_value,
                                        "n_boot": paired.n_boot})
    if oracle is not None and spec.name in ORACLE_OUTCOMES:
        outcome.oracle = _oracle_auroc(spec, oracle, held_out, config)
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


def _run_regression(spec: TaskSpec, labels: pl.DataFrame, splits: pl.DataFrame, config: BenchmarkConfig,
                    outcome: _TaskOutcome, start: float, bar: _Progress) -> _TaskOutcome:
    """Ridge (``lr``) and LightGBM (``lgbm``) regressors; MAE, RMSE and R² with bootstrap CIs, beside a
    label-shuffle control whose R² should be near (or below) 0."""
    parts = _split_parts(labels, splits)
    for name, part in parts.items():
        values = part.get_column(S.FLOAT_VALUE).cast(pl.Float64)
        outcome.splits[name] = {"n": part.height, "mean": round(float(values.mean() or 0.0), 4),  # type: ignore[arg-type]
                                "sd": round(float(values.std() or 0.0), 4)}  # type: ignore[arg-type]
    if any(part.height < 2 for part in parts.values()):
        outcome.status, outcome.reason = "skipped", "a split has fewer than 2 labels"
        bar.note(f"{spec.name}: skipped ({outcome.reason})")
        return outcome
    y = {name: part.get_column(S.FLOAT_VALUE).cast(pl.Float64).to_numpy() for name, part in parts.items()}
    groups = parts[S.HELD_OUT].get_column(S.SUBJECT_ID).to_numpy()
    features = _Features(parts, config)
    for representation in config.representations:
        bar.note(f"{spec.name}: featurizing ({representation})")
        X, log1p, info = features.get(representation)
        for head in config.heads:
            bar.step(f"{spec.name} {representation}/{head}: training and evaluating (regression)")
            t = time.perf_counter()
            model = make_regressor(head, config.seed, log1p).fit(X[S.TRAIN], y[S.TRAIN], X_val=X[S.TUNING],
                                                                 y_val=y[S.TUNING])
            metrics = regression_report(y[S.HELD_OUT], model.predict(X[S.HELD_OUT]), groups, config.n_boot,
                                        config.seed)
            control = _shuffle_control(partial(make_regressor, head, config.seed, log1p), X, y, False,
                                       {"r2": lambda p: _r2(y[S.HELD_OUT], p),
                                        "mae": lambda p: float(np.mean(np.abs(p - y[S.HELD_OUT])))}, config)
            outcome.models.append({
                "representation": representation, "head": head, "n_features": info["n_features"],
                "regression_metrics": _as_json(metrics), "label_shuffle_control": control,
                "featurize_seconds": info["seconds"], "text": info.get("text"),
                "seconds": round(time.perf_counter() - t, 2),
            })
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    variance = float(np.var(y))
    return 1 - float(np.mean((p - y) ** 2)) / variance if variance > 0 else float("nan")


def _control_head(model: Any, head: str, config: BenchmarkConfig, log1p: bool) -> Any:
    """The control's head: for ``lr`` the strength the real model chose (tuning a random model's
    strength would only add cost); LightGBM keeps its early stopping."""
    control = make_head(head, config.seed, log1p)
    return control.set_params(head__c_grid=(model["head"].C_,)) if head == "lr" else control


def _shuffle_control(make: Callable[[], Any], X: dict[str, Any], y: dict[str, np.ndarray], proba: bool,
                     scores: dict[str, Callable[[np.ndarray], float]], config: BenchmarkConfig) -> dict[str, Any]:
    """The same model trained on permuted training labels, ``config.shuffle_permutations`` times.

    One permutation is not enough: a model fit to random labels still has a random direction in
    feature space, and when features share a dominant axis (sicker patients have more of everything)
    its held-out AUROC swings far from 0.5 either way (measured 0.24-0.79 over five permutations on
    the synthetic mortality task). Leakage shows as a *mean* well above chance; the spread says how
    much one permutation can mislead."""
    replicates: dict[str, list[float]] = {name: [] for name in scores}
    for i in range(config.shuffle_permutations):
        shuffled = np.random.default_rng([config.seed, i]).permutation(y[S.TRAIN])
        model = make().fit(X[S.TRAIN], shuffled, X_val=X[S.TUNING], y_val=y[S.TUNING])
        predicted = model.predict_proba(X[S.HELD_OUT])[:, 1] if proba else model.predict(X[S.HELD_OUT])
        for name, score in scores.items():
            replicates[name].append(float(score(predicted)))
    return {"permutations": config.shuffle_permutations, **{
        name: {"value": float(np.mean(v)), "sd": float(np.std(v)), "min": float(np.min(v)), "max": float(np.max(v)),
               "replicates": v} for name, v in replicates.items()}}


MIN_LABEL_POSITIVES = 5  # multilabel: categories with fewer train positives get no classifier


def _run_multilabel(spec: TaskSpec, labels: pl.DataFrame, splits: pl.DataFrame, config: BenchmarkConfig,
                    outcome: _TaskOutcome, start: float) -> _TaskOutcome:
    """One-vs-rest logistic regression per category seen at least 5 times in train; thresholds tuned
    per category on the tuning split; micro/macro-F1 (macro over categories present), P@5, mAP."""
    frame = labels.join(splits, on=S.SUBJECT_ID, how="inner").with_columns(
        pl.col(S.CATEGORICAL_VALUE).str.split("|").alias("_categories")
    )
    parts = {s: frame.filter(pl.col(S.SPLIT) == s) for s in S.SPLITS}
    counts = parts[S.TRAIN].get_column("_categories").explode(empty_as_null=True).value_counts()
    vocab = sorted(counts.filter(pl.col("count") >= MIN_LABEL_POSITIVES).get_column("_categories").to_list())
    for name, part in parts.items():
        outcome.splits[name] = {"n": part.height, "categories": len(vocab), "prevalence": 0.0}
    if len(vocab) < 2 or any(part.height == 0 for part in parts.values()):
        outcome.status, outcome.reason = "skipped", f"{len(vocab)} categories with >= {MIN_LABEL_POSITIVES} train cases"
        return outcome
    index = {c: i for i, c in enumerate(vocab)}

    def matrix(part: pl.DataFrame) -> np.ndarray:
        Y = np.zeros((part.height, len(vocab)), dtype=int)
        for row, categories in enumerate(part.get_column("_categories").to_list()):
            for category in categories:
                if category in index:
                    Y[row, index[category]] = 1
        return Y

    featurizer = CountsFeaturizer(config.dataset, min_count=config.min_count,
                                  coding_delay=config.coding_delay).fit(parts[S.TRAIN])
    X = {n: featurizer.transform(p) for n, p in parts.items()}
    Y = {n: matrix(p) for n, p in parts.items()}
    model = make_multilabel_head(config.seed).fit(X[S.TRAIN], Y[S.TRAIN])
    P = {n: model.predict_proba(X[n]) for n in (S.TUNING, S.HELD_OUT)}
    thresholds = tune_thresholds(Y[S.TUNING], P[S.TUNING])
    metrics = multilabel_report(Y[S.HELD_OUT], P[S.HELD_OUT], thresholds)
    payload = _as_json(metrics)
    payload.pop("per_label_f1", None)
    payload["labels_present"] = len(payload["labels_present"])
    outcome.models.append({"representation": "counts", "head": "lr (one-vs-rest)",
                           "n_features": int(X[S.TRAIN].shape[1]), "multilabel_metrics": payload,
                           "categories": len(vocab)})
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


FEW_SHOT_K = (1, 2, 4, 8, 16, 32, 64, 128)
FEW_SHOT_REPLICATES = 5


def _sample(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray | None:
    """Indices of k positives and k negatives, or None when the split has fewer than k of either."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) < k or len(neg) < k:
        return None
    return np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)])


def _few_shot(head: str, log1p: bool, X: dict[str, Any], y: dict[str, np.ndarray], y_test: np.ndarray,
              config: BenchmarkConfig) -> dict[str, Any]:
    """EHRSHOT protocol: k positives and k negatives for training and as many for tuning, 5 seeded
    replicates per k, always tested on the whole held-out split. Features come from the full train
    split's vocabulary (which uses no labels)."""
    curve: dict[str, Any] = {}
    for k in FEW_SHOT_K:
        aurocs = []
        for replicate in range(FEW_SHOT_REPLICATES):
            rng = np.random.default_rng([config.seed, k, replicate])
            train, tune = _sample(y[S.TRAIN], k, rng), _sample(y[S.TUNING], k, rng)
            if train is None or tune is None:
                break
            model = make_head(head, config.seed + replicate, log1p).fit(
                X[S.TRAIN][train], y[S.TRAIN][train], X_val=X[S.TUNING][tune], y_val=y[S.TUNING][tune]
            )
            aurocs.append(auroc(y_test, model.predict_proba(X[S.HELD_OUT])[:, 1]))
        if len(aurocs) < FEW_SHOT_REPLICATES:
            curve[str(k)] = {"status": f"fewer than {k} positives or negatives in train or tuning"}
            break
        curve[str(k)] = {"status": "done", "auroc_mean": float(np.mean(aurocs)), "auroc_sd": float(np.std(aurocs)),
                         "auroc_replicates": [float(a) for a in aurocs]}
    return curve


MIN_SUBGROUP = 30  # smaller subgroups (or single-class ones) are listed with their size only


def _subgroup_metrics(y: np.ndarray, p: np.ndarray, groups: np.ndarray, threshold: float,
                      attributes: pl.DataFrame, config: BenchmarkConfig) -> dict[str, dict[str, Any]]:
    """The same metrics with CIs within each sex, age band, race/ethnicity and insurance group."""
    out: dict[str, dict[str, Any]] = {}
    for attribute in attributes.columns:
        values = attributes.get_column(attribute).to_numpy()
        table: dict[str, Any] = {}
        for value in sorted(set(values.tolist())):
            mask = values == value
            n, positives = int(mask.sum()), int(y[mask].sum())
            if n < MIN_SUBGROUP or positives in (0, n):
                table[value] = {"n": n, "positives": positives, "status": "too few to evaluate"}
                continue
            metrics = binary_report(y[mask], p[mask], groups[mask], threshold, n_boot=config.n_boot, seed=config.seed)
            table[value] = {"n": n, "positives": positives, "status": "done", "metrics": _as_json(metrics)}
        out[attribute] = table
    return out


def _as_json(metrics: Any) -> dict[str, Any]:
    """A metrics dataclass as JSON-safe data (NaN, e.g. an undefined AUROC, becomes null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and np.isnan(value):
            return None
        return value

    return dict(clean(asdict(metrics)))


def _holm_adjust(outcomes: list[_TaskOutcome]) -> None:
    comparisons = [c for o in outcomes for c in o.comparisons]
    for c, adjusted in zip(comparisons, holm([c["p_value"] for c in comparisons]), strict=True):
        c["p_value_holm"] = adjusted


def _oracle(dataset: Path) -> pl.DataFrame | None:
    """The generator's oracle when the dataset was ingested from a synthetic hospital."""
    quality = dataset / S.QUALITY_REPORT_FILE
    if not quality.exists():
        return None
    source = Path(json.loads(quality.read_text()).get("source", ""))
    path = source / "oracle" / "oracle.parquet"
    return pl.read_parquet(path) if path.exists() else None


def _oracle_auroc(
    spec: TaskSpec, oracle: pl.DataFrame, held_out: pl.DataFrame, config: BenchmarkConfig
) -> dict[str, Any]:
    truth = oracle.filter(pl.col("outcome") == ORACLE_OUTCOMES[spec.name])
    anchors = truth.get_column("anchor").unique().to_list()
    if len(anchors) != 1:
        return {"status": "no single oracle anchor"}
    offset = parse_duration(anchors[0].split("+")[1], "anchor") if "+" in anchors[0] else timedelta(0)
    truth = truth.select(S.SUBJECT_ID, pl.col(S.PREDICTION_TIME) + pl.lit(spec.offset - offset), "probability")
    joined = held_out.join(truth, on=[S.SUBJECT_ID, S.PREDICTION_TIME], how="inner")
    if joined.height < 10 or joined.get_column(S.BOOLEAN_VALUE).n_unique() < 2:
        return {"status": "too few matched episodes", "matched": joined.height}
    y = joined.get_column(S.BOOLEAN_VALUE).to_numpy().astype(int)
    metrics = binary_report(y, joined.get_column("probability").to_numpy(), joined.get_column(S.SUBJECT_ID).to_numpy(),
                            0.5, n_boot=config.n_boot, seed=config.seed)
    return {"status": "done", "matched": joined.height, "of": held_out.height, "metrics": _as_json(metrics),
            "curves": binary_curves(y, joined.get_column("probability").to_numpy())}


def _environment() -> dict[str, str]:
    packages = ("polars", "pyarrow", "numpy", "scikit-learn", "lightgbm", "scipy", "meds")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}
