"""ehrpredict: raw electronic health records → validated clinical risk predictions.

The names a user needs from Python are importable from the package itself; ``__all__`` lists them and
``tests/unit/test_public_api.py`` pins the list, so moving a module never silently breaks an import.
Nothing runs at import: each name loads its module (and polars, scikit-learn, ...) on first use.

    >>> import ehrpredict
    >>> ehrpredict.load_task("aki_48h").name
    'aki_48h'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name → the module that defines it, loaded on first attribute access.
_EXPORTS: dict[str, str] = {
    # ingest: MIMIC-IV or MEDS files → a MEDS dataset
    "IngestConfig": "ehrpredict.ingest.mimic4",
    "IngestResult": "ehrpredict.ingest.mimic4",
    "ingest_mimic4": "ehrpredict.ingest.mimic4",
    "normalize_meds": "ehrpredict.ingest.meds_input",
    # a MEDS dataset on disk
    "DatasetInfo": "ehrpredict.dataset",
    "dataset_info": "ehrpredict.dataset",
    "dataset_fingerprint": "ehrpredict.dataset",
    # tasks: YAML spec → labels
    "TaskSpec": "ehrpredict.tasks.spec",
    "load_task": "ehrpredict.tasks.spec",
    "parse_task": "ehrpredict.tasks.spec",
    "LabelResult": "ehrpredict.tasks.labeler",
    "label_dataset": "ehrpredict.tasks.labeler",
    "label_many": "ehrpredict.tasks.labeler",
    # features: labels → matrices (scikit-learn transformers)
    "CountsFeaturizer": "ehrpredict.features.counts",
    "TextFeaturizer": "ehrpredict.features.text",
    # where featurizers read events, and where per-shard work runs
    "EventSource": "ehrpredict.events.source",
    "ParquetEvents": "ehrpredict.events.source",
    "InMemoryEvents": "ehrpredict.events.source",
    "Executor": "ehrpredict.executor",
    "LocalExecutor": "ehrpredict.executor",
    # representations and the one training path
    "RepresentationSettings": "ehrpredict.features.registry",
    "TaskData": "ehrpredict.pipeline",
    "fit_pipeline": "ehrpredict.pipeline",
    "FittedPipeline": "ehrpredict.pipeline",
    # benchmark: representations × heads on one dataset and task
    "BenchmarkConfig": "ehrpredict.experiments.config",
    "run_benchmark": "ehrpredict.experiments.benchmark",
    # kept models: fit → bundle → predict / explain
    "Bundle": "ehrpredict.bundle.model",
    "BundleError": "ehrpredict.bundle.files",
    "load_bundle": "ehrpredict.bundle.model",
    "fit_bundle": "ehrpredict.bundle.fit",
    "predict_bundle": "ehrpredict.bundle.predict",
    # errors
    "EhrPredictError": "ehrpredict.errors",
    "DataError": "ehrpredict.errors",
    "SchemaError": "ehrpredict.errors",
    "ConfigError": "ehrpredict.errors",
    "LeakageError": "ehrpredict.errors",
    "EncoderError": "ehrpredict.errors",
}

# Spelled out (not built from _EXPORTS) so linters and type checkers read it; a test checks they agree.
__all__ = [
    "BenchmarkConfig",
    "Bundle",
    "BundleError",
    "ConfigError",
    "CountsFeaturizer",
    "DataError",
    "DatasetInfo",
    "EhrPredictError",
    "EncoderError",
    "EventSource",
    "Executor",
    "FittedPipeline",
    "InMemoryEvents",
    "IngestConfig",
    "IngestResult",
    "LabelResult",
    "LeakageError",
    "LocalExecutor",
    "ParquetEvents",
    "RepresentationSettings",
    "SchemaError",
    "TaskData",
    "TaskSpec",
    "TextFeaturizer",
    "__version__",
    "dataset_fingerprint",
    "dataset_info",
    "fit_bundle",
    "fit_pipeline",
    "ingest_mimic4",
    "label_dataset",
    "label_many",
    "load_bundle",
    "load_task",
    "normalize_meds",
    "parse_task",
    "predict_bundle",
    "run_benchmark",
]

if TYPE_CHECKING:  # the real types for mypy and editors; at runtime __getattr__ loads them
    from ehrpredict.bundle.files import BundleError
    from ehrpredict.bundle.fit import fit_bundle
    from ehrpredict.bundle.model import Bundle, load_bundle
    from ehrpredict.bundle.predict import predict_bundle
    from ehrpredict.dataset import DatasetInfo, dataset_fingerprint, dataset_info
    from ehrpredict.errors import ConfigError, DataError, EhrPredictError, EncoderError, LeakageError, SchemaError
    from ehrpredict.events.source import EventSource, InMemoryEvents, ParquetEvents
    from ehrpredict.executor import Executor, LocalExecutor
    from ehrpredict.experiments.benchmark import run_benchmark
    from ehrpredict.experiments.config import BenchmarkConfig
    from ehrpredict.features.counts import CountsFeaturizer
    from ehrpredict.features.registry import RepresentationSettings
    from ehrpredict.features.text import TextFeaturizer
    from ehrpredict.ingest.meds_input import normalize_meds
    from ehrpredict.ingest.mimic4 import IngestConfig, IngestResult, ingest_mimic4
    from ehrpredict.pipeline import FittedPipeline, TaskData, fit_pipeline
    from ehrpredict.tasks.labeler import LabelResult, label_dataset, label_many
    from ehrpredict.tasks.spec import TaskSpec, load_task, parse_task


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ehrpredict' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
