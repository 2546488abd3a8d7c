"""Fixtures for integration tests. ``meds_evaluation`` checks a predictions parquet file with meds-evaluation
0.0.6 itself (scripts/meds_evaluation_check.py), in its own virtualenv under .cache/ that the first use builds
(~30-40 s, needs PyPI). When it cannot be built the test skips, unless EHRPREDICT_REQUIRE_MEDS_EVALUATION=1
(CI), where that is a failure."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MEDS_EVALUATION_CHECK = REPO / "scripts" / "meds_evaluation_check.py"
REQUIRE_MEDS_EVALUATION_ENV = "EHRPREDICT_REQUIRE_MEDS_EVALUATION"


@pytest.fixture(scope="session")
def meds_evaluation_script() -> ModuleType:
    """scripts/meds_evaluation_check.py as a module (scripts/ is not a package; the check stays out of src/)."""
    spec = importlib.util.spec_from_file_location("meds_evaluation_check", MEDS_EVALUATION_CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def meds_evaluation(meds_evaluation_script: ModuleType) -> Callable[[Path], Any]:
    """``check(path) -> MedsEvaluationReport``: meds-evaluation's schema check and AUROC against ours.

    Assert ``report.ok`` (its ``failures`` say why not), or read ``schema_error``, ``meds_evaluation_auroc``...
    """
    module = meds_evaluation_script
    try:
        module.ensure_venv(module.DEFAULT_VENV)
    except module.MedsEvaluationEnvError as error:
        message = f"meds-evaluation's virtualenv could not be built (PyPI unreachable?): {error}"
        if os.environ.get(REQUIRE_MEDS_EVALUATION_ENV) == "1":
            pytest.fail(f"{message}\n{REQUIRE_MEDS_EVALUATION_ENV}=1 makes this a failure")
        pytest.skip(f"{message} (set {REQUIRE_MEDS_EVALUATION_ENV}=1 to fail instead)")
    return partial(module.check_with_meds_evaluation, venv=module.DEFAULT_VENV)
