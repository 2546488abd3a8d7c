"""`ehrpredict benchmark`: labels → features → heads → evaluation, for every task × representation × head.

Writes ``RUN_DIR/report.json`` (metrics with patient-level bootstrap CIs, paired ΔAUROC with Holm
correction, a label-shuffle control, the oracle's AUROC on synthetic data, n and prevalence per split,
timings, and what makes the run reproducible) and ``RUN_DIR/report.html`` (self-contained).

Every model is fitted by :func:`~ehrpredict.pipeline.fit_pipeline` (representations come from the
registry in :mod:`ehrpredict.features.registry`); what differs by label type is only how a fitted
pipeline is evaluated (:mod:`ehrpredict.experiments.evaluate`). Binary tasks get every
representation × head (lr, lgbm) with subgroup tables (sex, age band, race/ethnicity, insurance) and,
with ``few_shot``, the EHRSHOT few-shot protocol; regression tasks get ridge / LightGBM regressors
(MAE, RMSE, R²); multilabel tasks a one-vs-rest logistic regression on counts. Other label types
(time-to-event) are listed in the report as skipped, with the reason.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

import polars as pl

from ehrpredict import __version__
from ehrpredict import schema as S
from ehrpredict.dataset import dataset_fingerprint
from ehrpredict.evaluation import holm
from ehrpredict.events.source import ParquetEvents
from ehrpredict.executor import Executor
from ehrpredict.experiments.config import BenchmarkConfig as BenchmarkConfig  # re-exported: users import it from here
from ehrpredict.experiments.evaluate import EVALUATORS, Evaluation
from ehrpredict.experiments.model_results import ModelResult
from ehrpredict.experiments.oracle import load_oracle
from ehrpredict.experiments.results import (
    BenchmarkReport,
    Comparison,
    DatasetRef,
    OracleResult,
    SplitStats,
    TaskResult,
)
from ehrpredict.ingest.output import write_json
from ehrpredict.pipeline import TaskData, fit_pipeline
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import TaskSpec, load_library, load_task

Progress = Callable[[str], None]
MULTILABEL_MODELS = (("counts", "lr"),)  # one-vs-rest logistic regression on counts


@dataclass
class _TaskOutcome:
    """A task's results while the run is under way; :meth:`result` freezes them once the run's p-values
    have been Holm-adjusted together."""

    task: str
    status: str = "done"
    reason: str = ""
    splits: dict[str, SplitStats] = field(default_factory=dict)
    models: list[ModelResult] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    oracle: OracleResult | None = None
    seconds: float = 0.0

    def result(self) -> TaskResult:
        return TaskResult(name=self.task, status=self.status, reason=self.reason, splits=self.splits,
                          models=tuple(self.models), comparisons=tuple(self.comparisons), oracle=self.oracle,
                          seconds=self.seconds)


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


def _models(spec: TaskSpec, config: BenchmarkConfig) -> list[tuple[str, str]]:
    """(representation, head) pairs a task is benchmarked with."""
    if spec.label_type == "multilabel":
        return list(MULTILABEL_MODELS)
    return [(r, h) for r in config.representations for h in config.heads]


def run_benchmark(config: BenchmarkConfig, progress: Progress | None = None,
                  executor: Executor | None = None) -> BenchmarkReport:
    """Run the benchmark and write the report files; returns the report."""
    start = time.perf_counter()
    specs = _specs(config.tasks)
    bar = _Progress(progress or (lambda message: None), sum(len(_models(s, config)) for s in specs
                                                            if s.label_type in EVALUATORS))
    bar.note(f"labeling {len(specs)} task(s)")
    labeled = label_many(config.dataset, specs, executor=executor)
    source = ParquetEvents(Path(config.dataset))
    splits = source.splits()
    oracle = load_oracle(Path(config.dataset))
    settings = config.settings()
    outcomes = []
    for spec in specs:
        data = TaskData.from_splits(source, labeled[spec.name].labels, splits, settings, executor)
        outcomes.append(_run_task(spec, data, oracle, config, bar))
    _holm_adjust(outcomes)
    typed = BenchmarkReport(
        version=__version__, created_by="ehrpredict benchmark",
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        dataset=DatasetRef(path=str(config.dataset), fingerprint=dataset_fingerprint(config.dataset)),
        environment=environment(), seconds=round(time.perf_counter() - start, 1),
        tasks=tuple(o.result() for o in outcomes),
    )
    config.out.mkdir(parents=True, exist_ok=True)
    write_json(config.out / "report.json", typed.to_json())
    from ehrpredict.reporting.html import render_report

    html = config.out / "report.html"
    tmp = html.with_name(".report.html.tmp")
    tmp.write_text(render_report(typed))
    tmp.replace(html)
    return typed


def _run_task(spec: TaskSpec, data: TaskData, oracle: pl.DataFrame | None, config: BenchmarkConfig,
              bar: _Progress) -> _TaskOutcome:
    """Every (representation, head) of the task through ``fit_pipeline``, evaluated for its label type."""
    outcome = _TaskOutcome(spec.name)
    start = time.perf_counter()
    if spec.label_type not in EVALUATORS:
        outcome.status, outcome.reason = "skipped", f"{spec.label_type} tasks are not benchmarked yet"
        bar.note(f"{spec.name}: skipped ({outcome.reason})")
        return outcome
    evaluation: Evaluation = EVALUATORS[spec.label_type](spec, data, config)
    outcome.splits = evaluation.splits()
    reason = evaluation.skip_reason()
    if reason is not None:
        outcome.status, outcome.reason = "skipped", reason
        bar.note(f"{spec.name}: skipped ({reason})")
        outcome.seconds = round(time.perf_counter() - start, 1)
        return outcome
    featurized = set()
    for representation, head in _models(spec, config):
        if representation not in featurized:  # featurized once per task, shared by its heads
            bar.note(f"{spec.name}: featurizing ({representation})")
            data.matrix(representation, S.TRAIN)
            featurized.add(representation)
        bar.step(f"{spec.name} {representation}/{head}: training and evaluating")
        t = time.perf_counter()
        pipeline = fit_pipeline(spec, representation, head, data, seed=config.seed)
        outcome.models.append(evaluation.evaluate(pipeline, started=t))
    outcome.comparisons = evaluation.comparisons()
    if oracle is not None:
        outcome.oracle = evaluation.oracle(oracle)
    outcome.seconds = round(time.perf_counter() - start, 1)
    return outcome


def _holm_adjust(outcomes: list[_TaskOutcome]) -> None:
    """Every comparison of the run gets its Holm-adjusted p-value (over all comparisons of all tasks)."""
    adjusted = iter(holm([c.p_value for o in outcomes for c in o.comparisons]))
    for o in outcomes:
        o.comparisons = [replace(c, p_value_holm=next(adjusted)) for c in o.comparisons]


PACKAGES = ("polars", "pyarrow", "numpy", "scikit-learn", "lightgbm", "scipy", "meds")


def environment(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Python, platform and the versions of ``packages`` (``"not installed"`` when absent)."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}
