"""The typed results of a benchmark run and their JSON: built by hand here, and compared key by key with
the layout `ehrpredict benchmark` has always written to report.json (tests/integration/test_benchmark.py
checks the same on a real run, byte for byte)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from ehrpredict.errors import DataError
from ehrpredict.evaluation import binary_report, multilabel_report
from ehrpredict.evaluation.bootstrap import BinaryMetrics, Estimate
from ehrpredict.evaluation.curves import binary_curves
from ehrpredict.evaluation.regression import RegressionMetrics
from ehrpredict.experiments.results import (
    BenchmarkReport,
    BinaryModelResult,
    BinarySplit,
    Comparison,
    Curves,
    DatasetRef,
    FewShotCurve,
    FewShotPoint,
    MultilabelModelResult,
    MultilabelSplit,
    MultilabelSummary,
    OracleResult,
    RegressionModelResult,
    RegressionSplit,
    ShuffleControl,
    ShuffleScore,
    SubgroupResult,
    TaskResult,
    metrics_to_json,
)

NAN = float("nan")
Y = [0, 0, 0, 1, 1, 0, 1, 0]
P = [0.1, 0.3, 0.2, 0.8, 0.4, 0.5, 0.9, 0.35]


def dumps(data: Any) -> str:
    """As ingest.output.write_json writes report.json."""
    return json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"


def estimate(value: float) -> Estimate:
    return Estimate(value, value - 0.1, value + 0.1)


def binary_metrics() -> BinaryMetrics:
    return binary_report(Y, P, groups=list(range(8)), threshold=0.45, n_boot=20, seed=0)


def binary_model(**changes: Any) -> BinaryModelResult:
    fields: dict[str, Any] = {
        "representation": "counts", "head": "lr", "n_features": 12, "metrics": binary_metrics(),
        "label_shuffle_control": ShuffleControl(permutations=2, scores={
            "auroc": ShuffleScore(value=0.5, sd=0.1, min=0.4, max=0.6, replicates=(0.4, 0.6))}),
        "curves": Curves.from_json(binary_curves(Y, P)),
        "subgroups": {"sex": {"F": SubgroupResult(n=40, positives=9, status="done", metrics=binary_metrics()),
                              "M": SubgroupResult(n=3, positives=0, status="too few to evaluate")}},
        "few_shot": FewShotCurve(points=(
            FewShotPoint(k=1, status="done", auroc_mean=0.6, auroc_sd=0.05, auroc_replicates=(0.6,) * 5),
            FewShotPoint(k=2, status="fewer than 2 positives or negatives in train or tuning"))),
        "featurize_seconds": 0.5, "seconds": 1.25,
    }
    return BinaryModelResult(**{**fields, **changes})


def regression_model() -> RegressionModelResult:
    metrics = RegressionMetrics(n=10, n_patients=9, mean=4.2, mae=estimate(1.9), rmse=estimate(2.8), r2=estimate(0.3),
                                n_boot=20, seed=0)
    control = ShuffleControl(permutations=2, scores={
        "r2": ShuffleScore(value=NAN, sd=NAN, min=NAN, max=NAN, replicates=(NAN, NAN)),
        "mae": ShuffleScore(value=2.0, sd=0.0, min=2.0, max=2.0, replicates=(2.0, 2.0))})
    return RegressionModelResult(representation="text", head="lgbm", n_features=384, metrics=metrics,
                                 label_shuffle_control=control, featurize_seconds=7.0,
                                 text={"dimension": 384, "serializer": {"format": "markdown"}}, seconds=2.0)


def multilabel_model() -> MultilabelModelResult:
    metrics = multilabel_report([[1, 0, 0], [0, 1, 0], [1, 1, 0]], [[0.9, 0.2, 0.1], [0.3, 0.7, 0.2], [0.6, 0.6, 0.3]],
                                [0.5, 0.5, 0.5])
    return MultilabelModelResult(representation="counts", head="lr (one-vs-rest)", n_features=50,
                                 metrics=MultilabelSummary.from_metrics(metrics), categories=3)


def make_report() -> BenchmarkReport:
    binary = TaskResult(
        name="mortality", splits={"train": BinarySplit(n=100, positives=20, prevalence=0.2),
                                  "held_out": BinarySplit(n=8, positives=3, prevalence=0.375)},
        models=(binary_model(), binary_model(head="lgbm", few_shot=None)),
        comparisons=(Comparison(a="counts/lgbm", b="counts/lr", delta_auroc=0.01, ci=(-0.1, 0.12), p_value=0.8,
                                n_boot=20, p_value_holm=1.0),),
        oracle=OracleResult(status="done", matched=8, of=8, metrics=binary_metrics(),
                            curves=Curves.from_json(binary_curves(Y, P))), seconds=3.5)
    regression = TaskResult(name="los", splits={"train": RegressionSplit(n=100, mean=4.2, sd=3.1)},
                            models=(regression_model(),), oracle=OracleResult(status="no single oracle anchor"))
    multilabel = TaskResult(name="diagnoses", splits={"train": MultilabelSplit(n=3, categories=3, prevalence=0.0)},
                            models=(multilabel_model(),), oracle=OracleResult(status="too few matched episodes",
                                                                               matched=4))
    skipped = TaskResult(name="time_to_death", status="skipped", reason="time_to_event tasks are not benchmarked yet")
    return BenchmarkReport(version="0.1.0", created_by="ehrpredict benchmark",
                           config={"seed": 0, "n_boot": 20, "tasks": ["all"]},
                           dataset=DatasetRef(path="/data/meds", fingerprint="0123"),
                           environment={"python": "3.11.7"}, seconds=12.3,
                           tasks=(binary, regression, multilabel, skipped))


def test_a_report_reads_back_from_its_json_unchanged() -> None:
    text = dumps(make_report().to_json())
    again = BenchmarkReport.from_json(json.loads(text))
    assert dumps(again.to_json()) == text
    assert again.tasks[3] == make_report().tasks[3]  # no NaN in it, so == can compare
    assert again.dataset == DatasetRef(path="/data/meds", fingerprint="0123")


def test_every_entry_has_the_keys_of_the_report_json_layout_in_order() -> None:
    tasks = make_report().to_json()["tasks"]
    assert list(make_report().to_json()) == ["ehrpredict_version", "created_by", "config", "dataset", "environment",
                                             "seconds", "tasks"]
    assert list(tasks[0]) == ["task", "status", "reason", "splits", "models", "comparisons", "oracle", "seconds"]
    binary, regression, multilabel = tasks[0]["models"][0], tasks[1]["models"][0], tasks[2]["models"][0]
    assert list(binary) == ["representation", "head", "n_features", "metrics", "label_shuffle_control", "curves",
                            "subgroups", "few_shot", "featurize_seconds", "text", "seconds"]
    assert list(regression) == ["representation", "head", "n_features", "regression_metrics",
                                "label_shuffle_control", "featurize_seconds", "text", "seconds"]
    assert list(multilabel) == ["representation", "head", "n_features", "multilabel_metrics", "categories"]
    assert [list(t["splits"]["train"]) for t in tasks[:3]] == [["n", "positives", "prevalence"], ["n", "mean", "sd"],
                                                               ["n", "categories", "prevalence"]]
    assert list(tasks[0]["comparisons"][0]) == ["a", "b", "delta_auroc", "ci", "p_value", "n_boot", "p_value_holm"]
    assert list(binary["label_shuffle_control"]) == ["permutations", "auroc"]
    assert list(binary["curves"]) == ["roc", "pr", "calibration"]
    assert binary["few_shot"] == {"1": {"status": "done", "auroc_mean": 0.6, "auroc_sd": 0.05,
                                        "auroc_replicates": [0.6] * 5},
                                  "2": {"status": "fewer than 2 positives or negatives in train or tuning"}}
    assert tasks[0]["models"][1]["few_shot"] is None and binary["text"] is None
    assert binary["subgroups"]["sex"]["M"] == {"n": 3, "positives": 0, "status": "too few to evaluate"}


def test_oracle_keys_follow_its_status() -> None:
    tasks = make_report().to_json()["tasks"]
    assert list(tasks[0]["oracle"]) == ["status", "matched", "of", "metrics", "curves"]
    assert tasks[1]["oracle"] == {"status": "no single oracle anchor"}
    assert tasks[2]["oracle"] == {"status": "too few matched episodes", "matched": 4}
    assert tasks[3]["oracle"] is None


def test_undefined_metrics_are_null_and_read_back_as_nan() -> None:
    metrics = binary_report([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], groups=[1, 1, 1, 2], threshold=0.5, n_boot=10)
    assert any(math.isnan(getattr(metrics, name).ci_low) for name in ("auroc", "calibration_slope"))
    model = binary_model(metrics=metrics)
    written = dumps(model.to_json())
    assert "NaN" not in written and "null" in written
    again = BinaryModelResult.from_json(json.loads(written))
    assert dumps(metrics_to_json(again.metrics)) == dumps(metrics_to_json(metrics))


def test_a_nan_outside_the_metrics_stays_nan_as_the_benchmark_wrote_it() -> None:
    written = dumps(regression_model().to_json())
    assert '"value": NaN' in written  # the control's R² of constant labels, not passed through the metrics' null
    again = RegressionModelResult.from_json(json.loads(written))
    assert math.isnan(again.label_shuffle_control.scores["r2"].value) and dumps(again.to_json()) == written


def test_multilabel_summary_counts_the_present_labels_and_drops_per_label_f1() -> None:
    summary = multilabel_model().metrics
    assert summary.labels_present == 2 and summary.n_labels == 3
    assert list(summary.to_json()) == ["n", "n_labels", "labels_present", "micro_f1", "macro_f1", "precision_at_k",
                                       "k", "mean_average_precision"]


def test_curves_read_the_evaluation_librarys_output() -> None:
    curves = binary_curves(Y, P)
    assert Curves.from_json(curves).to_json() == curves


def test_ints_and_floats_keep_their_json_spelling() -> None:
    split = {"n": 5, "positives": 0, "prevalence": 0.0}
    task = {"task": "t", "status": "skipped", "reason": "r", "splits": {"train": split}, "models": [],
            "comparisons": [], "oracle": None, "seconds": 0.0}
    assert dumps(TaskResult.from_json(task).to_json()) == dumps(task)  # 0.0 stays 0.0, 0 stays 0


def test_a_malformed_report_names_the_task_and_the_missing_key() -> None:
    data = make_report().to_json()
    del data["tasks"][1]["models"][0]["regression_metrics"]["rmse"]
    with pytest.raises(DataError, match=r"tasks\[1\] \(los\).*no key 'rmse'"):
        BenchmarkReport.from_json(data)
    with pytest.raises(DataError, match="expected a benchmark report with 'tasks'"):
        BenchmarkReport.from_json({"ehrpredict_version": "0.1.0"})


def test_results_are_frozen() -> None:
    with pytest.raises(AttributeError):
        make_report().tasks[0].status = "skipped"  # type: ignore[misc]
