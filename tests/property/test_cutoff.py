"""Leakage: events after the prediction time never change a feature (counts representation)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrpredict import schema as S
from ehrpredict.events.source import InMemoryEvents
from ehrpredict.features.counts import CountsFeaturizer

T0 = datetime(2150, 1, 1)
PREDICTION = T0 + timedelta(days=400)
# Birth and visit starts feed the static columns (age, hours since the visit start): a visit that starts,
# or a birth recorded, after the prediction time must not change them either.
CODES = ["LAB//50912//mg/dL", "MEDICATION//Furosemide", "ICD10CM//I50.9", "GENDER//F", S.BIRTH_CODE,
         "HOSPITAL_ADMISSION//URGENT", "ICU_ADMISSION//MICU", "ED_ARRIVAL//WALK IN"]


def write_dataset(root: Path, rows: list[tuple[int, datetime | None, str, float | None]]) -> Path:
    frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                       S.NUMERIC_VALUE: pl.Float32}, orient="row")
    (root / "data" / "train").mkdir(parents=True, exist_ok=True)
    pq.write_table(frame.sort(S.SUBJECT_ID, S.TIME, nulls_last=False).to_arrow(), root / "data" / "train" / "0.parquet")
    return root


event = st.tuples(
    st.integers(1, 3),                                   # subject
    st.integers(0, 800),                                 # day offset from T0 (prediction is day 400)
    st.sampled_from(CODES),
    st.one_of(st.none(), st.sampled_from([0.5, 1.0, 2.25, 7.5])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(event, min_size=1, max_size=30), after=st.lists(event, max_size=30))
def test_events_after_prediction_time_never_change_features(tmp_path_factory, before, after) -> None:  # type: ignore[no-untyped-def]
    past = [(s, T0 + timedelta(days=min(d, 400)), c, v) for s, d, c, v in before]  # at or before the cutoff
    future = [(s, PREDICTION + timedelta(days=1 + d), c, v) for s, d, c, v in after]  # strictly after it
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 2, 3], "prediction_time": [PREDICTION] * 3})
    root = tmp_path_factory.mktemp("cutoff")
    a, b = write_dataset(root / "a", past), write_dataset(root / "b", past + future)
    base = CountsFeaturizer(min_count=1, windows=("1d", "30d", "all")).fit(labels, source=a)
    with_future = CountsFeaturizer(min_count=1, windows=("1d", "30d", "all")).fit(labels, source=b)
    assert list(base.feature_names_) == list(with_future.feature_names_)  # vocabulary: no future codes either
    np.testing.assert_array_equal(base.transform(labels, source=a).toarray(),
                                  with_future.transform(labels, source=b).toarray())
    # the featurizer fitted without the future, applied to the events with it (held in memory)
    in_memory = InMemoryEvents(pl.read_parquet(b / "data" / "train" / "0.parquet"))
    np.testing.assert_array_equal(base.transform(labels, source=a).toarray(),
                                  base.transform(labels, source=in_memory).toarray())


def test_an_event_exactly_at_prediction_time_is_a_feature(tmp_path: Path) -> None:
    rows = [(1, PREDICTION, "LAB//50912//mg/dL", 2.0), (1, PREDICTION + timedelta(seconds=1), "LAB//50912//mg/dL", 9.0)]
    labels = pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": [PREDICTION]})
    root = write_dataset(tmp_path, rows)
    f = CountsFeaturizer(min_count=1, windows=("all",)).fit(labels, source=root)
    values = dict(zip(f.feature_names_, f.transform(labels, source=root).toarray()[0], strict=True))
    assert values["LAB//50912//mg/dL|all|count"] == 1.0
    assert values["LAB//50912//mg/dL|all|last"] == 2.0  # the value one second later is unknown


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.lists(event, min_size=1, max_size=30),
       coded=st.lists(st.tuples(st.integers(1, 3), st.integers(0, 7 * 24 * 60 - 1)), min_size=1, max_size=10))
def test_billing_codes_inside_the_coding_delay_never_change_features(tmp_path_factory, before, coded) -> None:  # type: ignore[no-untyped-def]
    # Codes assigned after discharge: with the default 7-day delay, an ICD code timed less than 7 days
    # before the prediction time is not known yet, whatever else the history holds.
    past = [(s, T0 + timedelta(days=min(d, 400)), c, v) for s, d, c, v in before]
    recent = [(s, PREDICTION - timedelta(minutes=m), "ICD10CM//N17.9", None) for s, m in coded]
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 2, 3], "prediction_time": [PREDICTION] * 3})
    root = tmp_path_factory.mktemp("coding")
    a, b = write_dataset(root / "a", past), write_dataset(root / "b", past + recent)
    base = CountsFeaturizer(min_count=1, windows=("7d", "all")).fit(labels, source=a)
    with_codes = CountsFeaturizer(min_count=1, windows=("7d", "all")).fit(labels, source=b)
    assert list(base.feature_names_) == list(with_codes.feature_names_)
    np.testing.assert_array_equal(base.transform(labels, source=a).toarray(),
                                  with_codes.transform(labels, source=b).toarray())
