"""Our predictions files against meds-evaluation 0.0.6 itself (its own virtualenv; see conftest.py): its schema
check accepts a file written by polars 1.x, and its AUROC equals ours when there is one row per subject."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest

from ehrpredict.schema import BOOLEAN_VALUE, PREDICTION_TIME, SUBJECT_ID

PROBABILITY = "predicted_boolean_probability"
PREDICTED_VALUE = "predicted_boolean_value"


def predictions(n_subjects: int = 300, max_rows: int = 1, seed: int = 0) -> pl.DataFrame:
    """MEDS prediction-schema rows as our writer makes them: int64 ids, Datetime("us") times (with microseconds),
    float64 probabilities, bools. Logit = 1.5·y + N(0, 1), so the AUROC is about Φ(1.5/√2) ≈ 0.86."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, max_rows + 1, size=n_subjects)
    subject = np.repeat(np.arange(1000, 1000 + n_subjects), rows)
    y = rng.random(subject.size) < 0.3
    p = 1.0 / (1.0 + np.exp(-(1.5 * y - 1.0 + rng.normal(size=subject.size))))
    start = datetime(2031, 5, 1, 8, 30, 15, 123456)
    times = [start + timedelta(hours=int(h), microseconds=int(u)) for h, u in rng.integers(0, 10**4, (subject.size, 2))]
    return pl.DataFrame(
        {
            SUBJECT_ID: pl.Series(subject, dtype=pl.Int64),
            PREDICTION_TIME: pl.Series(times, dtype=pl.Datetime("us")),
            PROBABILITY: pl.Series(p, dtype=pl.Float64),
            PREDICTED_VALUE: pl.Series(p >= 0.5, dtype=pl.Boolean),
            BOOLEAN_VALUE: pl.Series(y, dtype=pl.Boolean),
        }
    )


def test_one_row_per_subject_schema_passes_and_aurocs_agree(
    tmp_path: Path,
    meds_evaluation: Callable[[Path], Any],
    meds_evaluation_script: ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "predictions.parquet"
    predictions().write_parquet(path)

    assert meds_evaluation_script.main([str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)

    assert report["ok"], report["failures"]
    assert report["schema_error"] is None
    assert report["auroc_compared"] and report["n_rows"] == report["n_subjects"] == 300
    # its align casts our float64 probabilities to float32; here no two of them collide in float32, so its AUROC
    # equals ours on the float64 values as well
    assert report["casts"] == [f"{PROBABILITY}: double -> float"]
    assert report["meds_evaluation_auroc"] == pytest.approx(report["ehrpredict_auroc"], abs=1e-9)
    assert 0.75 < report["ehrpredict_auroc"] < 0.95


def test_several_rows_per_subject_pass_the_schema_check(tmp_path: Path, meds_evaluation: Callable[[Path], Any]) -> None:
    path = tmp_path / "predictions.parquet"
    predictions(max_rows=5, seed=1).write_parquet(path)

    report = meds_evaluation(path)

    assert report.ok, report.failures
    assert report.n_rows > report.n_subjects == 300
    # with several rows per subject it draws 4 rows per subject at random, so its AUROC is not ours
    assert not report.auroc_compared and report.meds_evaluation_auroc is not None


def test_extra_columns_are_rejected(tmp_path: Path, meds_evaluation: Callable[[Path], Any]) -> None:
    """meds-evaluation 0.0.6 inherits meds.LabelSchema's allow_extra_columns = False (its README says otherwise)."""
    path = tmp_path / "predictions.parquet"
    predictions(n_subjects=20).with_columns(explanation=pl.lit("age > 80")).write_parquet(path)

    report = meds_evaluation(path)

    assert not report.ok
    assert report.schema_error == "SchemaValidationError: Disallowed extra columns: explanation"


def test_a_null_label_fails_the_schema_check(tmp_path: Path, meds_evaluation: Callable[[Path], Any]) -> None:
    """align alone lets it through when it must cast a column (our float64 probabilities); validating the aligned
    table, as the check does, catches it."""
    path = tmp_path / "predictions.parquet"
    label = pl.when(pl.col(SUBJECT_ID) == 1003).then(None).otherwise(pl.col(BOOLEAN_VALUE))
    predictions(n_subjects=20).with_columns(label.alias(BOOLEAN_VALUE)).write_parquet(path)

    report = meds_evaluation(path)

    assert not report.ok
    assert report.schema_error == f"TableValidationError: Columns that should have no nulls but do: {BOOLEAN_VALUE}"


def test_env_is_reused_and_a_failed_build_says_why(
    tmp_path: Path,
    meds_evaluation: Callable[[Path], Any],
    meds_evaluation_script: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = meds_evaluation_script
    stamp = check.DEFAULT_VENV / check.STAMP
    built = stamp.stat().st_mtime_ns
    check.ensure_venv(check.DEFAULT_VENV)
    assert stamp.stat().st_mtime_ns == built

    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as if PyPI were unreachable
    with pytest.raises(check.MedsEvaluationEnvError, match="pip install"):
        check.ensure_venv(tmp_path / "venv")
    assert not (tmp_path / "venv" / check.STAMP).exists()
