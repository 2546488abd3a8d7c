"""Typed results of a benchmark run: :class:`BenchmarkReport` > :class:`TaskResult` > model results.

``report.json`` is ``report.to_json()`` written as JSON, and :meth:`BenchmarkReport.from_json` reads it
back: ``BenchmarkReport.from_json(data).to_json()`` gives ``data`` again, key order included, so a
report written before these types existed round-trips unchanged. Keys that every entry of a kind has
are always written (``null`` when unset: ``oracle``, ``few_shot``, ``text``); keys that depend on a
status (the oracle's ``metrics``, a subgroup's ``metrics``, a few-shot point's AUROC) are left out when
unset. The per-model types live in :mod:`ehrpredict.experiments.model_results` and are re-exported here.

    >>> task = TaskResult(name="aki_48h", status="skipped", reason="no labels")
    >>> TaskResult.from_json(task.to_json()) == task
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ehrpredict.errors import DataError
from ehrpredict.evaluation.bootstrap import BinaryMetrics
from ehrpredict.experiments.model_results import (
    BinaryModelResult,
    CalibrationCurve,
    Curves,
    FewShotCurve,
    FewShotPoint,
    Json,
    ModelResult,
    MultilabelModelResult,
    MultilabelSummary,
    PrCurve,
    RegressionModelResult,
    RocCurve,
    ShuffleControl,
    ShuffleScore,
    SubgroupResult,
    metrics_from_json,
    metrics_to_json,
    model_from_json,
)

__all__ = [
    "BenchmarkReport",
    "BinaryModelResult",
    "BinarySplit",
    "CalibrationCurve",
    "Comparison",
    "Curves",
    "DatasetRef",
    "FewShotCurve",
    "FewShotPoint",
    "ModelResult",
    "MultilabelModelResult",
    "MultilabelSplit",
    "MultilabelSummary",
    "OracleResult",
    "PrCurve",
    "RegressionModelResult",
    "RegressionSplit",
    "RocCurve",
    "ShuffleControl",
    "ShuffleScore",
    "SplitStats",
    "SubgroupResult",
    "TaskResult",
    "metrics_from_json",
    "metrics_to_json",
]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class BinarySplit:
    n: int
    positives: int
    prevalence: float

    def to_json(self) -> Json:
        return {"n": self.n, "positives": self.positives, "prevalence": self.prevalence}


@dataclass(frozen=True, kw_only=True)
class RegressionSplit:
    n: int
    mean: float
    sd: float

    def to_json(self) -> Json:
        return {"n": self.n, "mean": self.mean, "sd": self.sd}


@dataclass(frozen=True, kw_only=True)
class MultilabelSplit:
    n: int
    categories: int  # the task's categories with a classifier (the same in every split)
    prevalence: float  # written as 0.0 by the current benchmark; kept so the report's layout is unchanged

    def to_json(self) -> Json:
        return {"n": self.n, "categories": self.categories, "prevalence": self.prevalence}


SplitStats = BinarySplit | RegressionSplit | MultilabelSplit


def split_from_json(data: Mapping[str, Any]) -> SplitStats:
    """Split statistics of any task kind, told apart by their keys."""
    if "categories" in data:
        return MultilabelSplit(n=data["n"], categories=data["categories"], prevalence=data["prevalence"])
    if "positives" in data:
        return BinarySplit(n=data["n"], positives=data["positives"], prevalence=data["prevalence"])
    return RegressionSplit(n=data["n"], mean=data["mean"], sd=data["sd"])


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Paired patient-level bootstrap of AUROC(a) − AUROC(b) on the held-out split. ``n_boot``: the
    resamples the p-value rests on (None in reports written before it was recorded); ``p_value_holm``:
    adjusted over every comparison of the report (None until that is done). None fields are left out."""

    a: str
    b: str
    delta_auroc: float
    ci: tuple[float, float]
    p_value: float
    n_boot: int | None = None
    p_value_holm: float | None = None

    def to_json(self) -> Json:
        out: Json = {"a": self.a, "b": self.b, "delta_auroc": self.delta_auroc, "ci": list(self.ci),
                     "p_value": self.p_value}
        if self.n_boot is not None:
            out["n_boot"] = self.n_boot
        if self.p_value_holm is not None:
            out["p_value_holm"] = self.p_value_holm
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        low, high = data["ci"]
        return cls(a=data["a"], b=data["b"], delta_auroc=data["delta_auroc"], ci=(low, high),
                   p_value=data["p_value"], n_boot=data.get("n_boot"), p_value_holm=data.get("p_value_holm"))


@dataclass(frozen=True, kw_only=True)
class OracleResult:
    """The synthetic generator's true probabilities scored like a model. ``status`` is ``"done"``
    (all fields set), ``"too few matched episodes"`` (``matched`` set) or ``"no single oracle anchor"``."""

    status: str
    matched: int | None = None  # held-out episodes matched to an oracle row
    of: int | None = None  # held-out episodes
    metrics: BinaryMetrics | None = None
    curves: Curves | None = None

    def to_json(self) -> Json:
        out: Json = {"status": self.status}
        if self.matched is not None:
            out["matched"] = self.matched
        if self.of is not None:
            out["of"] = self.of
        if self.metrics is not None:
            out["metrics"] = metrics_to_json(self.metrics)
        if self.curves is not None:
            out["curves"] = self.curves.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OracleResult:
        metrics, curves = data.get("metrics"), data.get("curves")
        return cls(status=data["status"], matched=data.get("matched"), of=data.get("of"),
                   metrics=None if metrics is None else metrics_from_json(BinaryMetrics, metrics),
                   curves=None if curves is None else Curves.from_json(curves))


@dataclass(frozen=True, kw_only=True)
class TaskResult:
    """One task: ``status`` ``"done"`` or ``"skipped"`` (with ``reason``), n (and prevalence, mean or
    categories) per split, its models and paired comparisons, and the oracle on synthetic data."""

    name: str
    status: str = "done"
    reason: str = ""
    splits: Mapping[str, SplitStats] = field(default_factory=dict)
    models: tuple[ModelResult, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    oracle: OracleResult | None = None
    seconds: float = 0.0

    def to_json(self) -> Json:
        return {
            "task": self.name, "status": self.status, "reason": self.reason,
            "splits": {name: s.to_json() for name, s in self.splits.items()},
            "models": [m.to_json() for m in self.models], "comparisons": [c.to_json() for c in self.comparisons],
            "oracle": None if self.oracle is None else self.oracle.to_json(), "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskResult:
        oracle = data["oracle"]
        return cls(
            name=data["task"], status=data["status"], reason=data["reason"],
            splits={name: split_from_json(s) for name, s in data["splits"].items()},
            models=tuple(model_from_json(m) for m in data["models"]),
            comparisons=tuple(Comparison.from_json(c) for c in data["comparisons"]),
            oracle=None if oracle is None else OracleResult.from_json(oracle), seconds=data["seconds"],
        )


@dataclass(frozen=True, kw_only=True)
class DatasetRef:
    """The dataset a report was run on: its path and content fingerprint."""

    path: str
    fingerprint: str


@dataclass(frozen=True, kw_only=True)
class BenchmarkReport:
    """Everything one ``ehrpredict benchmark`` run reports, and what makes it reproducible."""

    version: str  # ehrpredict's
    created_by: str
    # The run's configuration as JSON (BenchmarkConfig with paths as strings). Kept as a mapping: it is
    # only stored and shown, and typing it would copy BenchmarkConfig into a module the runner imports.
    config: Mapping[str, Any]
    dataset: DatasetRef
    environment: Mapping[str, str]  # python, platform and package versions
    seconds: float
    tasks: tuple[TaskResult, ...]

    def to_json(self) -> Json:
        return {
            "ehrpredict_version": self.version, "created_by": self.created_by, "config": dict(self.config),
            "dataset": {"path": self.dataset.path, "fingerprint": self.dataset.fingerprint},
            "environment": dict(self.environment), "seconds": self.seconds,
            "tasks": [t.to_json() for t in self.tasks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchmarkReport:
        """Read a report as written by ``to_json`` (``report.json``); a malformed one raises
        :class:`DataError` naming the task and the missing or wrong entry."""
        tasks = []
        for i, task in enumerate(_get(data, "tasks", "the report")):
            where = f"tasks[{i}] ({task.get('task', '?') if isinstance(task, Mapping) else '?'})"
            tasks.append(_parse(TaskResult.from_json, task, where))
        dataset = _get(data, "dataset", "the report")
        return cls(
            version=_get(data, "ehrpredict_version", "the report"), created_by=_get(data, "created_by", "the report"),
            config=_get(data, "config", "the report"),
            dataset=_parse(lambda d: DatasetRef(path=d["path"], fingerprint=d["fingerprint"]), dataset, "dataset"),
            environment=_get(data, "environment", "the report"), seconds=_get(data, "seconds", "the report"),
            tasks=tuple(tasks),
        )


def _get(data: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise DataError(f"expected a benchmark report with {key!r} in {where}, got {_shape(data)}")
    return data[key]


def _parse(read: Callable[[Any], T], data: Any, where: str) -> T:
    try:
        return read(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"no key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"expected a benchmark report entry at {where}, got {_shape(data)} ({detail})") from exc


def _shape(data: Any) -> str:
    return f"keys {sorted(data)}" if isinstance(data, Mapping) else type(data).__name__
