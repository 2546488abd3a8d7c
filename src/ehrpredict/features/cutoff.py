"""The one place where the prediction-time cutoff is applied. Every featurizer calls it.

A feature for a label row may use an event only if ``event.time <= prediction_time``; static events
(null time: sex) are always usable. A property test proves that events after the cutoff never
change a feature.
"""

from __future__ import annotations

import polars as pl

from ehrpredict import schema as S

ROW_INDEX = "_label_row"  # position of the label row in the labels frame given to a featurizer
PREDICTION_TIME = "prediction_time"


def events_at_or_before(events: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Pair every label row with the events of its subject that were known at its prediction time.

    ``labels`` needs ``subject_id``, ``prediction_time`` and ``_label_row``; the result has the
    event columns plus those two label columns.

    >>> import datetime as dt
    >>> ev = pl.DataFrame({"subject_id": [1, 1], "time": [dt.datetime(2150, 1, 1), dt.datetime(2150, 1, 3)],
    ...                    "code": ["A", "B"]})
    >>> lab = pl.DataFrame({"subject_id": [1], "prediction_time": [dt.datetime(2150, 1, 2)], "_label_row": [0]})
    >>> events_at_or_before(ev, lab).get_column("code").to_list()
    ['A']
    """
    rows = labels.select(S.SUBJECT_ID, PREDICTION_TIME, ROW_INDEX)
    paired = events.join(rows, on=S.SUBJECT_ID, how="inner")
    return paired.filter(pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= pl.col(PREDICTION_TIME)))
