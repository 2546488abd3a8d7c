"""The one place where the prediction-time cutoff is applied. Every featurizer calls it.

A feature for a label row may use an event only if it was known at the prediction time: ``event.time
<= prediction_time``; static events (null time: sex) are always usable. Billing codes (ICD diagnoses
and procedures, DRG, HCPCS) are the exception to "time = when it was known": ingestion times them at
the discharge of their stay, because labels need them there (a stay's diagnoses belong to that stay),
but coders assign them after discharge. A :class:`CodingDelay` makes them usable by features only
``delay`` after that time (default 7 days), so a prediction made at discharge does not see the codes
of the stay that is ending. A property test proves that events after the cutoff never change a feature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.dataset import dataset_metadata
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS, code_kinds

ROW_INDEX = "_label_row"  # position of the label row in the labels frame given to a featurizer
PREDICTION_TIME = S.PREDICTION_TIME
KNOWN_AT = "_known_at"  # when an event became usable, where that differs from its time

# Hospitals aim to finish coding within days of discharge (the "discharged, not final billed" window);
# 7 days is a conservative bound. 0 reproduces the optimistic setting where codes are known at discharge.
DEFAULT_CODING_DELAY = "7d"
# Code vocabularies assigned by coders after discharge, when a dataset's metadata does not list its own
# (``metadata/dataset.json``: ``{"ehrpredict": {"code_kinds": {"coded_after_discharge": [...]}}}``).
BILLING_VOCABULARIES = DEFAULT_CODE_KINDS.coded_after_discharge


@dataclass(frozen=True)
class CodingDelay:
    """Codes of ``vocabularies`` become usable ``delay`` after their event time.

    >>> import datetime as dt
    >>> delay = CodingDelay(dt.timedelta(days=7), ("ICD10CM",))
    >>> ev = pl.DataFrame({"subject_id": [1, 1], "time": [dt.datetime(2150, 1, 5)] * 2,
    ...                    "code": ["ICD10CM//I50.9", "LAB//50912//mg/dL"]})
    >>> lab = pl.DataFrame({"subject_id": [1], "prediction_time": [dt.datetime(2150, 1, 5)], "_label_row": [0]})
    >>> events_at_or_before(delay.apply(ev), lab).get_column("code").to_list()
    ['LAB//50912//mg/dL']
    """

    delay: timedelta
    vocabularies: tuple[str, ...] = BILLING_VOCABULARIES

    def apply(self, events: pl.DataFrame) -> pl.DataFrame:
        """``events`` (with a ``code`` column) plus when each became usable, for the cutoff."""
        if self.delay <= timedelta(0) or not self.vocabularies:
            return events
        pattern = "^(?:" + "|".join(re.escape(v) for v in self.vocabularies) + ")" + re.escape(S.CODE_SEPARATOR)
        coded = pl.col(S.CODE).str.contains(pattern)
        return events.with_columns(
            pl.when(coded).then(pl.col(S.TIME) + pl.lit(self.delay)).otherwise(pl.col(S.TIME)).alias(KNOWN_AT)
        )


def coding_delay(dataset: str | Path, delay: timedelta) -> CodingDelay:
    """The delay for a dataset directory (see :func:`coding_delay_for`)."""
    return coding_delay_for(dataset_metadata(dataset), delay)


def coding_delay_for(metadata: Mapping[str, Any], delay: timedelta) -> CodingDelay:
    """The delay for a dataset with this metadata (``dataset.json``): the vocabularies coded after
    discharge of its code kinds (:func:`~ehrpredict.vocab.kinds.code_kinds`: the billing vocabularies
    ehrpredict's own ingestion writes unless its metadata lists others)."""
    return CodingDelay(delay, code_kinds(metadata).coded_after_discharge)


def events_at_or_before(events: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Pair every label row with the events of its subject that were known at its prediction time.

    ``labels`` needs ``subject_id``, ``prediction_time`` and ``_label_row``; the result has the
    event columns plus those two label columns. Events passed through :meth:`CodingDelay.apply`
    are judged by when they became usable.

    >>> import datetime as dt
    >>> ev = pl.DataFrame({"subject_id": [1, 1], "time": [dt.datetime(2150, 1, 1), dt.datetime(2150, 1, 3)],
    ...                    "code": ["A", "B"]})
    >>> lab = pl.DataFrame({"subject_id": [1], "prediction_time": [dt.datetime(2150, 1, 2)], "_label_row": [0]})
    >>> events_at_or_before(ev, lab).get_column("code").to_list()
    ['A']
    """
    rows = labels.select(S.SUBJECT_ID, PREDICTION_TIME, ROW_INDEX)
    paired = events.join(rows, on=S.SUBJECT_ID, how="inner")
    if KNOWN_AT not in events.columns:
        return paired.filter(pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= pl.col(PREDICTION_TIME)))
    known = paired.filter(pl.col(S.TIME).is_null() | (pl.col(KNOWN_AT) <= pl.col(PREDICTION_TIME)))
    return known.drop(KNOWN_AT)
