"""`ehrpredict benchmark`: labels → features → heads → evaluation, for every task × representation × head.

Writes ``RUN_DIR/report.json`` (metrics with patient-level bootstrap CIs, paired ΔAUROC with Holm
correction, a label-shuffle control, the oracle's AUROC on synthetic data, n and prevalence per split,
timings, and what makes the run reproducible) and ``RUN_DIR/report.html`` (self-contained).

Scope today: binary tasks with the counts representation and the lr / lgbm heads, with subgroup
tables (sex, age band, race/ethnicity, insurance) and the few-shot protocol; multilabel tasks with a
one-vs-rest logistic regression. Other label types
are listed in the report as skipped, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.preprocessing import MaxAbsScaler

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.evaluation import auroc, binary_report, choose_threshold, holm, paired_delta_auroc
from ehrpredict.evaluation.multilabel import multilabel_report, tune_thresholds
from ehrpredict.evaluation.subgroups import subgroups
from ehrpredict.features.counts import CountsFeaturizer
from ehrpredict.ingest.output import write_json
from ehrpredict.models.heads import HEADS, make_head
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import TaskSpec, load_library, load_task, parse_duration

REPRESENTATIONS = ("counts",)
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

    def __post_init__(self) -> None:
        unknown = [r for r in self.representations if r not in REPRESENTATIONS]
        if unknown:
            raise ConfigError(f"expected representations from {list(REPRESENTATIONS)}, got {unknown}")
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown:
            raise ConfigError(f"expected heads from {list(HEADS)}, got {unknown}")
        if self.n_boot < 10:
            raise ConfigError(f"expected --bootstrap >= 10, got {self.n_boot}")


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


def run_benchmark(config: BenchmarkConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark and write the report files; returns the report."""
    say = progress or (lambda message: None)
    start = time.perf_counter()
    specs = _specs(config.tasks)
    say(f"labeling {len(specs)} task(s)")
    labeled = label_many(config.dataset, specs)
    splits = pl.read_parquet(Path(config.dataset) / S.SPLITS_FILE)
    oracle = _oracle(Path(config.dataset))
    outcomes = []
    for spec in specs:
        say(f"{spec.name}: featurizing and training")
        outcomes.append(_run_task(spec, labeled[spec.name].labels, splits, oracle, config))
    _holm_adjust(outcomes)
    report = {
        "ehrpredict_version": __version__,
        "created_by": "ehrpredict benchmark",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "dataset": {"path": str(config.dataset), "fingerprint": _dataset_fingerprint(Path(config.dataset))},
        "environment": _environment(),
        "seconds": round(time.perf_counter() - start, 1),
        "tasks": [asdict(o) for o in outcomes],
    }
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / "report.json", report)
    from ehrpredict.evaluation.html import render_report

    html = config.out / "report.html"
    tmp = html.with_name(".report.html.tmp")
    tmp.write_text(render_report(report))
    tmp.replace(html)
    return report


def _run_task(spec: TaskSpec, labels: pl.DataFrame, splits: pl.DataFrame, oracle: pl.DataFrame | None,
              config: BenchmarkConfig) -> _TaskOutcome:
    outcome = _TaskOutcome(spec.name)
    start = time.perf_counter()
    if spec.label_type == "multilabel":
        return _run_multilabel(spec, labels, splits, config, outcome, start)
    if spec.label_type != "binary":
        outcome.status, outcome.reason = "skipped", f"{spec.label_type} tasks are not benchmarked yet"
        return outcome
    frame = labels.join(splits, on=S.SUBJECT_ID, how="inner")
    parts = {s: frame.filter(pl.col(S.SPLIT) == s) for s in S.SPLITS}
    for name, part in parts.items():
        flags = part.get_column("boolean_value").cast(pl.Float64).to_numpy()
        prevalence = round(float(flags.mean()), 4) if part.height else 0.0
        outcome.splits[name] = {"n": part.height, "positives": int(flags.sum()), "prevalence": prevalence}
    for name, part in parts.items():
        if part.height == 0 or part.get_column("boolean_value").n_unique() < 2:
            outcome.status, outcome.reason = "skipped", f"the {name} split has {part.height} labels, not both classes"
            outcome.seconds = round(time.perf_counter() - start, 1)
            return outcome
    predictions: dict[str, np.ndarray] = {}
    held_out = parts[S.HELD_OUT]
    y_test = held_out.get_column("boolean_value").to_numpy().astype(int)
    groups = held_out.get_column(S.SUBJECT_ID).to_numpy()
    attributes = subgroups(config.dataset, held_out)
    for representation in config.representations:
        featurizer = CountsFeaturizer(config.dataset, min_count=config.min_count).fit(parts[S.TRAIN])
        X = {name: featurizer.transform(part) for name, part in parts.items()}
        y = {name: part.get_column("boolean_value").to_numpy().astype(int) for name, part in parts.items()}
        for head in config.heads:
            t = time.perf_counter()
            model = make_head(head, config.seed).fit(X[S.TRAIN], y[S.TRAIN], X[S.TUNING], y[S.TUNING])
            p_tune = model.predict_proba(X[S.TUNING])[:, 1]
            p_test = model.predict_proba(X[S.HELD_OUT])[:, 1]
            threshold = choose_threshold(y[S.TUNING], p_tune)
            metrics = binary_report(y_test, p_test, groups, threshold, n_boot=config.n_boot, seed=config.seed)
            shuffled = np.random.default_rng(config.seed).permutation(y[S.TRAIN])
            control = make_head(head, config.seed).fit(X[S.TRAIN], shuffled, X[S.TUNING], y[S.TUNING])
            control_metrics = binary_report(y_test, control.predict_proba(X[S.HELD_OUT])[:, 1], groups, threshold,
                                            n_boot=config.n_boot, seed=config.seed)
            key = f"{representation}/{head}"
            predictions[key] = p_test
            outcome.models.append({
                "representation": representation, "head": head, "n_features": int(X[S.TRAIN].shape[1]),
                "metrics": _as_json(metrics), "label_shuffle_control": _as_json(control_metrics),
                "subgroups": _subgroup_metrics(y_test, p_test, groups, threshold, attributes, config),
                "few_shot": _few_shot(head, X, y, y_test, config) if config.few_shot else None,
                "seconds": round(time.perf_counter() - t, 2),
            })
    keys = sorted(predictions)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            delta, low, high, p = paired_delta_auroc(y_test, predictions[a], predictions[b], groups,
                                                      n_boot=config.n_boot, seed=config.seed)
            outcome.comparisons.append({"a": a, "b": b, "delta_auroc": delta, "ci": [low, high], "p_value": p})
    if oracle is not None and spec.name in ORACLE_OUTCOMES:
        outcome.oracle = _oracle_auroc(spec, oracle, held_out, config)
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


MIN_LABEL_POSITIVES = 5  # multilabel: categories with fewer train positives get no classifier


def _run_multilabel(spec: TaskSpec, labels: pl.DataFrame, splits: pl.DataFrame, config: BenchmarkConfig,
                    outcome: _TaskOutcome, start: float) -> _TaskOutcome:
    """One-vs-rest logistic regression per category seen at least 5 times in train; thresholds tuned
    per category on the tuning split; micro/macro-F1 (macro over categories present), P@5, mAP."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    frame = labels.join(splits, on=S.SUBJECT_ID, how="inner").with_columns(
        pl.col("categorical_value").str.split("|").alias("_categories")
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

    featurizer = CountsFeaturizer(config.dataset, min_count=config.min_count).fit(parts[S.TRAIN])
    X = {n: featurizer.transform(p) for n, p in parts.items()}
    Y = {n: matrix(p) for n, p in parts.items()}
    scaler = MaxAbsScaler().fit(X[S.TRAIN])
    model = OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000, random_state=config.seed))
    model.fit(scaler.transform(X[S.TRAIN]), Y[S.TRAIN])
    P = {n: model.predict_proba(scaler.transform(X[n])) for n in (S.TUNING, S.HELD_OUT)}
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


def _few_shot(head: str, X: dict[str, Any], y: dict[str, np.ndarray], y_test: np.ndarray,
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
            model = make_head(head, config.seed + replicate).fit(
                X[S.TRAIN][train], y[S.TRAIN][train], X[S.TUNING][tune], y[S.TUNING][tune]
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
    truth = truth.select(S.SUBJECT_ID, pl.col("prediction_time") + pl.lit(spec.offset - offset), "probability")
    joined = held_out.join(truth, on=[S.SUBJECT_ID, "prediction_time"], how="inner")
    if joined.height < 10 or joined.get_column("boolean_value").n_unique() < 2:
        return {"status": "too few matched episodes", "matched": joined.height}
    y = joined.get_column("boolean_value").to_numpy().astype(int)
    metrics = binary_report(y, joined.get_column("probability").to_numpy(), joined.get_column(S.SUBJECT_ID).to_numpy(),
                            0.5, n_boot=config.n_boot, seed=config.seed)
    return {"status": "done", "matched": joined.height, "of": held_out.height, "metrics": _as_json(metrics)}


def _dataset_fingerprint(dataset: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(dataset.rglob("*.parquet")):
        digest.update(f"{path.relative_to(dataset)}:{path.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def _environment() -> dict[str, str]:
    packages = ("polars", "pyarrow", "numpy", "scikit-learn", "lightgbm", "scipy", "meds")
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}
