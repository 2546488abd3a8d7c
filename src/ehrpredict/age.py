"""Age, computed in one place: tasks (``min_age``), the text's demographics and the subgroup age bands
all call :func:`age_in_years`, so a patient is never 18 for the cohort and 17 for a subgroup."""

from __future__ import annotations

import polars as pl


def _moment_in_year(t: pl.Expr) -> pl.Expr:
    """Month, day and time of day as one sortable number (MMDDhhmmss)."""
    return (t.dt.month().cast(pl.Int64) * 100_000_000 + t.dt.day().cast(pl.Int64) * 1_000_000
            + t.dt.hour().cast(pl.Int64) * 10_000 + t.dt.minute().cast(pl.Int64) * 100 + t.dt.second().cast(pl.Int64))


def age_in_years(at: pl.Expr, birth: pl.Expr) -> pl.Expr:
    """Completed years at ``at``, as on a calendar: the year difference, less one before the birthday
    (``days / 365.25`` makes an 18th birthday 17.998 years). Null when either is null.

    >>> import datetime as dt
    >>> frame = pl.DataFrame({"at": [dt.datetime(2118, 1, 1), dt.datetime(2145, 6, 14, 23)],
    ...                       "birth": [dt.datetime(2100, 1, 1), dt.datetime(2100, 6, 15)]})
    >>> frame.select(age_in_years(pl.col("at"), pl.col("birth"))).to_series().to_list()
    [18, 44]
    """
    before_birthday = (_moment_in_year(at) < _moment_in_year(birth)).cast(pl.Int64)
    return at.dt.year().cast(pl.Int64) - birth.dt.year().cast(pl.Int64) - before_birthday
