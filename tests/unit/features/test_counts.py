import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.features.counts import CountsFeaturizer

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
    assert all(name.startswith("LAB//50912//mg/dL|") for name in f.feature_names_)
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
