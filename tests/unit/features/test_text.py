"""TextFeaturizer learns what its texts show on the rows it is fitted on (the train split).

Subjects 1 and 2 (train) have a creatinine; subjects 3-6 (held out) a urea, so urea is the more
frequent lab of the whole dataset (4 events to 3, as codes.parquet counts); held-out subject 5 has
both. With one lab item per section, the texts must show creatinine, the train split's lab.
"""

from datetime import datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.features.text import TextFeaturizer
from ehrpredict.text.serialize import SERIALIZER_VERSION, SerializerConfig

PRED = datetime(2150, 3, 10, 12)
ROWS = [
    (1, datetime(2150, 3, 9, 8), "LAB//50912//mg/dL", 1.0),
    (2, datetime(2150, 3, 9, 8), "LAB//50912//mg/dL", 1.2),
    (3, datetime(2150, 3, 9, 8), "LAB//51006//mg/dL", 20.0),
    (4, datetime(2150, 3, 9, 8), "LAB//51006//mg/dL", 22.0),
    (5, datetime(2150, 3, 9, 8), "LAB//51006//mg/dL", 25.0),
    (5, datetime(2150, 3, 10, 10), "LAB//50912//mg/dL", 1.1),
    (6, datetime(2150, 3, 9, 8), "LAB//51006//mg/dL", 30.0),
]


def dataset(root: Path) -> Path:
    frame = pl.DataFrame(ROWS, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                       S.NUMERIC_VALUE: pl.Float32}, orient="row")
    frame = frame.with_columns(pl.lit(None, pl.String).alias(S.TEXT_VALUE))
    (root / "data" / "train").mkdir(parents=True)
    pq.write_table(frame.to_arrow(), root / "data" / "train" / "0.parquet")
    (root / "metadata").mkdir()
    pl.DataFrame({S.CODE: ["LAB//50912//mg/dL", "LAB//51006//mg/dL"], S.DESCRIPTION: ["Creatinine", "Urea"],
                  S.CODE_COUNT: [3, 4]}).write_parquet(root / S.CODES_FILE)
    return root


def labels(*subjects: int) -> pl.DataFrame:
    return pl.DataFrame({S.SUBJECT_ID: list(subjects), "prediction_time": [PRED] * len(subjects)},
                        schema={S.SUBJECT_ID: pl.Int64, "prediction_time": pl.Datetime("us")})


def test_the_texts_show_the_labs_of_the_rows_it_was_fitted_on(tmp_path: Path) -> None:
    root = dataset(tmp_path)
    featurizer = TextFeaturizer(serializer=SerializerConfig(max_items=1), max_tokens=256,
                                cache=False).fit(labels(1, 2), source=root)
    [timeline] = featurizer.timelines(labels(5), source=root)
    assert timeline.text == "## Demographics\n- Age: unknown\n\n## Lab results\n- Creatinine: 1.1 (2 hours before)"
    described = featurizer.describe()
    assert described["selection"] == {"n_rows": 2, "vitals": {}, "labs": {"LAB//50912//mg/dL": 2},
                                      "flagged_labs": []}
    assert described["serializer_version"] == SERIALIZER_VERSION
    names = featurizer.get_feature_names_out()  # one name per embedding column, for explanations
    assert len(names) == featurizer.dimension_ and list(names[:2]) == ["text_embedding_0", "text_embedding_1"]
