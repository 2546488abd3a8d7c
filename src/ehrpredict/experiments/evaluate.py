"""How the benchmark evaluates a fitted pipeline, per label type.

Each :class:`Evaluation` says what a task's splits look like, whether the task can be evaluated, and
turns one :class:`~ehrpredict.pipeline.FittedPipeline` into a report entry (metrics with CIs, a
label-shuffle control, and for binary tasks curves, subgroups and few-shot). Fitting is not done here:
every model, control and few-shot replicate goes through :func:`~ehrpredict.pipeline.fit_pipeline`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.evaluation import auroc, binary_report, choose_threshold, paired_delta_auroc
from ehrpredict.evaluation.curves import binary_curves
from ehrpredict.evaluation.multilabel import multilabel_report, tune_thresholds
from ehrpredict.evaluation.regression import regression_report
from ehrpredict.evaluation.subgroups import subgroups
from ehrpredict.experiments.controls import few_shot, shuffle_control
from ehrpredict.experiments.model_results import (
    BinaryModelResult,
    Curves,
    ModelResult,
    MultilabelModelResult,
    MultilabelSummary,
    RegressionModelResult,
    SubgroupResult,
)
from ehrpredict.experiments.oracle import ORACLE_OUTCOMES, oracle_auroc
from ehrpredict.experiments.results import (
    BinarySplit,
    Comparison,
    MultilabelSplit,
    OracleResult,
    RegressionSplit,
    SplitStats,
)
from ehrpredict.features.registry import get_representation
from ehrpredict.models.targets import MIN_LABEL_POSITIVES, BinaryTarget, MultilabelTarget, RegressionTarget
from ehrpredict.pipeline import FittedPipeline, TaskData
from ehrpredict.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from ehrpredict.experiments.config import BenchmarkConfig

MIN_SUBGROUP = 30  # smaller subgroups (or single-class ones) are listed with their size only


class Evaluation(Protocol):
    def splits(self) -> dict[str, SplitStats]: ...

    def skip_reason(self) -> str | None: ...

    def evaluate(self, pipeline: FittedPipeline, started: float) -> ModelResult: ...

    def comparisons(self) -> list[Comparison]: ...

    def oracle(self, oracle: pl.DataFrame) -> OracleResult | None: ...


def _text_info(data: TaskData, representation: str) -> dict[str, Any] | None:
    """The text featurizer's settings and embedding costs, when the representation includes text."""
    spec = get_representation(representation)
    return data.featurizer("text").describe() if "text" in (spec.parts or (spec.name,)) else None


class _Base:
    def __init__(self, spec: TaskSpec, data: TaskData, config: BenchmarkConfig) -> None:
        self.spec, self.data, self.config = spec, data, config
        self.groups = data.parts[S.HELD_OUT].get_column(S.SUBJECT_ID).to_numpy()

    def comparisons(self) -> list[Comparison]:
        return []

    def oracle(self, oracle: pl.DataFrame) -> OracleResult | None:
        return None

    def _n_features(self, pipeline: FittedPipeline) -> int:
        return int(self.data.matrix(pipeline.representation, S.TRAIN).shape[1])


class BinaryEvaluation(_Base):
    """AUROC and the rest with bootstrap CIs, at a threshold chosen on the tuning split; curves,
    subgroups, paired comparisons between models, the oracle on synthetic data."""

    def __init__(self, spec: TaskSpec, data: TaskData, config: BenchmarkConfig) -> None:
        super().__init__(spec, data, config)
        self.y = {name: BinaryTarget().encode(part) for name, part in data.parts.items()}
        self.predictions: dict[str, np.ndarray] = {}
        self._attributes: pl.DataFrame | None = None

    def splits(self) -> dict[str, SplitStats]:
        out: dict[str, SplitStats] = {}
        for name, part in self.data.parts.items():
            flags = part.get_column(S.BOOLEAN_VALUE).cast(pl.Float64).to_numpy()
            prevalence = round(float(flags.mean()), 4) if part.height else 0.0
            out[name] = BinarySplit(n=part.height, positives=int(flags.sum()), prevalence=prevalence)
        return out

    def skip_reason(self) -> str | None:
        for name, part in self.data.parts.items():
            if part.height == 0 or part.get_column(S.BOOLEAN_VALUE).n_unique() < 2:
                return f"the {name} split has {part.height} labels, not both classes"
        return None

    def evaluate(self, pipeline: FittedPipeline, started: float) -> BinaryModelResult:
        config, data, representation = self.config, self.data, pipeline.representation
        y_tune, y_test = self.y[S.TUNING], self.y[S.HELD_OUT]
        p_tune = pipeline.predict_proba_features(data.matrix(representation, S.TUNING))
        p_test = pipeline.predict_proba_features(data.matrix(representation, S.HELD_OUT))
        threshold = choose_threshold(y_tune, p_tune)
        metrics = binary_report(y_test, p_test, self.groups, threshold, n_boot=config.n_boot, seed=config.seed)
        control = shuffle_control(self.spec, pipeline, data, config.shuffle_permutations, config.seed,
                                  {"auroc": lambda p: auroc(y_test, p)})
        self.predictions[f"{representation}/{pipeline.head_name}"] = p_test
        return BinaryModelResult(
            representation=representation, head=pipeline.head_name, n_features=self._n_features(pipeline),
            metrics=metrics, label_shuffle_control=control, curves=Curves.from_json(binary_curves(y_test, p_test)),
            subgroups=self._subgroups(y_test, p_test, threshold),
            few_shot=few_shot(self.spec, pipeline, data, config.seed) if config.few_shot else None,
            featurize_seconds=round(data.seconds(representation), 2), text=_text_info(data, representation),
            seconds=round(time.perf_counter() - started, 2),
        )

    def _subgroups(self, y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, dict[str, SubgroupResult]]:
        """The same metrics with CIs within each sex, age band, race/ethnicity and insurance group."""
        if self._attributes is None:
            self._attributes = subgroups(self.data.source, self.data.parts[S.HELD_OUT])
        out: dict[str, dict[str, SubgroupResult]] = {}
        for attribute in self._attributes.columns:
            values = self._attributes.get_column(attribute).to_numpy()
            table: dict[str, SubgroupResult] = {}
            for value in sorted(set(values.tolist())):
                mask = values == value
                n, positives = int(mask.sum()), int(y[mask].sum())
                if n < MIN_SUBGROUP or positives in (0, n):
                    table[value] = SubgroupResult(n=n, positives=positives, status="too few to evaluate")
                    continue
                metrics = binary_report(y[mask], p[mask], self.groups[mask], threshold, n_boot=self.config.n_boot,
                                        seed=self.config.seed)
                table[value] = SubgroupResult(n=n, positives=positives, status="done", metrics=metrics)
            out[attribute] = table
        return out

    def comparisons(self) -> list[Comparison]:
        """Paired ΔAUROC for every pair of models (Holm-adjusted later, across the whole run)."""
        out = []
        keys = sorted(self.predictions)
        y_test = self.y[S.HELD_OUT]
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                paired = paired_delta_auroc(y_test, self.predictions[a], self.predictions[b], self.groups,
                                            n_boot=self.config.n_boot, seed=self.config.seed)
                out.append(Comparison(a=a, b=b, delta_auroc=paired.delta, ci=(paired.ci_low, paired.ci_high),
                                      p_value=paired.p_value, n_boot=paired.n_boot))
        return out

    def oracle(self, oracle: pl.DataFrame) -> OracleResult | None:
        if self.spec.name not in ORACLE_OUTCOMES:
            return None
        return oracle_auroc(self.spec, oracle, self.data.parts[S.HELD_OUT], self.config.n_boot, self.config.seed)


class RegressionEvaluation(_Base):
    """MAE, RMSE and R² with bootstrap CIs, beside a label-shuffle control whose R² should be near (or
    below) 0."""

    def splits(self) -> dict[str, SplitStats]:
        out: dict[str, SplitStats] = {}
        for name, part in self.data.parts.items():
            values = part.get_column(S.FLOAT_VALUE).cast(pl.Float64)
            out[name] = RegressionSplit(n=part.height, mean=round(float(values.mean() or 0.0), 4),  # type: ignore[arg-type]
                                        sd=round(float(values.std() or 0.0), 4))  # type: ignore[arg-type]
        return out

    def skip_reason(self) -> str | None:
        return "a split has fewer than 2 labels" if any(p.height < 2 for p in self.data.parts.values()) else None

    def evaluate(self, pipeline: FittedPipeline, started: float) -> RegressionModelResult:
        config, data, representation = self.config, self.data, pipeline.representation
        y_test = RegressionTarget().encode(data.parts[S.HELD_OUT])
        predicted = pipeline.predict_features(data.matrix(representation, S.HELD_OUT))
        metrics = regression_report(y_test, predicted, self.groups, config.n_boot, config.seed)
        control = shuffle_control(self.spec, pipeline, data, config.shuffle_permutations, config.seed,
                                  {"r2": lambda p: _r2(y_test, p), "mae": lambda p: float(np.mean(np.abs(p - y_test)))})
        return RegressionModelResult(
            representation=representation, head=pipeline.head_name, n_features=self._n_features(pipeline),
            metrics=metrics, label_shuffle_control=control, featurize_seconds=round(data.seconds(representation), 2),
            text=_text_info(data, representation), seconds=round(time.perf_counter() - started, 2),
        )


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    variance = float(np.var(y))
    return 1 - float(np.mean((p - y) ** 2)) / variance if variance > 0 else float("nan")


class MultilabelEvaluation(_Base):
    """One classifier per category seen at least 5 times in train; thresholds tuned per category on the
    tuning split; micro/macro-F1 (macro over categories present), P@5, mAP."""

    def __init__(self, spec: TaskSpec, data: TaskData, config: BenchmarkConfig) -> None:
        super().__init__(spec, data, config)
        self.target = MultilabelTarget().fit(data.parts[S.TRAIN])

    def splits(self) -> dict[str, SplitStats]:
        n = len(self.target.categories_)
        return {name: MultilabelSplit(n=part.height, categories=n, prevalence=0.0)
                for name, part in self.data.parts.items()}

    def skip_reason(self) -> str | None:
        n = len(self.target.categories_)
        if n < 2 or any(part.height == 0 for part in self.data.parts.values()):
            return f"{n} categories with >= {MIN_LABEL_POSITIVES} train cases"
        return None

    def evaluate(self, pipeline: FittedPipeline, started: float) -> MultilabelModelResult:
        data, representation = self.data, pipeline.representation
        Y = {n: pipeline.target.encode(data.parts[n]) for n in (S.TUNING, S.HELD_OUT)}
        P = {n: pipeline.predict_proba_features(data.matrix(representation, n)) for n in (S.TUNING, S.HELD_OUT)}
        thresholds = tune_thresholds(Y[S.TUNING], P[S.TUNING])
        metrics = multilabel_report(Y[S.HELD_OUT], P[S.HELD_OUT], thresholds)
        return MultilabelModelResult(representation=representation, head=f"{pipeline.head_name} (one-vs-rest)",
                                     n_features=self._n_features(pipeline),
                                     metrics=MultilabelSummary.from_metrics(metrics),
                                     categories=len(self.target.categories_))


EVALUATORS: dict[str, Callable[[TaskSpec, TaskData, BenchmarkConfig], Evaluation]] = {
    "binary": BinaryEvaluation, "regression": RegressionEvaluation, "multilabel": MultilabelEvaluation,
}
