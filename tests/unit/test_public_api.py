"""The public surface of ``import ehrpredict``: pinned, resolvable, and cheap to import.

Changing ``EXPECTED`` is an API change: a user's ``from ehrpredict import X`` depends on it."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

import ehrpredict

EXPECTED = [
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

HEAVY = ["polars", "pyarrow", "numpy", "scipy", "sklearn", "lightgbm", "torch", "sentence_transformers"]


def test_all_is_pinned() -> None:
    assert ehrpredict.__all__ == EXPECTED
    assert set(ehrpredict.__all__) == {"__version__", *ehrpredict._EXPORTS}  # every name has a module


@pytest.mark.parametrize("name", [n for n in EXPECTED if n != "__version__"])
def test_each_name_is_the_object_its_module_defines(name: str) -> None:
    value = getattr(ehrpredict, name)
    module = importlib.import_module(ehrpredict._EXPORTS[name])
    assert value is getattr(module, name)
    assert value.__module__ == module.__name__  # defined there, not re-exported from elsewhere
    assert name in dir(ehrpredict)


def test_from_import_star_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from ehrpredict import *", namespace)
    assert sorted(set(namespace) - {"__builtins__"}) == sorted(EXPECTED)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'ingest_mimic'"):
        ehrpredict.ingest_mimic  # type: ignore[attr-defined]  # noqa: B018
    with pytest.raises(ImportError):
        exec("from ehrpredict import not_a_name", {})


def test_import_is_cheap() -> None:
    """``import ehrpredict`` (and ``dir``) loads no heavy dependency: a fresh interpreter tells."""
    code = (
        "import sys, json, ehrpredict; dir(ehrpredict); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
