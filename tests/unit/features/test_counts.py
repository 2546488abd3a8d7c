import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import InMemoryEvents
from ehrpredict.features.counts import AGE_FEATURE, VISIT_HOURS_FEATURE, CountsFeaturizer

PRED = datetime(2150, 3, 1, 12)


def dataset(root: Path) -> Path:
    rows = [  # subject 1: three creatinines (2 within 7 d), sex; subject 2: one creatinine a year ago
        (1, None, "GENDER//F", None),
        (1, datetime(2150, 1, 1), "LAB//50912//mg/dL", 1.0),
        (1, datetime(2150, 2, 25), "LAB//50912//mg/dL", 2.0),
        (1, datetime(2150, 3, 1, 6), "LAB//50912//mg/dL", 3.0),
        (2, datetime(2149, 3, 10), "LAB//50912//mg/dL", 5.0),
        (2, datetime(2150, 3, 1), "RARE//x", None),
    ]
    frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                       S.NUMERIC_VALUE: pl.Float32}, orient="row")
    (root / "data" / "train").mkdir(parents=True)
    pq.write_table(frame.to_arrow(), root / "data" / "train" / "0.parquet")
    return root


def test_counts_and_values_per_window(tmp_path: Path) -> None:
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 2], "prediction_time": [PRED, PRED]})
    root = dataset(tmp_path)
    f = CountsFeaturizer(windows=("7d", "all"), min_count=2).fit(labels, source=root)
    # RARE//x and GENDER//F occur for one row only: below min_count 2, not in the vocabulary
    assert all(name.startswith("LAB//50912//mg/dL|") for name in f.feature_names_[:-2])
    assert list(f.feature_names_[-2:]) == [AGE_FEATURE, VISIT_HOURS_FEATURE]
    X = dict(zip(f.feature_names_, f.transform(labels, source=root).toarray().T, strict=True))
    cr = "LAB//50912//mg/dL"
    assert list(X[f"{cr}|7d|count"]) == [2.0, 0.0]
    assert list(X[f"{cr}|all|count"]) == [3.0, 1.0]
    assert list(X[f"{cr}|7d|last"]) == [3.0, 0.0]
    assert list(X[f"{cr}|all|mean"]) == [2.0, 5.0]
    assert list(X[f"{cr}|all|min"]) == [1.0, 5.0]
    assert list(X[f"{cr}|all|max"]) == [3.0, 5.0]


def test_rollup_adds_parent_codes(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    (root / "metadata").mkdir()
    codes = pl.DataFrame({S.CODE: ["LAB//50912//mg/dL", "GENDER//F", "RARE//x"],
                          S.PARENT_CODES: [["LAB//50912"], [], []]})
    codes.write_parquet(root / S.CODES_FILE)
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 2], "prediction_time": [PRED, PRED]})
    f = CountsFeaturizer(windows=("all",), min_count=2, rollup=True).fit(labels, source=root)
    X = dict(zip(f.feature_names_, f.transform(labels, source=root).toarray().T, strict=True))
    assert list(X["LAB//50912|all|count"]) == [3.0, 1.0]  # the item, whatever the unit


def _billing_dataset(root: Path, coded_after_discharge: list[str] | None = None) -> Path:
    rows = [  # a stay discharged at PRED (its codes are assigned later) and one discharged 10 days before
        (1, datetime(2150, 2, 19, 12), "ICD10CM//E11.9", None),
        (1, datetime(2150, 2, 19, 12), "DRG//HCFA//638", None),
        (1, PRED, "ICD10CM//I50.9", None),
        (1, PRED, "DRG//HCFA//291", None),
        (1, PRED, "LAB//50912//mg/dL", 1.2),
    ]
    frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                       S.NUMERIC_VALUE: pl.Float32}, orient="row")
    (root / "data" / "train").mkdir(parents=True)
    pq.write_table(frame.to_arrow(), root / "data" / "train" / "0.parquet")
    if coded_after_discharge is not None:
        (root / "metadata").mkdir()
        (root / S.DATASET_FILE).write_text(json.dumps({"ehrpredict": {"coded_after_discharge": coded_after_discharge}}))
    return root


def _all_counts(root: Path, **params: str) -> dict[str, float]:
    labels = pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": [PRED]})
    f = CountsFeaturizer(windows=("all",), min_count=1, **params).fit(labels, source=root)
    values = dict(zip(f.feature_names_, f.transform(labels, source=root).toarray()[0], strict=True))
    return {name.split("|")[0]: v for name, v in values.items() if name.endswith("|count")}


def test_billing_codes_of_the_stay_ending_at_prediction_time_are_not_features(tmp_path: Path) -> None:
    # Default: codes are usable 7 days after discharge, so a prediction at discharge sees the previous
    # stay's codes (10 days old) but not this stay's; the lab result at PRED is a feature.
    assert _all_counts(_billing_dataset(tmp_path / "a")) == {
        "ICD10CM//E11.9": 1.0, "DRG//HCFA//638": 1.0, "LAB//50912//mg/dL": 1.0,
    }
    # "0": the optimistic setting where a stay's codes are known the moment it ends
    assert _all_counts(_billing_dataset(tmp_path / "b"), coding_delay="0") == {
        "ICD10CM//E11.9": 1.0, "DRG//HCFA//638": 1.0, "ICD10CM//I50.9": 1.0, "DRG//HCFA//291": 1.0,
        "LAB//50912//mg/dL": 1.0,
    }
    # a dataset's metadata says which vocabularies are coded after discharge
    assert _all_counts(_billing_dataset(tmp_path / "c", ["DRG"]), coding_delay="7d") == {
        "ICD10CM//E11.9": 1.0, "DRG//HCFA//638": 1.0, "ICD10CM//I50.9": 1.0, "LAB//50912//mg/dL": 1.0,
    }


def test_last_value_does_not_depend_on_the_order_of_simultaneous_events(tmp_path: Path) -> None:
    # Two potassium results stored at the same second: "last" must be the same whichever comes first
    # in the shard (the leakage property test found it depended on the order events were joined in).
    labels = pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": [PRED]})
    lasts = []
    for name, order in (("a", [4.1, 5.9]), ("b", [5.9, 4.1])):
        rows = [(1, datetime(2150, 3, 1, 6), "LAB//50971//mEq/L", v) for v in order]
        frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                           S.NUMERIC_VALUE: pl.Float32}, orient="row")
        (tmp_path / name / "data").mkdir(parents=True)
        pq.write_table(frame.to_arrow(), tmp_path / name / "data" / "0.parquet")
        f = CountsFeaturizer(windows=("all",), min_count=1).fit(labels, source=tmp_path / name)
        values = dict(zip(f.feature_names_, f.transform(labels, source=tmp_path / name).toarray()[0], strict=True))
        lasts.append(round(float(values["LAB//50971//mEq/L|all|last"]), 4))
    assert lasts == [5.9, 5.9]


def test_without_static_features_the_matrix_is_the_code_columns_exactly(tmp_path: Path) -> None:
    # static_features=() is the matrix as it was before age and hours were added: the same names, the
    # same stored entries; by default the same code columns come first and the two static ones last.
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 2, 3], "prediction_time": [PRED, PRED, PRED]})
    root = dataset(tmp_path)
    off = CountsFeaturizer(windows=("7d", "all"), min_count=1, static_features=()).fit(labels, source=root)
    on = CountsFeaturizer(windows=("7d", "all"), min_count=1).fit(labels, source=root)
    X_off, X_on = off.transform(labels, source=root), on.transform(labels, source=root)
    assert not any(name in (AGE_FEATURE, VISIT_HOURS_FEATURE) for name in off.feature_names_)
    assert list(on.feature_names_) == [*off.feature_names_, AGE_FEATURE, VISIT_HOURS_FEATURE]
    assert X_off.shape == (3, len(off.feature_names_))
    assert (X_on[:, : X_off.shape[1]] != X_off).nnz == 0 and X_on[:, : X_off.shape[1]].nnz == X_off.nnz
    # subject 1: 5 creatinine stats in each window and sex in both; subject 2: 5 of creatinine (all
    # history), RARE//x in both; subject 3: no events, no entries
    assert X_off.nnz == 19 and X_off[2].nnz == 0
    assert off.describe()["static_features"] == [] and on.describe()["static_features"] == [
        AGE_FEATURE, VISIT_HOURS_FEATURE]


BIRTH = datetime(2100, 3, 2, 8)  # 50 years old from 2150-03-02 08:00, so 49 at PRED (2150-03-01 12:00)
ADMIT = datetime(2150, 2, 27, 12)


def _visits() -> pl.DataFrame:
    rows = [
        # subject 1: born, admitted 2 days before PRED, in the ICU 6 h before PRED, an ED visit after PRED
        (1, BIRTH, S.BIRTH_CODE, None),
        (1, None, "GENDER//F", None),
        (1, ADMIT, "HOSPITAL_ADMISSION//URGENT", None),
        (1, PRED - timedelta(hours=6), "ICU_ADMISSION//MICU", None),
        (1, PRED + timedelta(minutes=1), "ED_ARRIVAL//WALK IN", None),
        (1, PRED + timedelta(days=3), "HOSPITAL_ADMISSION//EW EMER.", None),
        # subject 2: no birth event; arrives in the ED exactly at PRED
        (2, PRED, "ED_ARRIVAL//AMBULANCE", None),
        (2, PRED, "LAB//50912//mg/dL", 1.0),
        # subject 3: born, a lab, but every visit starts after PRED; a discharge (an end) before it
        (3, datetime(2130, 3, 1, 12), S.BIRTH_CODE, None),
        (3, PRED - timedelta(days=1), "HOSPITAL_DISCHARGE//HOME", None),
        (3, PRED - timedelta(days=1), "LAB//50912//mg/dL", 2.0),
        (3, PRED + timedelta(hours=1), "HOSPITAL_ADMISSION//URGENT", None),
    ]  # subject 4 has no events at all
    return pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                      S.NUMERIC_VALUE: pl.Float32}, orient="row")


def _static(f: CountsFeaturizer, labels: pl.DataFrame, source: object) -> np.ndarray:
    X = f.transform(labels, source=source)  # type: ignore[arg-type]
    return np.asarray(X[:, -2:].toarray())


def test_age_and_hours_since_the_latest_visit_start_at_prediction_time(tmp_path: Path) -> None:
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 1, 2, 3, 4],
                           "prediction_time": [PRED, ADMIT, PRED, PRED, PRED]})
    source = InMemoryEvents(_visits())
    f = CountsFeaturizer(windows=("all",), min_count=1).fit(labels, source=source)
    np.testing.assert_array_equal(_static(f, labels, source), np.array([
        [49.0, 6.0],        # the ICU admission is the latest start; the ED arrival 1 min later is unknown
        [49.0, 0.0],        # predicted at the admission itself: 0 hours, not missing
        [np.nan, 0.0],      # no birth event: age unknown
        [20.0, np.nan],     # the only visit start is an hour after the prediction: not used
        [np.nan, np.nan],   # no events at all
    ], dtype=np.float32))
    X = f.transform(labels, source=source)
    assert np.isnan(X.data).sum() == 4  # missing is stored as NaN, never left as an absent (zero) entry
    assert f.visit_starts_ == ("HOSPITAL_ADMISSION", "ICU_ADMISSION", "ED_ARRIVAL")


def test_age_is_completed_years_and_changes_on_the_birthday() -> None:
    times = [BIRTH + timedelta(days=50 * 365.25) - timedelta(days=2), datetime(2150, 3, 2, 8)]
    labels = pl.DataFrame({S.SUBJECT_ID: [1, 1], "prediction_time": times})
    source = InMemoryEvents(_visits())
    f = CountsFeaturizer(windows=("all",), min_count=1, static_features=("age",)).fit(labels, source=source)
    assert f.feature_names_[-1] == AGE_FEATURE and VISIT_HOURS_FEATURE not in f.feature_names_
    assert f.transform(labels, source=source)[:, -1].toarray().ravel().tolist() == [49.0, 50.0]


def test_static_features_read_the_same_from_parquet_and_memory(tmp_path: Path) -> None:
    events = _visits()
    (tmp_path / "data" / "train").mkdir(parents=True)
    pq.write_table(events.sort(S.SUBJECT_ID, S.TIME, nulls_last=False).to_arrow(),
                   tmp_path / "data" / "train" / "0.parquet")
    labels = pl.DataFrame({S.SUBJECT_ID: [3, 1, 2, 4, 1], "prediction_time": [PRED, PRED, PRED, PRED, ADMIT]})
    f = CountsFeaturizer(windows=("1d", "all"), min_count=1).fit(labels, source=tmp_path)
    from_parquet = f.transform(labels, source=tmp_path).toarray()
    np.testing.assert_array_equal(from_parquet, f.transform(labels, source=InMemoryEvents(events)).toarray())
    np.testing.assert_array_equal(from_parquet[:, -1], [np.nan, 6.0, 0.0, np.nan, 0.0])


def test_visit_starts_come_from_the_datasets_code_kinds() -> None:
    events = pl.DataFrame({S.SUBJECT_ID: [1, 1], S.TIME: [PRED - timedelta(hours=30), PRED - timedelta(hours=2)],
                           S.CODE: ["ENCOUNTER//inpatient", "HOSPITAL_ADMISSION//URGENT"]})
    labels = pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": [PRED]})
    declared = {"ehrpredict": {"code_kinds": {"visit_starts": ["ENCOUNTER"]}}}
    f = CountsFeaturizer(min_count=1).fit(labels, source=InMemoryEvents(events, dataset_metadata=declared))
    # the learned prefixes go with the fitted featurizer, whatever the source it is applied to
    assert float(f.transform(labels, source=InMemoryEvents(events))[0, -1]) == 30.0


@pytest.mark.parametrize(("static", "message"), [
    ("age", "got the string 'age'"),
    (("age", "sex"), "got unknown 'sex'"),
    (("age", "age"), "got 'age' repeated"),
])
def test_unknown_static_features_are_refused(static: object, message: str) -> None:
    labels = pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": [PRED]})
    with pytest.raises(ConfigError, match=message):
        CountsFeaturizer(static_features=static).fit(labels, source=InMemoryEvents(_visits()))  # type: ignore[arg-type]


def test_a_combination_log_transforms_the_static_columns_and_both_heads_train_on_it() -> None:
    # counts+text: the counts block goes through log1p before it joins the embeddings. Ages and hours are
    # non-negative, so log1p is monotone on them; NaN stays NaN (not 0) for the heads to handle.
    from ehrpredict.features.combine import concatenate
    from ehrpredict.models.heads import make_head

    labels = pl.DataFrame({S.SUBJECT_ID: [1, 1, 2, 3, 4] * 8,
                           "prediction_time": [PRED, ADMIT, PRED, PRED, PRED] * 8})
    source = InMemoryEvents(_visits())
    counts = CountsFeaturizer(windows=("all",), min_count=1).fit(labels, source=source).transform(labels, source=source)
    embeddings = np.random.default_rng(0).normal(size=(labels.height, 4))
    X = concatenate([counts, embeddings], [True, False])
    static = X[:5, counts.shape[1] - 2: counts.shape[1]].toarray()
    np.testing.assert_allclose(static, np.log1p([[49, 6], [49, 0], [np.nan, 0], [20, np.nan], [np.nan, np.nan]]),
                               rtol=1e-6)
    y = np.array([1, 0, 1, 0, 0] * 8)
    for head in ("lr", "lgbm"):
        p = make_head(head, 0, log1p=False).fit(X, y, X_val=X, y_val=y).predict_proba(X)[:, 1]
        assert np.isfinite(p).all()
