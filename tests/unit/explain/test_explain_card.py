"""Explanation cards on a tiny cohort written out below.

Thirty train/tuning subjects: the odd ones die (label true) and have a high creatinine 2 hours before the
prediction time and a code spelled ``WEIRD//<script>`` (no description: it shows as the code itself); the
even ones a normal creatinine. Every subject had acute kidney failure (ICD-10 N17.9) coded 30 days before.

Subject 99 (explained): creatinine 2.5 two hours before, 9.9 one hour *after* the prediction time (never
shown, never counted), the weird code, and N17.9 coded 30 days before (shown) and one day before (held
back by the 7-day coding delay: ingestion times billing codes at discharge, coders assign them later).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import InMemoryEvents
from ehrpredict.explain.card import ExplanationCard, explain_rows
from ehrpredict.features.registry import RepresentationSettings
from ehrpredict.pipeline import FittedPipeline, TaskData, fit_pipeline
from ehrpredict.tasks.spec import load_task

PRED = datetime(2150, 3, 10, 12)
CREATININE, WEIRD, AKI = "LAB//50912//mg/dL", "WEIRD//<script>", "ICD10CM//N17.9"
CODES = pl.DataFrame({S.CODE: [CREATININE, AKI], S.DESCRIPTION: ["Creatinine (Blood, Chemistry) [mg/dL]",
                                                                  "Acute kidney failure, unspecified"]})
EXPLAINED = 99


def _events() -> pl.DataFrame:
    rows: list[tuple[int, datetime, str, float | None]] = []
    for subject in range(1, 31):
        dies = subject % 2 == 1
        rows += [(subject, datetime(2080, 1, 1), S.BIRTH_CODE, None),
                 (subject, PRED - timedelta(hours=2), CREATININE, 3.0 + subject / 10 if dies else 1.0),
                 (subject, PRED - timedelta(days=30), AKI, None)]
        if dies:
            rows.append((subject, PRED - timedelta(hours=3), WEIRD, None))
    rows += [(EXPLAINED, datetime(2080, 1, 1), S.BIRTH_CODE, None),
             (EXPLAINED, PRED - timedelta(hours=2), CREATININE, 2.5),
             (EXPLAINED, PRED + timedelta(hours=1), CREATININE, 9.9),  # after the prediction time
             (EXPLAINED, PRED - timedelta(hours=3), WEIRD, None),
             (EXPLAINED, PRED - timedelta(days=30), AKI, None),
             (EXPLAINED, PRED - timedelta(days=1), AKI, None)]  # coded after the prediction time
    return pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                      S.NUMERIC_VALUE: pl.Float32}, orient="row")


def _labels(subjects: list[int]) -> pl.DataFrame:
    return pl.DataFrame({S.SUBJECT_ID: subjects, S.PREDICTION_TIME: [PRED] * len(subjects),
                         S.BOOLEAN_VALUE: [s % 2 == 1 for s in subjects]},
                        schema={S.SUBJECT_ID: pl.Int64, S.PREDICTION_TIME: pl.Datetime("us"),
                                S.BOOLEAN_VALUE: pl.Boolean})


@pytest.fixture(scope="module")
def fitted() -> tuple[InMemoryEvents, FittedPipeline]:
    source = InMemoryEvents(_events(), code_table=CODES)
    data = TaskData(source, {S.TRAIN: _labels(list(range(1, 21))), S.TUNING: _labels(list(range(21, 31)))},
                    settings=RepresentationSettings(min_count=1))
    return source, fit_pipeline(load_task("mortality_in_hospital_24h"), "counts", "lr", data, seed=0)


@pytest.fixture(scope="module")
def card(fitted: tuple) -> ExplanationCard:
    source, pipeline = fitted
    [card] = explain_rows(pipeline, source, _labels([EXPLAINED]), k=100, calibrate=lambda p: p / 2, threshold=0.2)
    return card


def test_the_card_carries_the_models_numbers(fitted: tuple, card: ExplanationCard) -> None:
    source, pipeline = fitted
    probability = float(pipeline.predict_proba(source, _labels([EXPLAINED]))[0])
    assert (card.subject_id, card.prediction_time, card.task) == (EXPLAINED, PRED, "mortality_in_hospital_24h")
    assert card.probability == pytest.approx(probability)
    assert card.calibrated_probability == pytest.approx(probability / 2)
    assert card.threshold == 0.2 and card.decision is (probability / 2 >= 0.2)
    assert 1 / (1 + np.exp(-card.raw_score)) == pytest.approx(probability, abs=1e-6)
    # with k larger than the row's features, every factor is on the card: they add up to the score
    total = card.base_value + sum(f.contribution for f in (*card.up, *card.down))
    assert total == pytest.approx(card.raw_score, abs=1e-6)


def test_factors_are_ordered_and_read_as_the_featurizer_saw_them(card: ExplanationCard) -> None:
    ups, downs = [f.contribution for f in card.up], [f.contribution for f in card.down]
    assert ups == sorted(ups, reverse=True) and all(u > 0 for u in ups)
    assert downs == sorted(downs) and all(d < 0 for d in downs)
    texts = {f.feature: f.text for f in (*card.up, *card.down)}
    assert texts[f"{CREATININE}|1d|last"] == "Creatinine (Blood, Chemistry), last value in 24 h: 2.5 mg/dL"
    assert texts[f"{CREATININE}|1d|count"] == "Creatinine (Blood, Chemistry), count in 24 h: 1"
    assert texts[f"{AKI}|all|count"] == ("Acute kidney failure, unspecified (ICD10CM N17.9), "
                                         "recorded in all history: yes")
    assert texts[f"{WEIRD}|1d|count"] == "WEIRD//<script>, count in 24 h: 1"
    # a high creatinine and the code only the dying subjects have push the risk up
    assert {f"{CREATININE}|1d|last", f"{WEIRD}|1d|count"} <= {f.feature for f in card.up}


def test_the_excerpt_never_shows_an_event_after_the_prediction_time(card: ExplanationCard) -> None:
    excerpt = {item.feature: item for item in card.excerpt}
    creatinine = excerpt[f"{CREATININE}|all|max"]
    assert [(e.time, e.description, e.value) for e in creatinine.events] == [
        (PRED - timedelta(hours=2), "Creatinine (Blood, Chemistry)", "2.5 mg/dL")]
    # the stay's own diagnosis code, coded after the prediction time, is held back as the feature holds it
    kidney = excerpt[f"{AKI}|all|count"]
    assert [e.time for e in kidney.events] == [PRED - timedelta(days=30)]
    shown = [e for item in card.excerpt for e in item.events]
    assert shown and all(e.time is None or e.time <= PRED for e in shown)
    assert "9.9" not in card.summary() and "9.9" not in card.to_html()


def test_summary_and_html_show_the_factors(card: ExplanationCard) -> None:
    summary = card.summary()
    assert summary.startswith(f"mortality_in_hospital_24h: subject {EXPLAINED} at {PRED}")
    assert "Creatinine (Blood, Chemistry), last value in 24 h: 2.5 mg/dL" in summary
    assert f"Calibrated risk {card.calibrated_probability:.3f}" in summary
    page = card.to_html()
    assert page.startswith("<!doctype html>") and "http" not in page and "<script" not in page
    assert "WEIRD//&lt;script&gt;, count in 24 h: 1" in page


def test_a_regression_takes_no_calibrator(fitted: tuple) -> None:
    source, pipeline = fitted
    regression = FittedPipeline("length_of_stay_days", "regression", "counts", "lr", pipeline.featurizer,
                                pipeline.head, pipeline.target)
    with pytest.raises(ConfigError, match="expected a binary task for a calibrator"):
        explain_rows(regression, source, _labels([EXPLAINED]), calibrate=lambda p: p)
