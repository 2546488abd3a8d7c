"""What a benchmark runs beside each model, through the same :func:`~ehrpredict.pipeline.fit_pipeline`:
the label-shuffle control and the EHRSHOT few-shot curve."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ehrpredict import schema as S
from ehrpredict.evaluation import auroc
from ehrpredict.experiments.model_results import FewShotCurve, FewShotPoint, ShuffleControl, ShuffleScore
from ehrpredict.pipeline import FittedPipeline, TaskData, fit_pipeline
from ehrpredict.tasks.spec import TaskSpec


def shuffle_control(spec: TaskSpec, model: FittedPipeline, data: TaskData, permutations: int, seed: int,
                    scores: Mapping[str, Callable[[np.ndarray], float]]) -> ShuffleControl:
    """The same pipeline trained on permuted training labels, ``permutations`` times.

    One permutation is not enough: a model fit to random labels still has a random direction in
    feature space, and when features share a dominant axis (sicker patients have more of everything)
    its held-out AUROC swings far from 0.5 either way (measured 0.24-0.79 over five permutations on
    the synthetic mortality task). Leakage shows as a *mean* well above chance; the spread says how
    much one permutation can mislead.

    For ``lr`` classifiers the control keeps the strength the real model chose (tuning a random
    model's strength would only add cost); LightGBM keeps its early stopping."""
    y_train = model.target.encode(data.parts[S.TRAIN])
    params = ({"head__c_grid": (model.head["head"].C_,)}
              if model.label_type == "binary" and model.head_name == "lr" else None)
    X_test = data.matrix(model.representation, S.HELD_OUT)
    replicates: dict[str, list[float]] = {name: [] for name in scores}
    for i in range(permutations):
        shuffled = np.random.default_rng([seed, i]).permutation(y_train)
        control = fit_pipeline(spec, model.representation, model.head_name, data, seed=seed, y_train=shuffled,
                               head_params=params, target=model.target)
        predicted = (control.predict_features(X_test) if control.label_type == "regression"
                     else control.predict_proba_features(X_test))
        for name, score in scores.items():
            replicates[name].append(float(score(predicted)))
    return ShuffleControl(permutations=permutations, scores={
        name: ShuffleScore(value=float(np.mean(v)), sd=float(np.std(v)), min=float(np.min(v)), max=float(np.max(v)),
                           replicates=tuple(v)) for name, v in replicates.items()})


FEW_SHOT_K = (1, 2, 4, 8, 16, 32, 64, 128)
FEW_SHOT_REPLICATES = 5


def _sample(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray | None:
    """Indices of k positives and k negatives, or None when the split has fewer than k of either."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) < k or len(neg) < k:
        return None
    return np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, k, replace=False)])


def few_shot(spec: TaskSpec, model: FittedPipeline, data: TaskData, seed: int) -> FewShotCurve:
    """EHRSHOT protocol: k positives and k negatives for training and as many for tuning, 5 seeded
    replicates per k, always tested on the whole held-out split. Features come from the full train
    split's vocabulary (which uses no labels)."""
    y_train, y_tune, y_test = (model.target.encode(data.parts[s]) for s in (S.TRAIN, S.TUNING, S.HELD_OUT))
    X_test = data.matrix(model.representation, S.HELD_OUT)
    curve: list[FewShotPoint] = []
    for k in FEW_SHOT_K:
        aurocs = []
        for replicate in range(FEW_SHOT_REPLICATES):
            rng = np.random.default_rng([seed, k, replicate])
            train, tune = _sample(y_train, k, rng), _sample(y_tune, k, rng)
            if train is None or tune is None:
                break
            fitted = fit_pipeline(spec, model.representation, model.head_name, data, seed=seed + replicate,
                                  train_index=train, tuning_index=tune, target=model.target)
            aurocs.append(auroc(y_test, fitted.predict_proba_features(X_test)))
        if len(aurocs) < FEW_SHOT_REPLICATES:
            curve.append(FewShotPoint(k=k, status=f"fewer than {k} positives or negatives in train or tuning"))
            break
        curve.append(FewShotPoint(k=k, status="done", auroc_mean=float(np.mean(aurocs)),
                                  auroc_sd=float(np.std(aurocs)), auroc_replicates=tuple(float(a) for a in aurocs)))
    return FewShotCurve(points=tuple(curve))
