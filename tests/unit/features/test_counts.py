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
    f = CountsFeaturizer(dataset(tmp_path), windows=("7d", "all"), min_count=2).fit(labels)
    # RARE//x and GENDER//F occur for one row only: below min_count 2, not in the vocabulary
    assert all(name.startswith("LAB//50912//mg/dL|") for name in f.feature_names_)
    X = dict(zip(f.feature_names_, f.transform(labels).toarray().T, strict=True))
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
    f = CountsFeaturizer(root, windows=("all",), min_count=2, rollup=True).fit(labels)
    X = dict(zip(f.feature_names_, f.transform(labels).toarray().T, strict=True))
    assert list(X["LAB//50912|all|count"]) == [3.0, 1.0]  # the item, whatever the unit
