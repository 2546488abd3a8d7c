"""Contributions are exact on real fitted pipelines of a small synthetic hospital: per row, the base value
plus every contribution is the model's raw score (log-odds of a binary head, the prediction of a
regression head), for LightGBM's TreeSHAP and for the linear head's coef × transformed value."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import ParquetEvents
from ehrpredict.explain.card import explain_rows
from ehrpredict.explain.contributions import Contributions, contributions, global_importance, top_factors
from ehrpredict.explain.factors import TEXT_FACTOR
from ehrpredict.features.combine import Concatenated, concatenate
from ehrpredict.features.text import EMBEDDING_PREFIX
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate
from ehrpredict.models.heads import make_head
from ehrpredict.models.targets import make_target
from ehrpredict.pipeline import FittedPipeline, TaskData, fit_pipeline
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

BINARY, REGRESSION, MULTILABEL = "mortality_in_hospital_24h", "length_of_stay_days", "discharge_diagnoses_icd10"


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> tuple[ParquetEvents, dict[str, TaskData]]:
    root = tmp_path_factory.mktemp("explain")
    generate(root / "raw", SynthConfig(n_patients=400, seed=11))
    ingest_mimic4(root / "raw", root / "meds")
    source = ParquetEvents(root / "meds")
    specs = [load_task(t) for t in (BINARY, REGRESSION)]
    labeled = label_many(source.root, specs)
    return source, {s.name: TaskData.from_splits(source, labeled[s.name].labels) for s in specs}


@pytest.fixture(scope="module")
def pipelines(hospital: tuple) -> dict[tuple[str, str], FittedPipeline]:
    _, data = hospital
    return {(task, head): fit_pipeline(load_task(task), "counts", head, data[task], seed=0)
            for task, head in ((BINARY, "lgbm"), (BINARY, "lr"), (REGRESSION, "lgbm"), (REGRESSION, "lr"))}


def _model_score(pipeline: FittedPipeline, X: Any) -> np.ndarray:
    """The raw score as the model computes it, through the handles a bundle keeps (``model_``)."""
    model = pipeline.head["head"].model_
    if pipeline.head_name == "lgbm":
        return np.asarray(model.predict(X.astype(np.float32), raw_score=True))
    transformed = pipeline.head[:-1].transform(X).astype(np.float64)  # the model's own numbers, in float64
    if pipeline.label_type == "binary":
        return np.asarray(model.decision_function(transformed))
    return np.asarray(model.predict(transformed))


@pytest.mark.parametrize(("task", "head"), [(BINARY, "lgbm"), (BINARY, "lr"), (REGRESSION, "lgbm"), (REGRESSION, "lr")])
def test_base_plus_contributions_is_the_raw_score_of_every_row(hospital: tuple, pipelines: dict, task: str,
                                                               head: str) -> None:
    _, data = hospital
    pipeline = pipelines[task, head]
    X = data[task].matrix("counts", S.HELD_OUT)
    c = contributions(pipeline, X)
    assert isinstance(c.values, sp.csr_matrix) and c.values.shape == X.shape
    assert c.feature_names == tuple(pipeline.featurizer.get_feature_names_out())
    score = c.base + np.asarray(c.values.sum(axis=1)).ravel()
    np.testing.assert_allclose(score, _model_score(pipeline, X), rtol=0, atol=1e-6)
    # ... and the head's own output: decision_function (binary) or predict (regression). The linear
    # classifier keeps float32 coefficients and sums in float32, so its output is exact to float32 only.
    own = pipeline.head.decision_function(X) if task == BINARY else pipeline.predict_features(X)
    np.testing.assert_allclose(score, own, rtol=0, atol=1e-6 if (task, head) != (BINARY, "lr") else 1e-5)
    if task == BINARY:  # the probability is the logistic of the score
        np.testing.assert_allclose(1 / (1 + np.exp(-score)), pipeline.predict_proba_features(X), atol=1e-6)
    # the values shown are the featurizer's (raw counts), not the head's log1p-scaled ones
    assert (c.raw_values != sp.csr_matrix(X, dtype=np.float64)).nnz == 0
    assert len(np.unique(score)) > 1


@pytest.mark.parametrize("head", ["lgbm", "lr"])
def test_a_row_without_any_feature_is_explained_by_the_base_value_alone(hospital: tuple, pipelines: dict,
                                                                        head: str) -> None:
    pipeline = pipelines[BINARY, head]
    X = sp.csr_matrix((2, len(pipeline.featurizer.get_feature_names_out())), dtype=np.float32)
    c = contributions(pipeline, X)
    np.testing.assert_allclose(c.score(), _model_score(pipeline, X), rtol=0, atol=1e-6)
    if head == "lr":  # nothing present: nothing contributes, the score is the intercept
        assert c.values.nnz == 0
        assert top_factors(c, 0, 3).up == () and top_factors(c, 0, 3).down == ()


def test_top_factors_and_global_importance_are_ordered(hospital: tuple, pipelines: dict) -> None:
    _, data = hospital
    c = contributions(pipelines[BINARY, "lgbm"], data[BINARY].matrix("counts", S.HELD_OUT))
    row = int(np.argmax(np.asarray(c.values.getnnz(axis=1))))
    top = top_factors(c, row, 4)
    ups, downs = [f.contribution for f in top.up], [f.contribution for f in top.down]
    assert ups == sorted(ups, reverse=True) and all(v > 0 for v in ups)
    assert downs == sorted(downs) and all(v < 0 for v in downs)
    dense = c.values.getrow(row).toarray().ravel()
    assert ups[0] == pytest.approx(dense.max()) and downs[0] == pytest.approx(dense.min())
    importance = global_importance(c, top=5)
    means = [m for _, m in importance]
    assert len(importance) == 5 and means == sorted(means, reverse=True)
    j = c.feature_names.index(importance[0][0])
    assert means[0] == pytest.approx(np.abs(c.values[:, j].toarray()).mean())


def test_multilabel_is_refused_with_a_clear_error(hospital: tuple, pipelines: dict) -> None:
    _, data = hospital
    fitted = pipelines[BINARY, "lr"]  # refused by its label type, before any model is read
    pipeline = FittedPipeline(MULTILABEL, "multilabel", "counts", "lr", fitted.featurizer, fitted.head, fitted.target)
    with pytest.raises(ConfigError, match="multilabel explanations are not supported"):
        contributions(pipeline, data[BINARY].matrix("counts", S.HELD_OUT))


class FakeText:
    """A text part: an 8-dimensional "embedding" of each row from a digest of its subject and time."""

    dimension_ = 8

    def fit(self, labels: pl.DataFrame, **_: Any) -> FakeText:
        return self

    def transform(self, labels: pl.DataFrame, **_: Any) -> np.ndarray:
        rows = [hashlib.sha256(f"{s}|{t}".encode()).digest()[:8]
                for s, t in labels.select(S.SUBJECT_ID, S.PREDICTION_TIME).iter_rows()]
        return np.asarray([[b / 255 - 0.5 for b in row] for row in rows], dtype=np.float32)

    def get_feature_names_out(self) -> np.ndarray:
        return np.asarray([f"{EMBEDDING_PREFIX}{i}" for i in range(self.dimension_)])

    def describe(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize("head", ["lgbm", "lr"])
def test_counts_and_text_group_the_embedding_into_one_factor(hospital: tuple, head: str) -> None:
    source, data = hospital
    task = data[BINARY]
    combined = Concatenated([("counts", task.featurizer("counts")), ("text", FakeText())], [True, False])
    matrix = {split: concatenate([task.matrix("counts", split), FakeText().transform(task.parts[split])],
                                 [True, False]) for split in (S.TRAIN, S.TUNING, S.HELD_OUT)}
    target = make_target("binary").fit(task.parts[S.TRAIN])
    estimator = make_head(head, seed=0, log1p=False)
    if head == "lgbm":
        estimator.set_params(head__n_estimators=150)  # enough trees for the test, in a fraction of the time
    estimator.fit(
        matrix[S.TRAIN], target.encode(task.parts[S.TRAIN]),
        X_val=matrix[S.TUNING], y_val=target.encode(task.parts[S.TUNING]))
    pipeline = FittedPipeline(BINARY, "binary", "counts+text", head, combined, estimator, target)
    X = matrix[S.HELD_OUT]
    ungrouped = contributions(pipeline, X, group_text=False)
    grouped = contributions(pipeline, X)
    np.testing.assert_allclose(grouped.score(), pipeline.head.decision_function(X), rtol=0,
                               atol=1e-6 if head == "lgbm" else 1e-5)
    np.testing.assert_allclose(grouped.score(), ungrouped.score(), rtol=0, atol=1e-9)
    assert grouped.feature_names[-1] == TEXT_FACTOR
    assert not any(n.startswith(EMBEDDING_PREFIX) for n in grouped.feature_names)
    text = np.asarray(ungrouped.values[:, -FakeText.dimension_:].sum(axis=1)).ravel()
    np.testing.assert_allclose(grouped.values[:, -1].toarray().ravel(), text, atol=1e-12)
    # the counts block reached the head as log1p(count); the factor shows the count
    counts = task.matrix("counts", S.HELD_OUT)
    np.testing.assert_allclose(grouped.raw_values[:, :-1].toarray(), counts.toarray(), rtol=1e-5)
    cards = explain_rows(pipeline, source, task.parts[S.HELD_OUT].head(3), k=3)
    assert all(f.feature != TEXT_FACTOR or f.text == "The timeline's text, as embedded"
               for card in cards for f in (*card.up, *card.down))


def test_cards_of_real_rows_show_only_events_at_or_before_the_prediction_time(hospital: tuple,
                                                                               pipelines: dict) -> None:
    source, data = hospital
    rows = data[BINARY].parts[S.HELD_OUT].head(15)
    cards = explain_rows(pipelines[BINARY, "lgbm"], source, rows, k=4)
    shown = [(card, e) for card in cards for item in card.excerpt for e in item.events]
    assert shown  # the excerpts are not empty
    assert all(e.time is None or e.time <= card.prediction_time for card, e in shown)
    probabilities = pipelines[BINARY, "lgbm"].predict_proba(source, rows)
    np.testing.assert_allclose([c.probability for c in cards], probabilities)


def test_contributions_validate_their_shapes() -> None:
    with pytest.raises(ConfigError, match="expected base"):
        Contributions(np.zeros(2), sp.csr_matrix((3, 1)), ("a",), sp.csr_matrix((3, 1)))


def test_lightgbm_contributions_use_the_model_handle_only(hospital: tuple, pipelines: dict,
                                                          tmp_path: Path) -> None:
    # A bundle replaces model_ by a thin wrapper of lightgbm.Booster with the same predict signature.
    import lightgbm as lgb

    _, data = hospital
    pipeline = pipelines[BINARY, "lgbm"]
    booster = pipeline.head["head"].model_.booster_
    booster.save_model(str(tmp_path / "model.txt"), num_iteration=booster.best_iteration)

    class BoosterModel:
        def __init__(self, path: Path) -> None:
            self.booster = lgb.Booster(model_file=str(path))

        def predict(self, X: Any, raw_score: bool = False, pred_contrib: bool = False) -> Any:
            return self.booster.predict(X, raw_score=raw_score, pred_contrib=pred_contrib)

    X = data[BINARY].matrix("counts", S.HELD_OUT)
    expected = contributions(pipeline, X)
    pipeline.head["head"].model_, original = BoosterModel(tmp_path / "model.txt"), pipeline.head["head"].model_
    try:
        loaded = contributions(pipeline, X)
    finally:
        pipeline.head["head"].model_ = original
    np.testing.assert_allclose(loaded.score(), expected.score(), atol=1e-9)
    assert (abs(loaded.values - expected.values) > 1e-9).nnz == 0
