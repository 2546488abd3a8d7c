"""What a benchmark run reports for one trained model: metrics, the label-shuffle control, curves,
subgroups and the few-shot curve. :mod:`ehrpredict.experiments.results` re-exports every name.

The metrics are the evaluation library's own dataclasses (:class:`BinaryMetrics`,
:class:`RegressionMetrics` with their :class:`Estimate`); only the multilabel metrics get a summary
type here, because the report keeps neither per-label F1 nor which labels were present.

``to_json`` gives exactly the ``report.json`` layout and ``from_json`` reads it back. In the evaluation
metrics an undefined value (an AUROC without both classes) is NaN, written as ``null`` and read back as
NaN; every other float is written as it is, so a NaN there (an R² of constant labels in the control)
stays ``NaN`` in the file, as ``json`` writes it.

    >>> point = FewShotPoint(k=4, status="done", auroc_mean=0.7, auroc_sd=0.05, auroc_replicates=(0.7,) * 5)
    >>> FewShotCurve(points=(point,)).to_json()["4"]["auroc_mean"]
    0.7
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from ehrpredict.evaluation.bootstrap import BinaryMetrics, Estimate
from ehrpredict.evaluation.multilabel import MultilabelMetrics
from ehrpredict.evaluation.regression import RegressionMetrics

Json = dict[str, Any]
Metrics = TypeVar("Metrics", BinaryMetrics, RegressionMetrics)


def _null_nan(value: Any) -> Any:
    """NaN (an undefined metric) as JSON null, recursively through dicts."""
    if isinstance(value, dict):
        return {k: _null_nan(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _nan_null(value: Any) -> Any:
    return float("nan") if value is None else value


def metrics_to_json(metrics: BinaryMetrics | RegressionMetrics) -> Json:
    """A metrics dataclass as JSON-safe data (NaN, e.g. an undefined AUROC, becomes null).

    >>> metrics_to_json(RegressionMetrics(3, 2, 1.0, *[Estimate(0.5, float("nan"), 0.9)] * 3, 20, 0))["mae"]
    {'value': 0.5, 'ci_low': None, 'ci_high': 0.9}
    """
    return dict(_null_nan(asdict(metrics)))


def metrics_from_json(kind: type[Metrics], data: Mapping[str, Any]) -> Metrics:
    """The inverse of :func:`metrics_to_json`: nested mappings become :class:`Estimate`, null NaN."""
    values = {}
    for f in fields(kind):
        value = data[f.name]
        if isinstance(value, Mapping):
            value = Estimate(*(_nan_null(value[k]) for k in ("value", "ci_low", "ci_high")))
        values[f.name] = _nan_null(value)
    return kind(**values)


@dataclass(frozen=True, kw_only=True)
class MultilabelSummary:
    """:class:`MultilabelMetrics` as the report keeps them: ``labels_present`` is a count, and the
    per-label F1 is left out (one number per category would swamp the report)."""

    n: int
    n_labels: int
    labels_present: int
    micro_f1: float
    macro_f1: float
    precision_at_k: float
    k: int
    mean_average_precision: float

    @classmethod
    def from_metrics(cls, metrics: MultilabelMetrics) -> MultilabelSummary:
        return cls(n=metrics.n, n_labels=metrics.n_labels, labels_present=len(metrics.labels_present),
                   micro_f1=metrics.micro_f1, macro_f1=metrics.macro_f1, precision_at_k=metrics.precision_at_k,
                   k=metrics.k, mean_average_precision=metrics.mean_average_precision)

    def to_json(self) -> Json:
        return dict(_null_nan(asdict(self)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultilabelSummary:
        return cls(**{f.name: _nan_null(data[f.name]) for f in fields(cls)})


@dataclass(frozen=True, kw_only=True)
class ShuffleScore:
    """One score of the label-shuffle control: mean, SD and range over the permutations, and each one."""

    value: float
    sd: float
    min: float
    max: float
    replicates: tuple[float, ...]

    def to_json(self) -> Json:
        return {"value": self.value, "sd": self.sd, "min": self.min, "max": self.max,
                "replicates": list(self.replicates)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShuffleScore:
        return cls(value=data["value"], sd=data["sd"], min=data["min"], max=data["max"],
                   replicates=tuple(data["replicates"]))


@dataclass(frozen=True, kw_only=True)
class ShuffleControl:
    """The same model trained on permuted training labels ``permutations`` times; ``scores`` by name
    (``auroc`` for binary tasks, ``r2`` and ``mae`` for regression)."""

    permutations: int
    scores: Mapping[str, ShuffleScore]

    def to_json(self) -> Json:
        return {"permutations": self.permutations, **{name: s.to_json() for name, s in self.scores.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShuffleControl:
        return cls(permutations=data["permutations"],
                   scores={k: ShuffleScore.from_json(v) for k, v in data.items() if k != "permutations"})


@dataclass(frozen=True, kw_only=True)
class RocCurve:
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class PrCurve:
    recall: tuple[float, ...]
    precision: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class CalibrationCurve:
    """Per non-empty bin of predicted probability: its mean, the observed event rate, the row count."""

    mean_predicted: tuple[float, ...]
    observed: tuple[float, ...]
    n: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class Curves:
    """ROC, precision-recall and calibration points of one prediction (:func:`binary_curves`)."""

    roc: RocCurve
    pr: PrCurve
    calibration: CalibrationCurve

    def to_json(self) -> Json:
        return {name: {k: list(v) for k, v in asdict(getattr(self, name)).items()}
                for name in ("roc", "pr", "calibration")}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Curves:
        """Also reads :func:`ehrpredict.evaluation.curves.binary_curves`' output."""
        roc, pr, calibration = data["roc"], data["pr"], data["calibration"]
        return cls(roc=RocCurve(fpr=tuple(roc["fpr"]), tpr=tuple(roc["tpr"])),
                   pr=PrCurve(recall=tuple(pr["recall"]), precision=tuple(pr["precision"])),
                   calibration=CalibrationCurve(mean_predicted=tuple(calibration["mean_predicted"]),
                                                observed=tuple(calibration["observed"]), n=tuple(calibration["n"])))


@dataclass(frozen=True, kw_only=True)
class SubgroupResult:
    """One subgroup (a sex, age band, ...): its size, and metrics when ``status`` is ``"done"``
    (``metrics`` is None for groups too small or single-class)."""

    n: int
    positives: int
    status: str
    metrics: BinaryMetrics | None = None

    def to_json(self) -> Json:
        out: Json = {"n": self.n, "positives": self.positives, "status": self.status}
        if self.metrics is not None:
            out["metrics"] = metrics_to_json(self.metrics)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubgroupResult:
        metrics = data.get("metrics")
        return cls(n=data["n"], positives=data["positives"], status=data["status"],
                   metrics=None if metrics is None else metrics_from_json(BinaryMetrics, metrics))


@dataclass(frozen=True, kw_only=True)
class FewShotPoint:
    """Held-out AUROC at k positives + k negatives; the AUROC fields are None unless ``status`` is
    ``"done"`` (the status says why not, e.g. too few positives)."""

    k: int
    status: str
    auroc_mean: float | None = None
    auroc_sd: float | None = None
    auroc_replicates: tuple[float, ...] | None = None

    def to_json(self) -> Json:
        """The entry under key ``str(k)``; fields left None are left out."""
        out: Json = {"status": self.status}
        for name in ("auroc_mean", "auroc_sd", "auroc_replicates"):
            value = getattr(self, name)
            if value is not None:
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, k: int) -> FewShotPoint:
        replicates = data.get("auroc_replicates")
        return cls(k=k, status=data["status"], auroc_mean=data.get("auroc_mean"), auroc_sd=data.get("auroc_sd"),
                   auroc_replicates=None if replicates is None else tuple(replicates))


@dataclass(frozen=True, kw_only=True)
class FewShotCurve:
    """The few-shot points by increasing k, up to (and including) the first k that could not be run."""

    points: tuple[FewShotPoint, ...]

    def to_json(self) -> Json:
        return {str(p.k): p.to_json() for p in self.points}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FewShotCurve:
        return cls(points=tuple(FewShotPoint.from_json(v, k=int(k)) for k, v in data.items()))


# ``text`` is the text featurizer's ``describe()`` (encoder, serializer, cache counts, selection), kept
# as the JSON mapping it returns: the report only stores and shows it, and its keys follow the featurizer.


@dataclass(frozen=True, kw_only=True)
class BinaryModelResult:
    representation: str
    head: str
    n_features: int
    metrics: BinaryMetrics
    label_shuffle_control: ShuffleControl
    curves: Curves | None
    subgroups: Mapping[str, Mapping[str, SubgroupResult]]  # attribute → value → result
    few_shot: FewShotCurve | None = None
    featurize_seconds: float
    text: Mapping[str, Any] | None = None
    seconds: float

    def to_json(self) -> Json:
        return {
            "representation": self.representation, "head": self.head, "n_features": self.n_features,
            "metrics": metrics_to_json(self.metrics), "label_shuffle_control": self.label_shuffle_control.to_json(),
            "curves": None if self.curves is None else self.curves.to_json(),
            "subgroups": {a: {v: s.to_json() for v, s in table.items()} for a, table in self.subgroups.items()},
            "few_shot": None if self.few_shot is None else self.few_shot.to_json(),
            "featurize_seconds": self.featurize_seconds, "text": _text_json(self.text), "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BinaryModelResult:
        curves, few_shot = data["curves"], data["few_shot"]
        return cls(
            representation=data["representation"], head=data["head"], n_features=data["n_features"],
            metrics=metrics_from_json(BinaryMetrics, data["metrics"]),
            label_shuffle_control=ShuffleControl.from_json(data["label_shuffle_control"]),
            curves=None if curves is None else Curves.from_json(curves),
            subgroups={a: {v: SubgroupResult.from_json(s) for v, s in table.items()}
                       for a, table in data["subgroups"].items()},
            few_shot=None if few_shot is None else FewShotCurve.from_json(few_shot),
            featurize_seconds=data["featurize_seconds"], text=data["text"], seconds=data["seconds"],
        )


@dataclass(frozen=True, kw_only=True)
class RegressionModelResult:
    representation: str
    head: str
    n_features: int
    metrics: RegressionMetrics
    label_shuffle_control: ShuffleControl
    featurize_seconds: float
    text: Mapping[str, Any] | None = None
    seconds: float

    def to_json(self) -> Json:
        return {
            "representation": self.representation, "head": self.head, "n_features": self.n_features,
            "regression_metrics": metrics_to_json(self.metrics),
            "label_shuffle_control": self.label_shuffle_control.to_json(),
            "featurize_seconds": self.featurize_seconds, "text": _text_json(self.text), "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RegressionModelResult:
        return cls(
            representation=data["representation"], head=data["head"], n_features=data["n_features"],
            metrics=metrics_from_json(RegressionMetrics, data["regression_metrics"]),
            label_shuffle_control=ShuffleControl.from_json(data["label_shuffle_control"]),
            featurize_seconds=data["featurize_seconds"], text=data["text"], seconds=data["seconds"],
        )


@dataclass(frozen=True, kw_only=True)
class MultilabelModelResult:
    representation: str
    head: str
    n_features: int
    metrics: MultilabelSummary
    categories: int  # categories with a classifier (enough train cases)

    def to_json(self) -> Json:
        return {"representation": self.representation, "head": self.head, "n_features": self.n_features,
                "multilabel_metrics": self.metrics.to_json(), "categories": self.categories}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultilabelModelResult:
        return cls(representation=data["representation"], head=data["head"], n_features=data["n_features"],
                   metrics=MultilabelSummary.from_json(data["multilabel_metrics"]), categories=data["categories"])


ModelResult = BinaryModelResult | RegressionModelResult | MultilabelModelResult


def model_from_json(data: Mapping[str, Any]) -> ModelResult:
    """A model entry of any task kind, told apart by the key its metrics are stored under."""
    if "multilabel_metrics" in data:
        return MultilabelModelResult.from_json(data)
    if "regression_metrics" in data:
        return RegressionModelResult.from_json(data)
    return BinaryModelResult.from_json(data)


def _text_json(text: Mapping[str, Any] | None) -> Json | None:
    return None if text is None else dict(text)
