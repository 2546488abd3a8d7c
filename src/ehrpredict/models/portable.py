"""A fitted head as plain data, and back: JSON, numeric arrays and LightGBM's own text model format.

Nothing here pickles. :func:`head_state` takes a fitted head (a :class:`~ehrpredict.models.heads.HeadPipeline`
or the multilabel Pipeline) apart into a :class:`HeadState`; :func:`head_from_state` builds the same
scikit-learn objects again and sets their fitted attributes from the arrays, so the loaded head
computes its predictions with the very code the fitted one used (the same numbers, bit for bit).
LightGBM boosters travel as their model text and come back as :class:`BoosterModel`, which predicts
like the ``LGBMClassifier``/``LGBMRegressor`` it replaces (the trees up to the best iteration).

Only the classes listed in :data:`STEP_KINDS` can be exported or loaded; a state naming anything else
is refused, so a bundle cannot make the loader build an object of its choosing.

    >>> import numpy as np
    >>> from ehrpredict.models.heads import make_head
    >>> X, y = np.array([[0.0, 1], [1, 0], [2, 1], [3, 0]] * 5), np.array([0, 0, 1, 1] * 5)
    >>> head = make_head("lr", seed=0).fit(X, y, X_val=X, y_val=y)
    >>> loaded = head_from_state(head_state(head))
    >>> bool(np.array_equal(loaded.predict_proba(X), head.predict_proba(X)))
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, MaxAbsScaler

from ehrpredict.errors import ConfigError
from ehrpredict.models._shared import as_float32
from ehrpredict.models.classifiers import EarlyStoppedLightGBM, TunedLogisticRegression
from ehrpredict.models.heads import HeadPipeline
from ehrpredict.models.preprocess import Log1pTransformer
from ehrpredict.models.regressors import EarlyStoppedLightGBMRegressor, TunedRidge

STATE_VERSION = 1


@dataclass
class HeadState:
    """``spec``: JSON-able description (step kinds, parameters, scalars); ``arrays``: name → numeric
    array; ``texts``: name → text (LightGBM models)."""

    spec: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            raise ConfigError(f"expected the array {name!r} in the head state, got {sorted(self.arrays)}")
        value = self.arrays[name]
        if value.dtype.kind not in "biuf":
            raise ConfigError(f"expected a numeric array {name!r}, got dtype {value.dtype}")
        return value

    def text(self, name: str) -> str:
        if name not in self.texts:
            raise ConfigError(f"expected the text {name!r} in the head state, got {sorted(self.texts)}")
        return self.texts[name]


class BoosterModel:
    """A LightGBM booster loaded from its model text, predicting as the scikit-learn wrapper it came
    from: ``predict(X, raw_score=, pred_contrib=)`` and, for a binary objective, ``predict_proba``."""

    def __init__(self, model_text: str, binary: bool, n_jobs: int) -> None:
        import lightgbm as lgb

        try:
            self.booster_ = lgb.Booster(model_str=model_text)
        except lgb.basic.LightGBMError as exc:
            raise ConfigError(f"expected a LightGBM model text, got one LightGBM cannot read: {exc}") from exc
        self.binary = binary
        self.n_jobs = n_jobs
        self.n_features_in_ = self.booster_.num_feature()

    def predict(self, X: Any, raw_score: bool = False, pred_contrib: bool = False) -> Any:
        return self.booster_.predict(as_float32(X), raw_score=raw_score, pred_contrib=pred_contrib,
                                     num_threads=self.n_jobs)

    def predict_proba(self, X: Any) -> np.ndarray:
        if not self.binary:
            raise ConfigError("expected a binary LightGBM model for predict_proba, got a regression model")
        p = np.asarray(self.predict(X))
        return np.vstack((1.0 - p, p)).transpose()


def _booster_text(model: Any) -> str:
    """The trees up to the best iteration (all when none), as LightGBM writes them."""
    booster = model.booster_ if hasattr(model, "booster_") else model
    return str(booster.model_to_string(num_iteration=None))


# --- one exporter and one loader per step class -------------------------------------------------------

Exported = tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]


def _log1p_out(step: Log1pTransformer, key: str) -> Exported:
    return {"n_features_in": int(step.n_features_in_)}, {}, {}


def _log1p_in(spec: dict[str, Any], state: HeadState, key: str) -> Log1pTransformer:
    step = Log1pTransformer()
    step.n_features_in_ = int(spec["n_features_in"])
    return step


def _scaler_out(step: MaxAbsScaler, key: str) -> Exported:
    return ({"n_features_in": int(step.n_features_in_), "n_samples_seen": int(step.n_samples_seen_)},
            {f"{key}.scale": step.scale_, f"{key}.max_abs": step.max_abs_}, {})


def _scaler_in(spec: dict[str, Any], state: HeadState, key: str) -> MaxAbsScaler:
    step = MaxAbsScaler()
    step.scale_, step.max_abs_ = state.array(f"{key}.scale"), state.array(f"{key}.max_abs")
    step.n_features_in_, step.n_samples_seen_ = int(spec["n_features_in"]), int(spec["n_samples_seen"])
    _check_width(step.scale_, step.n_features_in_, key)
    return step


def _imputer_out(step: SimpleImputer, key: str) -> Exported:
    if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
        raise ConfigError(f"expected an imputer of NaN, got missing_values={step.missing_values!r}")
    spec: dict[str, Any] = {"strategy": step.strategy, "fill_value": step.fill_value,
                            "add_indicator": bool(step.add_indicator), "keep_empty_features": step.keep_empty_features,
                            "n_features_in": int(step.n_features_in_), "fit_dtype": str(step._fit_dtype),
                            "fill_dtype": str(step._fill_dtype)}
    # dense input gives an object array of the fill value; as numbers it fills the same
    arrays = {f"{key}.statistics": np.asarray(step.statistics_, dtype=np.float64)}
    if step.add_indicator:
        indicator = step.indicator_
        spec["indicator"] = {"features": indicator.features, "sparse": indicator.sparse,
                             "error_on_new": bool(indicator.error_on_new), "precomputed": bool(indicator._precomputed),
                             "n_features": int(indicator._n_features)}
        arrays[f"{key}.indicator_features"] = np.asarray(indicator.features_)
    return spec, arrays, {}


def _imputer_in(spec: dict[str, Any], state: HeadState, key: str) -> SimpleImputer:
    step = SimpleImputer(missing_values=np.nan, strategy=str(spec["strategy"]), fill_value=spec["fill_value"],
                         add_indicator=bool(spec["add_indicator"]),
                         keep_empty_features=bool(spec["keep_empty_features"]))
    step.n_features_in_ = int(spec["n_features_in"])
    step._fit_dtype, step._fill_dtype = np.dtype(spec["fit_dtype"]), np.dtype(spec["fill_dtype"])
    step.statistics_ = state.array(f"{key}.statistics")
    _check_width(step.statistics_, step.n_features_in_, key)
    if step.add_indicator:
        ind = spec["indicator"]
        indicator = MissingIndicator(missing_values=np.nan, features=str(ind["features"]), sparse=ind["sparse"],
                                     error_on_new=bool(ind["error_on_new"]))
        indicator.features_ = state.array(f"{key}.indicator_features")
        indicator._precomputed, indicator._n_features = bool(ind["precomputed"]), int(ind["n_features"])
        indicator.n_features_in_ = int(ind["n_features"])
        step.indicator_ = indicator
    return step


def _logistic_out(model: LogisticRegression, key: str) -> Exported:
    return ({"C": float(model.C), "max_iter": int(model.max_iter), "random_state": model.random_state},
            {f"{key}.coef": model.coef_, f"{key}.intercept": model.intercept_, f"{key}.classes": model.classes_,
             f"{key}.n_iter": model.n_iter_}, {})


def _logistic_in(spec: dict[str, Any], state: HeadState, key: str) -> LogisticRegression:
    model = LogisticRegression(C=float(spec["C"]), max_iter=int(spec["max_iter"]), random_state=spec["random_state"])
    model.coef_, model.intercept_ = state.array(f"{key}.coef"), state.array(f"{key}.intercept")
    model.classes_, model.n_iter_ = state.array(f"{key}.classes"), state.array(f"{key}.n_iter")
    model.n_features_in_ = int(model.coef_.shape[1])
    return model


def _tuned_lr_out(head: TunedLogisticRegression, key: str) -> Exported:
    spec, arrays, _ = _logistic_out(head.model_, f"{key}.model")
    return ({"c_grid": list(head.c_grid), "seed": head.seed, "max_iter": head.max_iter, "C_": head.C_,
             "tuning_auroc": [[c, a] for c, a in head.tuning_auroc_.items()], "model": spec},
            {**arrays, f"{key}.classes": head.classes_}, {})


def _tuned_lr_in(spec: dict[str, Any], state: HeadState, key: str) -> TunedLogisticRegression:
    head = TunedLogisticRegression(c_grid=tuple(float(c) for c in spec["c_grid"]), seed=int(spec["seed"]),
                                   max_iter=int(spec["max_iter"]))
    head.model_ = _logistic_in(spec["model"], state, f"{key}.model")
    head.C_, head.tuning_auroc_ = float(spec["C_"]), {float(c): float(a) for c, a in spec["tuning_auroc"]}
    head.classes_, head.n_iter_ = state.array(f"{key}.classes"), head.model_.n_iter_
    head.n_features_in_ = head.model_.n_features_in_
    return head


def _tuned_ridge_out(head: TunedRidge, key: str) -> Exported:
    model = head.model_
    return ({"alpha_grid": list(head.alpha_grid), "seed": head.seed, "alpha_": head.alpha_,
             "tuning_mae": [[a, m] for a, m in head.tuning_mae_.items()], "solver": model.solver},
            {f"{key}.coef": model.coef_, f"{key}.intercept": np.asarray(model.intercept_)}, {})


def _tuned_ridge_in(spec: dict[str, Any], state: HeadState, key: str) -> TunedRidge:
    head = TunedRidge(alpha_grid=tuple(float(a) for a in spec["alpha_grid"]), seed=int(spec["seed"]))
    model = Ridge(alpha=float(spec["alpha_"]), solver=str(spec["solver"]), random_state=head.seed)
    model.coef_ = state.array(f"{key}.coef")
    intercept = state.array(f"{key}.intercept")
    model.intercept_ = float(intercept) if intercept.ndim == 0 else intercept
    model.n_features_in_ = int(model.coef_.shape[-1])
    head.model_, head.alpha_ = model, float(spec["alpha_"])
    head.tuning_mae_ = {float(a): float(m) for a, m in spec["tuning_mae"]}
    head.n_features_in_ = model.n_features_in_
    return head


def _lgbm_out(head: EarlyStoppedLightGBM | EarlyStoppedLightGBMRegressor, key: str) -> Exported:
    spec: dict[str, Any] = {**head.get_params(), "best_iteration_": head.best_iteration_,
                            "n_features_in": int(head.n_features_in_)}
    arrays = {f"{key}.classes": head.classes_} if isinstance(head, EarlyStoppedLightGBM) else {}
    return spec, arrays, {f"{key}.model": _booster_text(head.model_)}


def _lgbm_in(spec: dict[str, Any], state: HeadState, key: str, binary: bool
             ) -> EarlyStoppedLightGBM | EarlyStoppedLightGBMRegressor:
    params = {k: spec[k] for k in ("seed", "n_estimators", "learning_rate", "num_leaves", "early_stopping_rounds",
                                   "n_jobs")}
    head = EarlyStoppedLightGBM(**params) if binary else EarlyStoppedLightGBMRegressor(**params)
    # the booster in place of the LGBM wrapper it came from: same predict/predict_proba, nothing else
    head.model_ = BoosterModel(state.text(f"{key}.model"), binary=binary, n_jobs=int(params["n_jobs"]))  # type: ignore[assignment]
    head.best_iteration_ = int(spec["best_iteration_"])
    head.n_features_in_ = int(spec["n_features_in"])
    if head.model_.n_features_in_ != head.n_features_in_:
        raise ConfigError(f"expected a LightGBM model over {head.n_features_in_} features, got one over "
                          f"{head.model_.n_features_in_}")
    if binary:
        head.classes_ = state.array(f"{key}.classes")
    return head


def _ovr_out(head: OneVsRestClassifier, key: str) -> Exported:
    specs, arrays = [], {}
    for i, estimator in enumerate(head.estimators_):
        if not isinstance(estimator, LogisticRegression):
            raise ConfigError(f"expected a logistic regression per category, got {type(estimator).__name__} for "
                              f"category {i} (a category with one class in training cannot be kept)")
        spec, part, _ = _logistic_out(estimator, f"{key}.{i}")
        specs.append(spec)
        arrays.update(part)
    binarizer = head.label_binarizer_
    arrays[f"{key}.label_classes"] = binarizer.classes_
    return {"estimators": specs, "y_type": binarizer.y_type_, "n_features_in": int(head.n_features_in_)}, arrays, {}


def _ovr_in(spec: dict[str, Any], state: HeadState, key: str) -> OneVsRestClassifier:
    specs = spec["estimators"]
    if not specs:
        raise ConfigError("expected at least one category in the multilabel head, got none")
    head = OneVsRestClassifier(LogisticRegression(C=float(specs[0]["C"]), max_iter=int(specs[0]["max_iter"]),
                                                  random_state=specs[0]["random_state"]))
    head.estimators_ = [_logistic_in(s, state, f"{key}.{i}") for i, s in enumerate(specs)]
    binarizer = LabelBinarizer(sparse_output=True)
    binarizer.classes_, binarizer.y_type_, binarizer.sparse_input_ = (
        state.array(f"{key}.label_classes"), str(spec["y_type"]), False)
    head.label_binarizer_, head.classes_ = binarizer, binarizer.classes_
    head.n_features_in_ = int(spec["n_features_in"])
    return head


def _check_width(values: np.ndarray, width: int, key: str) -> None:
    if values.shape[-1] != width:
        raise ConfigError(f"expected {width} values in {key}, got {values.shape[-1]}")


Loader = Callable[[dict[str, Any], HeadState, str], Any]
STEP_KINDS: dict[str, tuple[type, Callable[[Any, str], Exported], Loader]] = {
    "log1p": (Log1pTransformer, _log1p_out, _log1p_in),
    "max_abs_scaler": (MaxAbsScaler, _scaler_out, _scaler_in),
    "nan_imputer": (SimpleImputer, _imputer_out, _imputer_in),
    "tuned_logistic_regression": (TunedLogisticRegression, _tuned_lr_out, _tuned_lr_in),
    "tuned_ridge": (TunedRidge, _tuned_ridge_out, _tuned_ridge_in),
    "lightgbm_classifier": (EarlyStoppedLightGBM, _lgbm_out, lambda s, st, k: _lgbm_in(s, st, k, binary=True)),
    "lightgbm_regressor": (EarlyStoppedLightGBMRegressor, _lgbm_out, lambda s, st, k: _lgbm_in(s, st, k, binary=False)),
    "one_vs_rest_logistic_regression": (OneVsRestClassifier, _ovr_out, _ovr_in),
}


def _kind_of(step: Any) -> str:
    for kind, (cls, _, _) in STEP_KINDS.items():
        if type(step) is cls:
            return kind
    known = ", ".join(c.__name__ for c, _, _ in STEP_KINDS.values())
    raise ConfigError(f"expected a head step of a known kind ({known}), "
                      f"got {type(step).__name__}")


def head_state(head: Pipeline) -> HeadState:
    """A fitted head (its preprocessing steps and estimator) as plain data."""
    steps, arrays, texts = [], {}, {}
    for name, step in head.steps:
        kind = _kind_of(step)
        spec, step_arrays, step_texts = STEP_KINDS[kind][1](step, f"step.{name}")
        steps.append({"name": name, "kind": kind, **spec})
        arrays.update(step_arrays)
        texts.update(step_texts)
    pipeline = "head_pipeline" if isinstance(head, HeadPipeline) else "pipeline"
    return HeadState({"version": STATE_VERSION, "pipeline": pipeline, "steps": steps}, arrays, texts)


def head_from_state(state: HeadState) -> Pipeline:
    """The fitted head again, from :func:`head_state`'s data (refusing unknown kinds and missing parts)."""
    spec = state.spec
    if spec.get("version") != STATE_VERSION:
        raise ConfigError(f"expected head state version {STATE_VERSION}, got {spec.get('version')!r}")
    steps = []
    for step in spec.get("steps", []):
        kind = step.get("kind")
        if kind not in STEP_KINDS:
            raise ConfigError(f"expected a head step kind in {sorted(STEP_KINDS)}, got {kind!r}")
        try:
            steps.append((str(step["name"]), STEP_KINDS[kind][2](step, state, f"step.{step['name']}")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"expected a complete {kind} step {step.get('name')!r} in the head state, got an "
                              f"error reading it: {exc!r}") from exc
    if not steps or steps[-1][0] != "head":
        raise ConfigError(f"expected the head's last step to be named 'head', got {[n for n, _ in steps]}")
    if spec.get("pipeline") == "head_pipeline":
        return HeadPipeline(steps, transform_input=["X_val"])
    return Pipeline(steps)
