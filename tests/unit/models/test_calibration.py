"""Calibrator choice on the tuning split, calibrators as plain data, and threshold rules."""

from __future__ import annotations

import numpy as np
import pytest

from ehrpredict.bundle.fit import ThresholdRule
from ehrpredict.errors import ConfigError
from ehrpredict.evaluation import choose_threshold
from ehrpredict.models.calibration import (
    IdentityCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    calibrator_from_json,
    choose_calibrator,
)


def _sample(n: int, seed: int, warp: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores p whose true risk is p ** warp (warp 1: calibrated)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    return (rng.uniform(size=n) < p ** warp).astype(int), p


def test_well_calibrated_scores_can_be_left_alone_on_a_small_split() -> None:
    # On 60 calibrated rows, no recalibration and Platt scaling are close: which wins depends on the
    # sample. Whichever it is has the lowest cross-validated Brier score; on this sample it is none.
    for seed in range(6):
        y, p = _sample(60, seed=seed, warp=1.0)
        choice = choose_calibrator(y, p, seed=0)
        assert choice.cv_brier[choice.calibrator.method] == min(choice.cv_brier.values())
    y, p = _sample(60, seed=3, warp=1.0)
    choice = choose_calibrator(y, p, seed=0)
    assert isinstance(choice.calibrator, IdentityCalibrator)
    assert set(choice.cv_brier) == {"none", "platt"}  # too few for isotonic regression
    assert "isotonic regression not considered" in choice.reason


def test_strongly_miscalibrated_scores_get_a_map_that_lowers_the_brier_score() -> None:
    y, p = _sample(4000, seed=2, warp=3.0)
    choice = choose_calibrator(y, p, seed=0)
    assert choice.calibrator.method in ("platt", "isotonic")
    assert choice.cv_brier[choice.calibrator.method] < choice.cv_brier["none"]
    held_y, held_p = _sample(4000, seed=3, warp=3.0)
    before = np.mean((held_p - held_y) ** 2)
    after = np.mean((choice.calibrator.transform(held_p) - held_y) ** 2)
    assert after < before - 0.01


def test_too_few_of_a_class_to_cross_validate_falls_back_to_platt() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(0.1, 0.9, 12)[::-1]
    choice = choose_calibrator(y, p)
    assert isinstance(choice.calibrator, PlattCalibrator) and "too few" in choice.reason
    with pytest.raises(ConfigError, match="both classes"):
        choose_calibrator(np.zeros(10, dtype=int), p[:10])


@pytest.mark.parametrize("calibrator", [IdentityCalibrator(), PlattCalibrator(a=0.8, b=-0.3),
                                        IsotonicCalibrator(x=(0.1, 0.5, 0.9), y=(0.0, 0.2, 1.0))])
def test_calibrators_travel_as_json_and_apply_identically(calibrator: object) -> None:
    p = np.linspace(0.0, 1.0, 101)
    loaded = calibrator_from_json(calibrator.to_json())  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.transform(p), calibrator.transform(p))  # type: ignore[attr-defined]


def test_a_broken_calibrator_is_refused() -> None:
    with pytest.raises(ConfigError, match="method 'none', 'platt' or 'isotonic'"):
        calibrator_from_json({"method": "exec"})
    with pytest.raises(ConfigError, match="non-decreasing"):
        calibrator_from_json({"method": "isotonic", "x": [0.1, 0.5], "y": [0.9, 0.1]})


def test_threshold_rules() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0, 1, 1])
    p = np.linspace(0.05, 0.95, 10)
    assert ThresholdRule.parse("alert-rate:0.2").choose(y, p) == pytest.approx(0.85)  # flags 2 of 10
    assert (p >= ThresholdRule.parse("alert-rate:0.35").choose(y, p)).mean() <= 0.35
    t = ThresholdRule.parse("sensitivity:0.8").choose(y, p)
    assert (p[y == 1] >= t).mean() >= 0.8
    assert ThresholdRule.parse("max-youden").choose(y, p) == choose_threshold(y, p)
    for bad in ("youden", "sensitivity:", "alert-rate:0", "sensitivity:high"):
        with pytest.raises(ConfigError):
            ThresholdRule.parse(bad)
