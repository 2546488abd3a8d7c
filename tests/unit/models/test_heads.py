"""The heads: seeded, tuned on the tuning split (given keyword-only, transformed like the training data
inside the pipeline), binary classifiers refuse what they cannot learn, and they learn a planted signal."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MaxAbsScaler

from ehrpredict.errors import ConfigError
from ehrpredict.models.classifiers import EarlyStoppedLightGBM, TunedLogisticRegression
from ehrpredict.models.heads import HeadPipeline, make_head, make_regressor
from ehrpredict.models.multilabel import make_multilabel_head
from ehrpredict.models.preprocess import Log1pTransformer, impute_missing, log1p
from ehrpredict.models.regressors import EarlyStoppedLightGBMRegressor, TunedRidge


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
        a = make_head(name, 0).fit(X, y, X_val=Xt, y_val=yt).predict_proba(Xt)[:, 1]
        b = make_head(name, 0).fit(X, y, X_val=Xt, y_val=yt).predict_proba(Xt)[:, 1]
        assert np.array_equal(a, b)
        assert np.corrcoef(a, Xt[:, 0].toarray().ravel())[0, 1] > 0.8


def test_the_pipeline_hands_the_head_a_tuning_split_preprocessed_like_the_training_data() -> None:
    X, y, v = _counts(400, 0)
    Xt, yt, vt = _counts(200, 1)
    scaler = MaxAbsScaler().fit(log1p(X))
    imputer = impute_missing().fit(scaler.transform(log1p(X)))
    prepared, prepared_tune = (imputer.transform(scaler.transform(log1p(M))) for M in (X, Xt))
    by_hand = TunedLogisticRegression().fit(prepared, y, X_val=prepared_tune, y_val=yt)
    piped = make_head("lr", 0).fit(X, y, X_val=Xt, y_val=yt)
    assert piped["head"].tuning_auroc_ == by_hand.tuning_auroc_
    assert np.array_equal(piped.predict_proba(Xt), by_hand.predict_proba(prepared_tune))
    ridge = TunedRidge().fit(prepared, v, X_val=prepared_tune, y_val=vt)
    assert make_regressor("lr", 0).fit(X, v, X_val=Xt, y_val=vt)["head"].tuning_mae_ == ridge.tuning_mae_


def test_logistic_regression_picks_c_on_the_tuning_split() -> None:
    X, y, _ = _counts(400, 0)
    Xt, yt, _ = _counts(200, 1)
    model = make_head("lr", 0).fit(X, y, X_val=Xt, y_val=yt)["head"]
    assert model.C_ in model.c_grid
    assert model.tuning_auroc_[model.C_] == max(model.tuning_auroc_.values())


def test_without_a_usable_tuning_split_the_heads_take_their_defaults() -> None:
    X, y, v = _counts(300, 0)
    Xt, _, _ = _counts(100, 1)
    one_class = np.zeros(100, dtype=int)
    for tuning in ({}, {"X_val": Xt, "y_val": one_class}):  # AUROC needs both classes
        lr = TunedLogisticRegression().fit(X, y, **tuning)
        assert (lr.C_, lr.tuning_auroc_) == (1.0, {})
        assert EarlyStoppedLightGBM(n_jobs=1).fit(X, y, **tuning).best_iteration_ == 200
    ridge = TunedRidge().fit(X, v)
    assert ridge.alpha_ == 1.0
    assert EarlyStoppedLightGBMRegressor(n_jobs=1).fit(X, v).best_iteration_ == 200


def test_tuning_data_is_keyword_only_and_comes_in_pairs() -> None:
    X, y, _ = _counts(100, 0)
    with pytest.raises(TypeError):
        make_head("lr", 0).fit(X, y, X, y)  # type: ignore[misc]
    with pytest.raises(ValueError, match="y_val was not provided"):
        TunedLogisticRegression().fit(X, y, X_val=X)
    with pytest.raises(ValueError, match="X_val was not provided"):
        make_head("lr", 0).fit(X, y, y_val=y)
    with pytest.raises(ValueError, match="among the training classes"):
        TunedLogisticRegression().fit(X, y, X_val=X, y_val=np.full(100, 2))


def test_a_tuning_split_never_skips_the_preprocessing() -> None:
    X, y, _ = _counts(100, 0)
    bare = HeadPipeline([("log1p", Log1pTransformer()), ("head", TunedLogisticRegression())])
    with pytest.raises(ConfigError, match="transform_input"):
        bare.fit(X, y, X_val=X, y_val=y)


def test_metadata_routing_is_on_only_inside_fit() -> None:
    X, y, _ = _counts(100, 0)
    make_head("lr", 0).fit(X, y, X_val=X, y_val=y)
    assert sklearn.get_config()["enable_metadata_routing"] is False


def test_log1p_off_keeps_negative_features_intact() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] < -0.5).astype(int)  # the signal lives in values below -0.99 that log1p would clip
    model = make_head("lr", 0, log1p=False).fit(X, y, X_val=X, y_val=y)
    assert [name for name, _ in model.steps] == ["scale", "impute", "head"]
    assert model.predict_proba(X)[:, 1][y == 1].mean() > 0.6


def test_every_head_trains_on_missing_values_and_the_linear_ones_see_them_as_missing() -> None:
    # The counts' age and hours since the visit start are NaN when unknown (stored explicitly in the
    # sparse matrix). LightGBM routes NaN itself; the linear heads impute 0 and add an indicator, so a
    # label that depends on "unknown" alone is learnable by logistic regression too.
    rng = np.random.default_rng(0)
    n = 600
    missing = rng.random(n) < 0.3
    hours = np.where(missing, np.nan, rng.uniform(0, 48, n))
    y = (rng.random(n) < np.where(missing, 0.8, 0.2)).astype(int)
    X = sp.csr_matrix(np.column_stack([rng.poisson(1.0, n), hours]).astype(np.float32))
    assert np.isnan(X.data).sum() == missing.sum()  # NaN stored, not dropped as a zero
    for name in ("lr", "lgbm"):
        model = make_head(name, 0).fit(X, y, X_val=X, y_val=y)
        p = model.predict_proba(X)[:, 1]
        assert np.isfinite(p).all()
        assert p[missing].mean() > p[~missing].mean() + 0.3, name
        assert model.__sklearn_tags__().input_tags.allow_nan
    Y = np.column_stack([y, 1 - y])
    assert np.isfinite(make_multilabel_head(0).fit(X, Y).predict_proba(X)).all()
    assert not HeadPipeline([("head", TunedLogisticRegression())]).__sklearn_tags__().input_tags.allow_nan


def test_classifiers_refuse_one_class_and_multiclass_targets() -> None:
    X, _, _ = _counts(60, 0)
    for head in (TunedLogisticRegression(), EarlyStoppedLightGBM(n_jobs=1)):
        with pytest.raises(ValueError, match="both classes"):
            head.fit(X, np.ones(60, dtype=int))
        with pytest.raises(ValueError, match="Only binary"):
            head.fit(X, np.arange(60) % 3)


def test_classifiers_keep_their_labels() -> None:
    X, y, _ = _counts(300, 0)
    labels = np.array(["alive", "dead"])[y]
    for name in ("lr", "lgbm"):
        model = make_head(name, 0).fit(X, labels, X_val=X, y_val=labels)
        assert model.classes_.tolist() == ["alive", "dead"]
        assert set(model.predict(X)) <= {"alive", "dead"}
        assert np.array_equal(model.decision_function(X) > 0, model.predict(X) == "dead")


def test_regressors_beat_the_mean_and_ridge_tunes_alpha() -> None:
    X, _, y = _counts(600, 0)
    Xt, _, yt = _counts(300, 1)
    mean_mae = np.abs(yt - y.mean()).mean()
    for name in ("lr", "lgbm"):
        model = make_regressor(name, 0).fit(X, y, X_val=Xt, y_val=yt)
        assert np.abs(model.predict(Xt) - yt).mean() < 0.6 * mean_mae
    ridge = TunedRidge().fit(X, y, X_val=Xt, y_val=yt)
    assert ridge.tuning_mae_[ridge.alpha_] == min(ridge.tuning_mae_.values())
    boosted = EarlyStoppedLightGBMRegressor().fit(X, y, X_val=Xt, y_val=yt)
    assert 1 <= boosted.best_iteration_ <= 1000


def test_multilabel_head_is_scaling_then_one_vs_rest() -> None:
    X, y, _ = _counts(200, 0)
    Y = np.column_stack([y, 1 - y, (X[:, 1].toarray().ravel() > 1).astype(int)])
    scaler = MaxAbsScaler().fit(X)
    by_hand = OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=2000, random_state=0))
    by_hand.fit(scaler.transform(X), Y)
    model = make_multilabel_head(0).fit(X, Y)
    assert np.array_equal(model.predict_proba(X), by_hand.predict_proba(scaler.transform(X)))


def test_unknown_head_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="expected a head"):
        make_head("svm", 0)
    with pytest.raises(ConfigError, match="expected a head"):
        make_regressor("svm", 0)
