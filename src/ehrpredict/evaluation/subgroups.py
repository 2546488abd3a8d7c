"""Subgroups for fairness tables: sex, age band, race/ethnicity and insurance at prediction time.

Each attribute is read through the prediction-time cutoff (the last value recorded at or before the
prediction time), so a subgroup never uses information from after the prediction. Which code prefix
holds sex, race and insurance is the dataset's (:class:`~ehrpredict.vocab.kinds.CodeKinds`).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ehrpredict import schema as S
from ehrpredict.age import age_in_years
from ehrpredict.events.cutoff import PREDICTION_TIME, ROW_INDEX, events_at_or_before
from ehrpredict.events.source import EventSource, as_source
from ehrpredict.vocab.kinds import ATTRIBUTES, CodeKinds, code_kinds

AGE_BANDS = ((18, "18-44"), (45, "45-64"), (65, "65-79"), (80, "80+"))


def _age_band(age: pl.Expr) -> pl.Expr:
    band = pl.lit("under 18")
    for low, name in AGE_BANDS:
        band = pl.when(age >= low).then(pl.lit(name)).otherwise(band)
    return band


def subgroups(source: EventSource | str | Path, labels: pl.DataFrame, kinds: CodeKinds | None = None
              ) -> pl.DataFrame:
    """One row per label row (in order): sex, age_band, race, insurance ("unknown" when unrecorded, or
    when ``kinds``, by default the source's, names no prefix for the attribute)."""
    source = as_source(source)
    attributes = (kinds if kinds is not None else code_kinds(source.metadata())).attributes()
    rows = labels.select(S.SUBJECT_ID, PREDICTION_TIME).with_row_index(ROW_INDEX).with_columns(
        pl.col(ROW_INDEX).cast(pl.Int64)
    )
    prefixes = (*attributes.values(), S.BIRTH_CODE)
    parts = []
    subjects = rows.get_column(S.SUBJECT_ID).unique()
    for shard in source.shards():
        events = source.read(shard, [S.SUBJECT_ID, S.TIME, S.CODE], subjects)
        events = events.filter(pl.any_horizontal([pl.col(S.CODE).str.starts_with(p) for p in prefixes]))
        parts.append(events_at_or_before(events, rows))
    known = pl.concat(parts) if parts else pl.DataFrame(schema={ROW_INDEX: pl.Int64, S.CODE: pl.String})
    out = rows.select(ROW_INDEX, PREDICTION_TIME)
    for name in ATTRIBUTES:
        prefix = attributes.get(name)
        if prefix is None:  # the dataset does not record it
            out = out.with_columns(pl.lit(None, pl.String).alias(name))
            continue
        last = (known.filter(pl.col(S.CODE).str.starts_with(prefix)).sort(S.TIME, nulls_last=False)
                .group_by(ROW_INDEX).agg(pl.col(S.CODE).last().str.strip_prefix(prefix).alias(name)))
        out = out.join(last, on=ROW_INDEX, how="left")
    birth = known.filter(pl.col(S.CODE) == S.BIRTH_CODE).group_by(ROW_INDEX).agg(pl.col(S.TIME).min().alias("_birth"))
    out = out.join(birth, on=ROW_INDEX, how="left")
    age = age_in_years(pl.col(PREDICTION_TIME), pl.col("_birth"))  # the same age as the task's min_age
    out = out.with_columns(pl.when(pl.col("_birth").is_null()).then(pl.lit("unknown")).otherwise(_age_band(age))
                           .alias("age_band"))
    return out.sort(ROW_INDEX).select(
        *(pl.col(c).fill_null("unknown") for c in ("sex", "age_band", "race", "insurance"))
    )
