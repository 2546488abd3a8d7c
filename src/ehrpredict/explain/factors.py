"""A feature as a clinician reads it: "Creatinine (Blood, Chemistry), last value in 24 h: 2.3 mg/dL".

Counts features are named ``CODE|window|stat`` (:mod:`ehrpredict.features.counts`); a code is shown by
the words the timeline's text uses for it (its description in ``codes.parquet``: see
:func:`ehrpredict.text.serialize.describe_codes`), the code itself when it has none. A description's
trailing ``[unit]`` becomes the unit of the values. Conditions and procedures (by the dataset's
:class:`~ehrpredict.vocab.kinds.CodeKinds`) read as recorded or not, with their code; other codes as
counts. A value statistic whose code did not occur in the window reads "not measured": the sparse
matrix stores an absent value as 0, which must not read as a measured 0.

    >>> describe_factor("ICD10CM//I50.9|all|count", 1.0, {"ICD10CM//I50.9": "Heart failure, unspecified"})
    'Heart failure, unspecified (ICD10CM I50.9), recorded in all history: yes'
    >>> describe_factor("LAB//50912//mg/dL|1d|last", 2.3, {"LAB//50912//mg/dL": "Creatinine (Blood) [mg/dL]"})
    'Creatinine (Blood), last value in 24 h: 2.3 mg/dL'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from ehrpredict import schema as S
from ehrpredict.tasks.spec import parse_duration
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS, CodeKinds

TEXT_FACTOR = "text_embedding"  # the text embedding's columns, taken together as one factor
AGE = "age_years"  # static columns at the end of the counts matrix
VISIT_HOURS = "hours_since_visit_start"
ALL = "all"

WINDOW_WORDS = {"1d": "24 h", "7d": "7 days", "30d": "30 days", "365d": "1 year", ALL: "all history"}
STAT_WORDS = {"last": "last value", "mean": "mean", "min": "lowest value", "max": "highest value"}
COUNT = "count"
_UNIT = re.compile(r"\s*\[([^\]]*)\]\s*$")
_NO_UNIT = ("", "None")  # ingestion writes "[None]" where the source had no unit


@dataclass(frozen=True)
class FeatureName:
    """A feature name taken apart: ``code``, ``window`` and ``stat`` of a counts feature (all None for
    another column, e.g. ``age_years``).

    >>> FeatureName.parse("LAB//50912//mg/dL|7d|max")
    FeatureName(name='LAB//50912//mg/dL|7d|max', code='LAB//50912//mg/dL', window='7d', stat='max')
    >>> FeatureName.parse("age_years").code is None
    True
    """

    name: str
    code: str | None = None
    window: str | None = None
    stat: str | None = None

    @classmethod
    def parse(cls, name: str) -> FeatureName:
        parts = name.rsplit("|", 2)
        if len(parts) == 3 and parts[2] in (COUNT, *STAT_WORDS) and parts[0]:
            return cls(name, parts[0], parts[1], parts[2])
        return cls(name)

    def window_length(self) -> timedelta | None:
        """The window as a duration (None: all history)."""
        if self.window is None or self.window == ALL:
            return None
        return parse_duration(self.window, "windows")


def window_words(window: str) -> str:
    """``1d`` → ``24 h``; any other duration spelled out.

    >>> [window_words(w) for w in ("1d", "365d", "all", "12h", "2d")]
    ['24 h', '1 year', 'all history', '12 h', '2 days']
    """
    if window in WINDOW_WORDS:
        return WINDOW_WORDS[window]
    seconds = parse_duration(window, "windows").total_seconds()
    if seconds % 86_400 == 0:
        days = int(seconds // 86_400)
        return f"{days} day{'s' * (days != 1)}"
    return f"{format_number(seconds / 3600)} h"


def format_number(value: float) -> str:
    """Shortest readable form: whole numbers without decimals, others to 4 significant digits.

    >>> [format_number(v) for v in (3.0, 2.299999952, 0.000123456, 98.65, 125000.4, float("nan"))]
    ['3', '2.3', '0.0001235', '98.65', '125000', 'unknown']
    """
    if math.isnan(value):
        return "unknown"
    if float(value).is_integer() or abs(value) >= 10_000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def split_unit(description: str) -> tuple[str, str | None]:
    """A description without its trailing ``[unit]``, and the unit.

    >>> split_unit("Creatinine (Blood, Chemistry) [mg/dL]"), split_unit("CT scan [None]"), split_unit("Sex: F")
    (('Creatinine (Blood, Chemistry)', 'mg/dL'), ('CT scan', None), ('Sex: F', None))
    """
    match = _UNIT.search(description)
    if match is None:
        return description, None
    unit = match.group(1).strip()
    return description[:match.start()], None if unit in _NO_UNIT else unit


def is_recorded_kind(code: str, kinds: CodeKinds) -> bool:
    """Conditions and procedures: read as recorded or not, not as a count."""
    prefix = code.split(S.CODE_SEPARATOR, 1)[0]
    return S.CODE_SEPARATOR in code and prefix in (*kinds.conditions, *kinds.procedures)


def code_label(code: str, descriptions: Mapping[str, str], kinds: CodeKinds = DEFAULT_CODE_KINDS) -> str:
    """A code's words without the unit; conditions and procedures followed by their code.

    >>> code_label("ICD10CM//I50.9", {"ICD10CM//I50.9": "Heart failure, unspecified"})
    'Heart failure, unspecified (ICD10CM I50.9)'
    >>> code_label("UNKNOWN//42", {})
    'UNKNOWN//42'
    """
    description = descriptions.get(code, code)
    if description == code:
        return code
    label, _ = split_unit(description)
    if is_recorded_kind(code, kinds):
        return f"{label} ({code.replace(S.CODE_SEPARATOR, ' ')})"
    return label


def describe_factor(name: str, value: float, descriptions: Mapping[str, str] | None = None,
                    kinds: CodeKinds = DEFAULT_CODE_KINDS, count: float | None = None) -> str:
    """One factor's sentence: what the feature is and its value (the featurizer's, before any scaling).

    ``count``: the same code's count in the same window, when known, so that a value statistic of a
    code that did not occur reads "not measured" rather than 0.

    >>> describe_factor("CHART//220045//bpm|7d|count", 3.0, {"CHART//220045//bpm": "Heart Rate [bpm]"})
    'Heart Rate, count in 7 days: 3'
    >>> describe_factor("ICD10CM//N17.9|30d|count", 0.0)
    'ICD10CM//N17.9, recorded in 30 days: no'
    >>> describe_factor("LAB//50912//mg/dL|1d|max", 0.0, {"LAB//50912//mg/dL": "Creatinine [mg/dL]"}, count=0.0)
    'Creatinine, highest value in 24 h: not measured'
    >>> describe_factor("age_years", 67.8), describe_factor("hours_since_visit_start", 30.2)
    ('Age: 67 years', 'Time since the visit started: 30 h')
    >>> describe_factor("text_embedding", 0.0)
    "The timeline's text, as embedded"
    """
    if name == TEXT_FACTOR:
        return "The timeline's text, as embedded"
    if name == AGE:
        return f"Age: {'unknown' if math.isnan(value) else f'{math.floor(value)} years'}"
    if name == VISIT_HOURS:
        if math.isnan(value):
            return "Time since the visit started: unknown"
        return f"Time since the visit started: {format_number(round(value) if value >= 10 else round(value, 1))} h"
    feature = FeatureName.parse(name)
    if feature.code is None or feature.window is None or feature.stat is None:
        return f"{name}: {format_number(value)}"
    descriptions = descriptions or {}
    label = code_label(feature.code, descriptions, kinds)
    window = window_words(feature.window)
    if feature.stat == COUNT:
        if is_recorded_kind(feature.code, kinds):
            times = f" ({format_number(value)} times)" if value > 1 else ""
            return f"{label}, recorded in {window}: {'yes' if value > 0 else 'no'}{times}"
        return f"{label}, count in {window}: {format_number(value)}"
    if count is not None and count <= 0:
        return f"{label}, {STAT_WORDS[feature.stat]} in {window}: not measured"
    _, unit = split_unit(descriptions.get(feature.code, ""))
    return f"{label}, {STAT_WORDS[feature.stat]} in {window}: {format_number(value)}{f' {unit}' if unit else ''}"
