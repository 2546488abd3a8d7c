"""FHIR date and time values → the event clock.

**Time policy: the wall clock is kept and the offset is dropped.** MIMIC-IV on FHIR writes the CSV's
local clock times with the hospital's offset (``2180-05-06T22:23:00-04:00`` for the CSV's
``2180-05-06 22:23:00``); converting to UTC would move every event 4-5 hours against the CSV route and
against the dates MIMIC-IV's notes and tables state. So ``...T22:23:00-04:00`` becomes ``22:23:00``.
For another FHIR source this means event times are each source's local clock time: right for one
hospital, whose intervals and time of day stay as recorded; sources in different time zones are not
put on one clock, and around a daylight-saving change an interval can be an hour off (the same as a
CSV export in local time).

Dates without a time are placed where the CSV route places them: at the end of their day (23:59:59),
the earliest moment the fact is certainly known (``deceasedDateTime`` "2137-09-02" → 2137-09-02
23:59:59). A birth date is the start of its day. A year or a year-month is the end (or start, for birth)
of that year or month.

Export writes the wall clock back with the offset ``+00:00`` (FHIR requires an offset on a time), so an
export read back gives the same times.
"""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta

_PATTERN = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
EXPORT_OFFSET = "+00:00"


def parse_time(value: object, *, start: bool = False) -> datetime | None:
    """A FHIR date, dateTime or instant as a naive wall-clock datetime; None when it is not one.

    >>> parse_time("2180-05-06T22:23:00-04:00")
    datetime.datetime(2180, 5, 6, 22, 23)
    >>> parse_time("2137-09-02")
    datetime.datetime(2137, 9, 2, 23, 59, 59)
    >>> parse_time("2062-06-05", start=True)
    datetime.datetime(2062, 6, 5, 0, 0)
    >>> parse_time("yesterday") is None
    True
    """
    if not isinstance(value, str):
        return None
    match = _PATTERN.match(value)
    if match is None:
        return None
    try:
        year = int(match["y"])
        if match["H"] is not None:
            micro = int((match["f"] or "0")[:6].ljust(6, "0"))
            return datetime(year, int(match["m"]), int(match["d"]), int(match["H"]), int(match["M"]),
                            int(match["S"] or 0), micro)
        if match["d"] is not None:
            day = datetime(year, int(match["m"]), int(match["d"]))
        elif match["m"] is not None:
            month = int(match["m"])
            day = datetime(year, month, 1 if start else calendar.monthrange(year, month)[1])
        else:
            day = datetime(year, 1, 1) if start else datetime(year, 12, 31)
    except ValueError:  # 2180-02-30
        return None
    return day if start else day + timedelta(hours=23, minutes=59, seconds=59)


def format_time(value: datetime) -> str:
    """A FHIR dateTime for a wall-clock time (see the module docstring).

    >>> format_time(datetime(2180, 5, 6, 22, 23))
    '2180-05-06T22:23:00+00:00'
    """
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + EXPORT_OFFSET
