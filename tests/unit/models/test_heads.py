"""The heads: seeded, tuned on the tuning split, scikit-learn contract, and they learn a planted signal."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from ehrpredict.errors import ConfigError
from ehrpredict.models.heads import (
    EarlyStoppedLightGBM,
    EarlyStoppedLightGBMRegressor,
    TunedLogisticRegression,
    TunedRidge,
    make_head,
    make_regressor,
)


def _counts(n: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Sparse counts; the binary label depends on column 0, the regression target on columns 0 and 1."""
    rng = np.random.default_rng(seed)
    X = rng.poisson(1.0, size=(n, 20)).astype(np.float32)
    logit = 1.5 * (X[:, 0] - 1)
    y_binary = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    y_value = 2.0 * X[:, 0] + X[:, 1] + rng.normal(0, 0.5, n)
    return sp.csr_matrix(X), y_binary, y_value


def test_classifiers_learn_the_planted_signal_and_are_seeded() -> None:
    X, y, _ = _counts(600, 0)
    Xt, yt, _ = _counts(300, 1)
    for name in ("lr", "lgbm"):
        a = make_head(name, 0).fit(X, y, Xt, yt).predict_proba(Xt)[:, 1]
        b = make_head(name, 0).fit(X, y, Xt, yt).predict_proba(Xt)[:, 1]
        assert np.array_equal(a, b)
        assert np.corrcoef(a, Xt[:, 0].toarray().ravel())[0, 1] > 0.8


def test_logistic_regression_picks_c_on_the_tuning_split() -> None:
    X, y, _ = _counts(400, 0)
    Xt, yt, _ = _counts(200, 1)
    model = TunedLogisticRegression().fit(X, y, Xt, yt)
    assert model.C_ in model.c_grid
    assert model.tuning_auroc_[model.C_] == max(model.tuning_auroc_.values())


def test_log1p_off_keeps_negative_features_intact() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] < -0.5).astype(int)  # the signal lives in values below -0.99 that log1p would clip
    model = TunedLogisticRegression(log1p=False).fit(X, y, X, y)
    assert model.predict_proba(X)[:, 1][y == 1].mean() > 0.6


def test_one_class_training_labels_are_refused() -> None:
    X, _, _ = _counts(50, 0)
    with pytest.raises(ConfigError, match="both classes"):
        TunedLogisticRegression().fit(X, np.zeros(50, dtype=int))
    with pytest.raises(ConfigError, match="both classes"):
        EarlyStoppedLightGBM().fit(X, np.ones(50, dtype=int))


def test_regressors_beat_the_mean_and_ridge_tunes_alpha() -> None:
    X, _, y = _counts(600, 0)
    Xt, _, yt = _counts(300, 1)
    mean_mae = np.abs(yt - y.mean()).mean()
    for name in ("lr", "lgbm"):
        model = make_regressor(name, 0).fit(X, y, Xt, yt)
        assert np.abs(model.predict(Xt) - yt).mean() < 0.6 * mean_mae
    ridge = TunedRidge().fit(X, y, Xt, yt)
    assert ridge.tuning_mae_[ridge.alpha_] == min(ridge.tuning_mae_.values())
    boosted = EarlyStoppedLightGBMRegressor().fit(X, y, Xt, yt)
    assert 1 <= boosted.best_iteration_ <= 1000


def test_unknown_head_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="expected a head"):
        make_head("svm", 0)
    with pytest.raises(ConfigError, match="expected a head"):
        make_regressor("svm", 0)
