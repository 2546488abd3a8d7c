"""Check a predictions parquet file with meds-evaluation 0.0.6 itself, in its own virtualenv.

    python scripts/meds_evaluation_check.py PREDICTIONS.parquet [--venv DIR] [--json]

meds-evaluation needs polars 2 and the project pins polars<2 (es-aces), so it runs in a separate
virtualenv built from ``scripts/meds_evaluation_env/requirements.txt`` (default place
``.cache/meds-evaluation-venv``; rebuilt only when the requirements file or the interpreter change).
There, ``meds_evaluation_env/probe.py`` runs meds-evaluation's schema check and its binary metrics.
Here, ehrpredict's own AUROC is computed on the same file.

The check fails when meds-evaluation rejects the schema, when its evaluation raises, or, for a file
with exactly one row per subject, when its AUROC and ours differ by more than ``TOLERANCE``.
Exit codes: 0 pass, 1 fail, 3 the virtualenv could not be built (no PyPI?).

Tests use it through ``check_with_meds_evaluation(path, venv=...)`` (see tests/integration/conftest.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ehrpredict.evaluation import auroc
from ehrpredict.schema import BOOLEAN_VALUE, SUBJECT_ID

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
REQUIREMENTS = HERE / "meds_evaluation_env" / "requirements.txt"
PROBE = HERE / "meds_evaluation_env" / "probe.py"
DEFAULT_VENV = REPO / ".cache" / "meds-evaluation-venv"
STAMP = ".ehrpredict-requirements-stamp"

# meds-evaluation's PredictionSchema name for the score column; ehrpredict.schema has no constant for it yet
# (the predict writer will add one).
PREDICTED_BOOLEAN_PROBABILITY = "predicted_boolean_probability"

# With one row per subject, meds-evaluation's "subjects equally weighted" AUROC is sklearn's roc_auc_score on
# every row repeated samples_per_subject (4) times: repeating every row scales every positive/negative pair
# count by 16, so the AUROC is the plain one, and sklearn's trapezoids over at most n thresholds differ from
# our Mann-Whitney count by float rounding only (~n * 1e-16). A real disagreement (a row lost, a label
# flipped, a tie broken differently) moves the AUROC by at least 0.5 / (n_pos * n_neg), which is above 1e-9
# for files up to ~40,000 subjects at balanced classes.
TOLERANCE = 1e-9


class MedsEvaluationEnvError(RuntimeError):
    """meds-evaluation's virtualenv could not be built (most often: PyPI unreachable)."""


@dataclass(frozen=True)
class MedsEvaluationReport:
    """What meds-evaluation and ehrpredict say about one predictions file; ``ok`` is the verdict."""

    path: str
    n_rows: int
    n_subjects: int
    meds_evaluation_version: str
    schema_error: str | None  # meds-evaluation rejected the file (None: accepted)
    exact_types_error: str | None  # its strict validate before its safe casts (informational)
    casts: tuple[str, ...]  # the casts its align applied, e.g. "predicted_boolean_probability: double -> float"
    evaluation_error: str | None
    samples_per_subject: int
    resampling_seed: int
    meds_evaluation_auroc: float | None  # "subjects_equally_weighted" roc_auc_score
    meds_evaluation_auroc_per_row: float | None  # "samples_equally_weighted" roc_auc_score
    ehrpredict_auroc: float | None  # on the file's float64 probabilities
    ehrpredict_auroc_float32: float | None  # on the probabilities cast to float32, as meds-evaluation scores them
    ehrpredict_error: str | None
    auroc_compared: bool  # only with exactly one row per subject
    tolerance: float
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "ok": self.ok}


def _stamp_text(requirements: Path) -> str:
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    return f"{digest} python-{sys.version_info.major}.{sys.version_info.minor}\n"


def ensure_venv(venv: Path = DEFAULT_VENV, requirements: Path = REQUIREMENTS) -> Path:
    """Build the virtualenv at ``venv`` from ``requirements`` unless its stamp says it is already built.

    Idempotent and safe to call from parallel test workers (a file lock beside ``venv``). Returns the venv's
    python. Raises :class:`MedsEvaluationEnvError` with pip's last lines when the build fails.
    """
    python = venv / "bin" / "python"
    stamp = venv / STAMP
    want = _stamp_text(requirements)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == want and python.exists():
            return python
        # A half-built or outdated env is removed, not patched: pip would leave packages the new pins dropped.
        shutil.rmtree(venv, ignore_errors=True)
        print(f"building meds-evaluation's virtualenv at {venv} (about 30 s)", file=sys.stderr, flush=True)
        start = time.monotonic()
        _run_build([sys.executable, "-m", "venv", str(venv)])
        _run_build([str(python), "-I", "-m", "pip", "install", "--quiet", "-r", str(requirements)])
        stamp.write_text(want)
        print(f"built in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    return python


def _run_build(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=_clean_env())
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise MedsEvaluationEnvError(f"expected `{' '.join(command)}` to succeed, got exit {done.returncode}:\n{tail}")


def _clean_env() -> dict[str, str]:
    """The environment minus PYTHONPATH/PYTHONHOME: our src/ (polars 1) must not leak into the polars-2 env."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@dataclass(frozen=True)
class _Probe:
    """probe.py's JSON, field for field."""

    meds_evaluation_version: str
    polars_version: str
    samples_per_subject: int
    resampling_seed: int
    exact_types_error: str | None
    casts: list[str]
    schema_error: str | None
    evaluation_error: str | None
    auroc_subjects_equally_weighted: float | None
    auroc_samples_equally_weighted: float | None


def run_probe(path: Path, python: Path) -> _Probe:
    """meds-evaluation's verdict on ``path``; raises if the probe itself crashes."""
    done = subprocess.run(
        [str(python), "-I", str(PROBE), str(path)], capture_output=True, text=True, env=_clean_env()
    )
    if done.returncode != 0:
        raise RuntimeError(f"expected meds-evaluation's probe to run, got exit {done.returncode}:\n{done.stderr}")
    return _Probe(**json.loads(done.stdout))


def _ours(frame: pl.DataFrame) -> tuple[float, float]:
    """ehrpredict's AUROC on the float64 probabilities and on them cast to float32 (what meds-evaluation sees)."""
    y = frame[BOOLEAN_VALUE].to_numpy()
    p = frame[PREDICTED_BOOLEAN_PROBABILITY].cast(pl.Float64).to_numpy()
    return auroc(y, p), auroc(y, p.astype(np.float32).astype(np.float64))


def check_with_meds_evaluation(
    path: Path, *, venv: Path = DEFAULT_VENV, tolerance: float = TOLERANCE
) -> MedsEvaluationReport:
    """Run meds-evaluation's schema check and AUROC on ``path`` and compare its AUROC with ours.

    Builds the virtualenv first if needed (raises :class:`MedsEvaluationEnvError` if that fails).
    """
    theirs = run_probe(path, ensure_venv(venv))
    frame = pl.read_parquet(path)
    n_subjects = frame[SUBJECT_ID].n_unique() if SUBJECT_ID in frame.columns else 0
    failures: list[str] = []
    if theirs.schema_error:
        failures.append(f"meds-evaluation rejected the schema: {theirs.schema_error}")
    if theirs.evaluation_error:
        failures.append(f"meds-evaluation's evaluation raised {theirs.evaluation_error}")
    ours: tuple[float | None, float | None] = (None, None)
    ours_error = None
    try:
        ours = _ours(frame)
    except (pl.exceptions.ColumnNotFoundError, ValueError) as error:
        ours_error = f"{type(error).__name__}: {error}"
    their_auroc = theirs.auroc_subjects_equally_weighted
    compared = frame.height == n_subjects and their_auroc is not None
    if compared and (their_auroc is None or ours[1] is None or abs(their_auroc - ours[1]) > tolerance):
        failures.append(
            f"expected meds-evaluation's AUROC {their_auroc!r} to equal ehrpredict's {ours[1]!r} "
            f"(probabilities cast to float32 as it does) within {tolerance:g}"
            + (f"; {ours_error}" if ours_error else "")
        )
    return MedsEvaluationReport(
        path=str(path),
        n_rows=frame.height,
        n_subjects=n_subjects,
        meds_evaluation_version=theirs.meds_evaluation_version,
        schema_error=theirs.schema_error,
        exact_types_error=theirs.exact_types_error,
        casts=tuple(theirs.casts),
        evaluation_error=theirs.evaluation_error,
        samples_per_subject=theirs.samples_per_subject,
        resampling_seed=theirs.resampling_seed,
        meds_evaluation_auroc=their_auroc,
        meds_evaluation_auroc_per_row=theirs.auroc_samples_equally_weighted,
        ehrpredict_auroc=ours[0],
        ehrpredict_auroc_float32=ours[1],
        ehrpredict_error=ours_error,
        auroc_compared=compared,
        tolerance=tolerance,
        failures=tuple(failures),
    )


def _summary(report: MedsEvaluationReport) -> str:
    lines = [
        f"meds-evaluation {report.meds_evaluation_version} on {report.path} "
        f"({report.n_rows} rows, {report.n_subjects} subjects)",
        f"  schema check: {'passed' if report.schema_error is None else 'FAILED: ' + report.schema_error}",
    ]
    if report.casts:
        lines.append(f"  its safe casts: {', '.join(report.casts)}")
    lines += [
        f"  its AUROC ({report.samples_per_subject} rows drawn per subject, seed {report.resampling_seed}): "
        f"{report.meds_evaluation_auroc}",
        f"  ehrpredict AUROC: {report.ehrpredict_auroc} (float32 probabilities: {report.ehrpredict_auroc_float32})",
        f"  AUROCs compared: {_compared(report)}",
    ]
    if report.ehrpredict_auroc != report.ehrpredict_auroc_float32:
        lines.append("  note: its float32 cast of the probabilities ties some of them and changes the AUROC")
    lines += [f"  FAIL: {failure}" for failure in report.failures]
    lines.append("ok" if report.ok else "failed")
    return "\n".join(lines)


def _compared(report: MedsEvaluationReport) -> str:
    if report.auroc_compared:
        return f"yes, one row per subject, within {report.tolerance:g}"
    if report.meds_evaluation_auroc is None:
        return "no (meds-evaluation computed none)"
    return "no (not exactly one row per subject: it draws rows at random)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path, help="predictions parquet file (MEDS prediction schema)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"default: {DEFAULT_VENV}")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    args = parser.parse_args(argv)
    if not args.predictions.is_file():
        parser.error(f"expected a parquet file, got {args.predictions}")
    try:
        report = check_with_meds_evaluation(args.predictions, venv=args.venv)
    except MedsEvaluationEnvError as error:
        print(f"error: meds-evaluation's virtualenv could not be built: {error}", file=sys.stderr)
        return 3
    print(json.dumps(report.to_json(), indent=2) if args.json else _summary(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
