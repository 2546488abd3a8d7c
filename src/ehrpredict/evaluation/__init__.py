"""Evaluation of binary and multilabel risk predictions: metrics, patient-level bootstrap intervals,
paired model comparison and multiple-testing adjustment. numpy/scipy only."""

from ehrpredict.evaluation._validate import MetricInputError
from ehrpredict.evaluation.bootstrap import (
    BinaryMetrics,
    Estimate,
    PairedDelta,
    binary_report,
    holm,
    paired_delta_auroc,
    resample_weights,
)
from ehrpredict.evaluation.metrics import (
    Calibration,
    ThresholdMetrics,
    at_threshold,
    auprc,
    auroc,
    brier,
    calibration_slope_intercept,
    choose_threshold,
    ece,
)
from ehrpredict.evaluation.multilabel import MultilabelMetrics, multilabel_report, precision_at_k, tune_thresholds

__all__ = [
    "BinaryMetrics",
    "Calibration",
    "Estimate",
    "MetricInputError",
    "MultilabelMetrics",
    "PairedDelta",
    "ThresholdMetrics",
    "at_threshold",
    "auprc",
    "auroc",
    "binary_report",
    "brier",
    "calibration_slope_intercept",
    "choose_threshold",
    "ece",
    "holm",
    "multilabel_report",
    "paired_delta_auroc",
    "precision_at_k",
    "resample_weights",
    "tune_thresholds",
]
