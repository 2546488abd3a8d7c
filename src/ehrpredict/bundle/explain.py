"""Why a bundle scores a patient as it does.

- counts and counts+text bundles: exact contributions (LightGBM's TreeSHAP, or a linear head's
  coefficient × value), as readable factors with the timeline excerpt behind them
  (:mod:`ehrpredict.explain.card`); the text of a counts+text model is one factor.
- text bundles: occlusion, the risk without each section (or line) of the serialized timeline
  (:mod:`ehrpredict.explain.occlusion`).

Code descriptions come from the dataset's dictionary and, for codes it does not describe, from the
descriptions the bundle kept from its training data, so a factor reads as words on a dataset without a
code dictionary too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.bundle.model import Bundle
from ehrpredict.errors import ConfigError, DataError
from ehrpredict.events.cutoff import PREDICTION_TIME
from ehrpredict.events.source import CODES_SCHEMA, EventSource, ShardRef
from ehrpredict.explain.card import ExplanationCard, count_of, explain_rows
from ehrpredict.explain.contributions import contributions, global_importance, name_index, top_factors
from ehrpredict.explain.factors import FeatureName, describe_factor
from ehrpredict.explain.occlusion import FittedTextModel, Occlusion, explain_occlusion
from ehrpredict.text.serialize import describe_codes
from ehrpredict.vocab.kinds import code_kinds

DESCRIPTIONS = "vocabulary/descriptions.parquet"


@dataclass(frozen=True)
class _Described:
    """``source`` with its code dictionary completed by ``extra`` (the bundle's training descriptions)."""

    source: EventSource
    extra: pl.DataFrame

    def shards(self) -> tuple[ShardRef, ...]:
        return self.source.shards()

    def read(self, shard: ShardRef, columns: Any, subjects: pl.Series | None = None) -> pl.DataFrame:
        return self.source.read(shard, columns, subjects)

    def codes(self) -> pl.DataFrame:
        return _merged(self.source.codes(), self.extra)

    def codes_of(self, wanted: set[str]) -> pl.DataFrame:
        """:meth:`codes` of ``wanted`` codes only (cheaper when the dictionaries are large)."""
        keep = pl.col(S.CODE).is_in(pl.Series(sorted(wanted), dtype=pl.String).implode())
        return _merged(self.source.codes().filter(keep), self.extra.filter(keep))

    def metadata(self) -> Mapping[str, Any]:
        return self.source.metadata()


def _merged(own: pl.DataFrame, extra: pl.DataFrame) -> pl.DataFrame:
    """``own`` code dictionary, with ``extra``'s entry for each code ``own`` does not describe."""
    described = own.filter(pl.col(S.DESCRIPTION).is_not_null() & (pl.col(S.DESCRIPTION).str.strip_chars() != ""))
    extra = extra.join(described.select(S.CODE), on=S.CODE, how="anti")
    return pl.concat([own.join(extra.select(S.CODE), on=S.CODE, how="anti"), extra], how="vertical_relaxed")


def training_descriptions(source: EventSource, codes: set[str]) -> pl.DataFrame:
    """``code, description, parent_codes`` of ``codes`` from the training source's dictionary."""
    dictionary = source.codes()
    wanted = pl.Series(sorted(codes), dtype=pl.String).implode()
    return dictionary.filter(pl.col(S.CODE).is_in(wanted)).select(list(CODES_SCHEMA))


def described(bundle: Bundle, source: EventSource) -> EventSource:
    """``source`` with its code dictionary completed by the bundle's training descriptions (once: a source
    already completed is returned as it is)."""
    path = None if bundle.path is None else bundle.path / DESCRIPTIONS
    if path is None or not path.exists() or isinstance(source, _Described):
        return source
    return _Described(source, _descriptions(str(path), path.stat().st_mtime_ns))


@lru_cache(maxsize=32)
def _descriptions(path: str, mtime_ns: int) -> pl.DataFrame:
    # Read once per file version: the service explains every request with the same bundle.
    return pl.read_parquet(path)


def explain_bundle_rows(bundle: Bundle, source: EventSource, rows: pl.DataFrame, k: int = 5,
                        max_events: int = 10) -> list[ExplanationCard]:
    """Cards for label rows of a counts or counts+text bundle (binary or regression)."""
    if bundle.pipeline.representation == "text":
        raise ConfigError("expected a counts or counts+text bundle for factor cards, got a text bundle: it is "
                          "explained by occlusion (explain_subject)")
    return explain_rows(bundle.pipeline, described(bundle, source), rows, k=k,
                        calibrate=bundle.probability if bundle.calibrator is not None else None,
                        threshold=bundle.threshold, max_events=max_events)


def explain_text_row(bundle: Bundle, source: EventSource, row: pl.DataFrame, by: str = "section") -> Occlusion:
    model = FittedTextModel(bundle.pipeline, source, row.select(S.SUBJECT_ID, S.PREDICTION_TIME))
    return explain_occlusion(model, int(row.item(0, S.SUBJECT_ID)), row.item(0, S.PREDICTION_TIME), by=by)


def subject_rows(bundle: Bundle, source: EventSource, labels: pl.DataFrame | None, subject_id: int,
                 at: datetime | None) -> pl.DataFrame:
    """The label row to explain: ``(subject, at)`` when a time is given, else the subject's first row of
    the bundle's task in ``labels``."""
    if at is not None:
        return pl.DataFrame({S.SUBJECT_ID: [subject_id], PREDICTION_TIME: [at]},
                            schema={S.SUBJECT_ID: pl.Int64, PREDICTION_TIME: pl.Datetime("us")})
    assert labels is not None
    rows = labels.filter(pl.col(S.SUBJECT_ID) == subject_id).sort(PREDICTION_TIME)
    if rows.is_empty():
        raise DataError(f"expected a label row of {bundle.task.name} for subject {subject_id}, got none (the task has "
                        f"{labels.height:,} rows on this dataset; pass --at TIME to explain any moment)")
    return rows.head(1)


def explanation_frame(bundle: Bundle, X: Any, rows: pl.DataFrame, source: EventSource, k: int) -> pl.DataFrame:
    """``predict --explain K``: the top ``k`` factors up and down of every row, one row per factor
    (``subject_id, prediction_time, direction, rank, feature, factor, contribution, value``)."""
    if bundle.pipeline.representation == "text" or bundle.pipeline.label_type == "multilabel":
        raise ConfigError(f"expected a counts or counts+text bundle of a binary or regression task for --explain, got "
                          f"{bundle.pipeline.representation} ({bundle.pipeline.label_type}); explain a text model with "
                          "ehrpredict explain (occlusion)")
    c = contributions(bundle.pipeline, X)
    tops = [top_factors(c, row, k) for row in range(c.n_rows)]
    codes = {code for t in tops for f in (*t.up, *t.down) if (code := FeatureName.parse(f.feature).code)}
    source = described(bundle, source)
    descriptions = describe_codes(codes, source.codes_of(codes) if isinstance(source, _Described) else source.codes())
    kinds = code_kinds(source.metadata())
    index = name_index(c.feature_names)
    records = []
    for row, top in enumerate(tops):
        subject, when = rows.item(row, S.SUBJECT_ID), rows.item(row, PREDICTION_TIME)
        for direction, factors in (("up", top.up), ("down", top.down)):
            for rank, f in enumerate(factors, 1):
                # a value statistic of a code absent from the window reads "not measured", not 0
                text = describe_factor(f.feature, f.value, descriptions, kinds,
                                       count=count_of(c, index, row, f.feature))
                records.append((subject, when, direction, rank, f.feature, text, f.contribution, f.value))
    schema: dict[str, Any] = {S.SUBJECT_ID: pl.Int64, PREDICTION_TIME: pl.Datetime("us"), "direction": pl.String,
                              "rank": pl.Int32,
              "feature": pl.String, "factor": pl.String, "contribution": pl.Float64, "value": pl.Float64}
    return pl.DataFrame(records, schema=schema, orient="row")


def importance(bundle: Bundle, X: Any, source: EventSource, top: int = 20) -> list[dict[str, Any]]:
    """Mean |contribution| per feature over the rows of ``X`` (held-out in the fit report), readable."""
    if bundle.pipeline.representation == "text" or bundle.pipeline.label_type == "multilabel":
        return []
    c = contributions(bundle.pipeline, X)
    ranked = global_importance(c, top)
    codes = {code for name, _ in ranked if (code := FeatureName.parse(name).code)}
    descriptions = describe_codes(codes, source.codes())
    index = {name: j for j, name in enumerate(c.feature_names)}
    out = []
    for name, value in ranked:
        column = c.raw_values[:, index[name]]
        present = column.getnnz()
        typical = float(np.median(column.data)) if present else 0.0
        out.append({"feature": name, "factor": describe_factor(name, typical, descriptions).rsplit(": ", 1)[0],
                    "mean_abs_contribution": value, "rows_with_value": int(present)})
    return out
