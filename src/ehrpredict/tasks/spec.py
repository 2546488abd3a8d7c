"""Task specifications: a prediction task written once, as data (YAML), validated on load.

    name: hyperkalemia_48h
    description: Potassium above 5.5 mEq/L in the 48 h after admission + 24 h.
    label_type: binary
    prediction: {anchor: admission, offset: 24h}
    cohort: {min_age: 18, in_episode: true, require_match: true}
    outcome:
      window: {end: 48h}
      lab: {items: [LAB//50971, LAB//50822], unit: mEq/L, above: 5.5}

Times are durations like ``30m``, ``24h``, ``7d``. An outcome window is ``(prediction_time, end]``:
the prediction time itself belongs to the past (features may use it), never to the outcome.
``end`` is a duration after the prediction time, ``episode_end`` (discharge of the admission, ICU
or ED stay the prediction is made in), ``linked_end`` (for ED and ICU stays: discharge of the
hospital admission they belong to), either with an optional ``+duration``, ``min(<end>, episode_end)``
(whichever comes first), or ``none`` (no end).

A code outcome may name codes that do not count (``except: [HOSPITAL_ADMISSION//ELECTIVE]``: planned
returns are not readmissions). A rise-type lab outcome compares with a baseline taken from the values
at or before the prediction time: ``baseline: {within: 7d, stat: min}`` (default: the last value at any
age). A time-to-event outcome says how a row without the event is censored (``censoring:
last_discharge+365d``). The cohort may exclude rows where the episode overlaps a stay of another kind
before the prediction time (``exclude_in_stay: [icu]``: an ICU stay that began before admission counts)
and rows where a competing event comes first (``exclude_competing: {death: [MEDS_DEATH]}``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from ehrpredict.errors import ConfigError

ANCHORS = ("admission", "discharge", "icu_admission", "ed_triage", "ed_departure")
LABEL_TYPES = ("binary", "multiclass", "regression", "multilabel", "time_to_event")
WINDOW_BASES = ("episode_end", "linked_end")
STAY_KINDS = ("hospital", "icu", "ed")  # the episode kinds of ehrpredict.tasks.episodes
CENSORING_BASES = ("last_event", "last_discharge")
BASELINE_STATS = ("last", "min")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: object, where: str) -> timedelta:
    """``"24h"`` → 24 hours; ``0`` → zero. Errors name the field (``where``)."""
    if text in (0, "0"):
        return timedelta(0)
    match = _DURATION.match(str(text))
    if match is None:
        raise ConfigError(f"expected a duration like 30m, 24h or 7d at {where}, got {text!r}")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class WindowEnd:
    """Where an outcome window ends: ``base`` (None = the prediction time) plus ``offset``;
    ``unbounded`` windows never end (time-to-event, censored at the last observation)."""

    base: str | None = None
    offset: timedelta = timedelta(0)
    unbounded: bool = False
    cap: str | None = None  # "episode_end" / "linked_end": the window also ends there (min of both)

    @classmethod
    def parse(cls, text: object, where: str) -> WindowEnd:
        value = str(text).strip()
        if value == "none":
            return cls(unbounded=True)
        if value.startswith("min(") and value.endswith(")"):
            first, _, second = value[4:-1].partition(",")
            if second.strip() not in WINDOW_BASES:
                raise ConfigError(f"expected min(<end>, episode_end|linked_end) at {where}, got {text!r}")
            inner = cls.parse(first, where)
            return cls(base=inner.base, offset=inner.offset, cap=second.strip())
        for base in WINDOW_BASES:
            if value.startswith(base):
                rest = value[len(base) :].strip()
                if not rest:
                    return cls(base=base)
                if not rest.startswith("+"):
                    raise ConfigError(f"expected {base}+<duration> at {where}, got {text!r}")
                return cls(base=base, offset=parse_duration(rest[1:], where))
        return cls(offset=parse_duration(value, where))


@dataclass(frozen=True)
class CodeSet:
    """Codes matched exactly, by prefix (a trailing ``*``) or by regular expression (``re:...``)."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, value: object, where: str) -> CodeSet:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"expected a non-empty list of codes at {where}, got {value!r}")
        for pattern in value:
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ConfigError(
                        f"expected a valid regular expression at {where}, got {pattern!r}: {exc}"
                    ) from exc
        return cls(tuple(value))

    def regex(self) -> str:
        """One anchored regular expression matching every pattern (for Polars ``str.contains``)."""
        parts = []
        for p in self.patterns:
            if p.startswith("re:"):
                parts.append(f"(?:{p[3:]})")
            elif p.endswith("*"):
                parts.append(re.escape(p[:-1]) + ".*")
            else:
                parts.append(re.escape(p))
        return "^(?:" + "|".join(parts) + ")$"


@dataclass(frozen=True)
class LabPredicate:
    """A lab value beyond a threshold, in a stated unit (codes ``LAB//<item>//<unit>``)."""

    items: tuple[str, ...]
    unit: str
    above: float | None = None
    below: float | None = None
    rise_by: float | None = None  # creatinine-style rise over the baseline at prediction time
    rise_ratio: float | None = None
    # The baseline of a rise: ``baseline_stat`` of the values in [prediction time - baseline_within,
    # prediction time] (None: any age). KDIGO compares with a recent value, not one from months ago.
    baseline_within: timedelta | None = None
    baseline_stat: str = "last"

    def codes(self) -> CodeSet:
        return CodeSet(tuple(f"{item}//{self.unit}" for item in self.items))


@dataclass(frozen=True)
class Predicate:
    """One way for the outcome to happen inside its window."""

    window_end: WindowEnd
    codes: CodeSet | None = None
    lab: LabPredicate | None = None
    duration_above: timedelta | None = None  # the episode lasts longer than this
    except_codes: CodeSet | None = None  # codes matched by ``codes`` that do not count (planned returns)


@dataclass(frozen=True)
class Censoring:
    """Where follow-up ends for a row without the event: ``base`` (``last_event`` or
    ``last_discharge``) plus ``offset``. MIMIC records deaths out of hospital up to a year after the
    last discharge, so death follow-up ends at ``last_discharge+365d``, not at the last event.

    >>> Censoring.parse("last_discharge+365d", "censoring").offset.days
    365
    >>> Censoring.parse("last_visit", "censoring")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: expected last_event or last_discharge, optionally +<duration>, at censoring, ...
    """

    base: str
    offset: timedelta = timedelta(0)

    @classmethod
    def parse(cls, text: object, where: str) -> Censoring:
        base, plus, rest = str(text).strip().partition("+")
        if base.strip() not in CENSORING_BASES or (plus and not rest.strip()):
            raise ConfigError(
                f"expected last_event or last_discharge, optionally +<duration>, at {where}, got {text!r}"
            )
        return cls(base.strip(), parse_duration(rest, where) if plus else timedelta(0))


@dataclass(frozen=True)
class Cohort:
    min_age: float | None = 18.0
    in_episode: bool = True  # the episode is still going on at prediction time
    first_episode_only: bool = False
    exclude_died_in_episode: bool = False
    exclude_history: tuple[tuple[str, CodeSet], ...] = ()  # (name, codes) seen at or before prediction
    exclude_in_episode: tuple[tuple[str, CodeSet], ...] = ()  # seen between episode start and prediction
    require_match: bool = False  # lab tasks: a measurement of the lab in the window (else no label)
    require_followup: bool = False  # some event after the prediction time (else no label)
    # Stays of these kinds (icu, ed, hospital) overlapping [episode start, prediction time] exclude the
    # row: an ICU stay that began before the admission and is still going on counts.
    exclude_in_stay: tuple[str, ...] = ()
    # (name, codes): such an event inside the outcome window before any outcome event excludes the row
    # (a competing event, e.g. death before any readmission).
    exclude_competing: tuple[tuple[str, CodeSet], ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    label_type: str
    anchor: str
    offset: timedelta
    cohort: Cohort
    outcome: tuple[Predicate, ...]
    category: str | None = None  # multilabel/multiclass: "icd10_3char" or a code prefix to strip
    censoring: Censoring | None = None  # time_to_event: where follow-up ends without the event
    source: str = field(default="", compare=False)


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ConfigError(f"expected field {where}.{key}, got none")
    return mapping[key]


def _mapping(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a mapping at {where}, got {type(value).__name__}")
    return value


def _check_keys(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ConfigError(f"expected only {sorted(allowed)} at {where}, got unknown field(s) {unknown}")


def _predicate(raw: dict[str, Any], default_end: WindowEnd, where: str) -> Predicate:
    _check_keys(raw, {"codes", "except", "lab", "duration_above", "window"}, where)
    window = _mapping(raw.get("window"), f"{where}.window")
    _check_keys(window, {"end"}, f"{where}.window")
    end = WindowEnd.parse(window["end"], f"{where}.window.end") if "end" in window else default_end
    kinds = [k for k in ("codes", "lab", "duration_above") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"expected exactly one of codes, lab, duration_above at {where}, got {kinds or 'none'}")
    if "except" in raw and "codes" not in raw:
        raise ConfigError(f"expected {where}.except only beside {where}.codes, got it with {kinds or 'nothing'}")
    if "codes" in raw:
        excepted = CodeSet.parse(raw["except"], f"{where}.except") if "except" in raw else None
        return Predicate(end, codes=CodeSet.parse(raw["codes"], f"{where}.codes"), except_codes=excepted)
    if "duration_above" in raw:
        return Predicate(end, duration_above=parse_duration(raw["duration_above"], f"{where}.duration_above"))
    lab = _mapping(raw["lab"], f"{where}.lab")
    _check_keys(lab, {"items", "unit", "above", "below", "rise_by", "rise_ratio", "baseline"}, f"{where}.lab")
    items = CodeSet.parse(_require(lab, "items", f"{where}.lab"), f"{where}.lab.items").patterns
    patterned = [i for i in items if i.endswith("*") or i.startswith("re:")]
    if patterned:  # the unit is appended to each item, so items must be exact item codes
        raise ConfigError(f"expected exact lab item codes like LAB//50971 at {where}.lab.items, got {patterned}")
    thresholds = {k: lab.get(k) for k in ("above", "below", "rise_by", "rise_ratio")}
    for key, value in thresholds.items():
        if value is not None and not isinstance(value, int | float):
            raise ConfigError(f"expected a number at {where}.lab.{key}, got {value!r}")
    if all(v is None for v in thresholds.values()):
        raise ConfigError(f"expected one of above, below, rise_by, rise_ratio at {where}.lab, got none")
    unit = _require(lab, "unit", f"{where}.lab")
    within, stat = _baseline(lab, thresholds, f"{where}.lab")
    return Predicate(end, lab=LabPredicate(items, str(unit), **{k: v for k, v in thresholds.items()},
                                           baseline_within=within, baseline_stat=stat))


def _baseline(lab: dict[str, Any], thresholds: dict[str, Any], where: str) -> tuple[timedelta | None, str]:
    if "baseline" not in lab:
        return None, "last"
    if thresholds["rise_by"] is None and thresholds["rise_ratio"] is None:
        raise ConfigError(f"expected {where}.baseline only with rise_by or rise_ratio, got neither")
    raw = _mapping(lab["baseline"], f"{where}.baseline")
    _check_keys(raw, {"within", "stat"}, f"{where}.baseline")
    stat = raw.get("stat", "last")
    if stat not in BASELINE_STATS:
        raise ConfigError(f"expected {where}.baseline.stat in {list(BASELINE_STATS)}, got {stat!r}")
    within = parse_duration(raw["within"], f"{where}.baseline.within") if "within" in raw else None
    return within, stat


def _code_sets(raw: object, where: str) -> tuple[tuple[str, CodeSet], ...]:
    mapping = _mapping(raw, where)
    return tuple((str(name), CodeSet.parse(codes, f"{where}.{name}")) for name, codes in mapping.items())


def _stay_kinds(value: object, where: str) -> tuple[str, ...]:
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, list) or any(k not in STAY_KINDS for k in kinds):
        raise ConfigError(f"expected a list of stay kinds from {list(STAY_KINDS)} at {where}, got {value!r}")
    return tuple(kinds)


def parse_task(raw: object, source: str = "") -> TaskSpec:
    """Validate a task given as a mapping (e.g. parsed YAML). Errors name the offending field."""
    spec = _mapping(raw, "task")
    _check_keys(spec, {"name", "description", "label_type", "prediction", "cohort", "outcome", "category"}, "task")
    name = _require(spec, "name", "task")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
        raise ConfigError(f"expected task.name of lowercase letters, digits and _, got {name!r}")
    label_type = _require(spec, "label_type", "task")
    if label_type not in LABEL_TYPES:
        raise ConfigError(f"expected task.label_type in {list(LABEL_TYPES)}, got {label_type!r}")
    prediction = _mapping(_require(spec, "prediction", "task"), "task.prediction")
    _check_keys(prediction, {"anchor", "offset"}, "task.prediction")
    anchor = _require(prediction, "anchor", "task.prediction")
    if anchor not in ANCHORS:
        raise ConfigError(f"expected task.prediction.anchor in {list(ANCHORS)}, got {anchor!r}")
    cohort_raw = _mapping(spec.get("cohort"), "task.cohort")
    allowed = {
        "min_age",
        "in_episode",
        "first_episode_only",
        "exclude_died_in_episode",
        "exclude_history",
        "exclude_in_episode",
        "require_match",
        "require_followup",
        "exclude_in_stay",
        "exclude_competing",
    }
    _check_keys(cohort_raw, allowed, "task.cohort")
    non_flags = {"min_age", "exclude_history", "exclude_in_episode", "exclude_in_stay", "exclude_competing"}
    for key in allowed - non_flags:
        if key in cohort_raw and not isinstance(cohort_raw[key], bool):
            raise ConfigError(f"expected true or false at task.cohort.{key}, got {cohort_raw[key]!r}")
    min_age = cohort_raw.get("min_age", 18)
    if min_age is not None and (isinstance(min_age, bool) or not isinstance(min_age, int | float)):
        raise ConfigError(f"expected a number at task.cohort.min_age, got {min_age!r}")
    cohort = Cohort(
        min_age=None if min_age is None else float(min_age),
        in_episode=cohort_raw.get("in_episode", True),
        first_episode_only=cohort_raw.get("first_episode_only", False),
        exclude_died_in_episode=cohort_raw.get("exclude_died_in_episode", False),
        exclude_history=_code_sets(cohort_raw.get("exclude_history"), "task.cohort.exclude_history"),
        exclude_in_episode=_code_sets(cohort_raw.get("exclude_in_episode"), "task.cohort.exclude_in_episode"),
        require_match=cohort_raw.get("require_match", False),
        require_followup=cohort_raw.get("require_followup", False),
        exclude_in_stay=_stay_kinds(cohort_raw.get("exclude_in_stay", []), "task.cohort.exclude_in_stay"),
        exclude_competing=_code_sets(cohort_raw.get("exclude_competing"), "task.cohort.exclude_competing"),
    )
    outcome = _mapping(_require(spec, "outcome", "task"), "task.outcome")
    window = _mapping(outcome.get("window"), "task.outcome.window")
    _check_keys(window, {"end"}, "task.outcome.window")
    default_end = WindowEnd.parse(_require(window, "end", "task.outcome.window"), "task.outcome.window.end")
    censoring = _censoring(outcome, label_type)
    outcome = {k: v for k, v in outcome.items() if k != "censoring"}
    if "any_of" in outcome:
        _check_keys(outcome, {"window", "any_of"}, "task.outcome")
        items = outcome["any_of"]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"expected a non-empty list at task.outcome.any_of, got {items!r}")
        predicates = tuple(
            _predicate(_mapping(p, f"task.outcome.any_of[{i}]"), default_end, f"task.outcome.any_of[{i}]")
            for i, p in enumerate(items)
        )
    else:
        predicates = (_predicate({k: v for k, v in outcome.items() if k != "window"}, default_end, "task.outcome"),)
    category = spec.get("category")
    if label_type in ("multilabel", "multiclass") and not category:
        raise ConfigError(f"expected task.category for a {label_type} task, got none")
    if label_type in ("multilabel", "multiclass") and any(p.codes is None for p in predicates):
        raise ConfigError(f"expected only codes predicates in task.outcome of a {label_type} task "
                          "(its classes are taken from the matching codes)")
    return TaskSpec(
        name=name,
        description=str(_require(spec, "description", "task")),
        label_type=label_type,
        anchor=anchor,
        offset=parse_duration(prediction.get("offset", 0), "task.prediction.offset"),
        cohort=cohort,
        outcome=predicates,
        category=category,
        censoring=censoring,
        source=source,
    )


def _censoring(outcome: dict[str, Any], label_type: str) -> Censoring | None:
    """Time-to-event tasks must say where follow-up ends; other tasks must not."""
    if label_type != "time_to_event":
        if "censoring" in outcome:
            raise ConfigError(f"expected task.outcome.censoring only for time_to_event tasks, got a {label_type} task")
        return None
    if "censoring" not in outcome:
        raise ConfigError("expected task.outcome.censoring for a time_to_event task (where follow-up ends "
                          "without the event: last_event, or last_discharge+365d for MIMIC deaths), got none")
    return Censoring.parse(outcome["censoring"], "task.outcome.censoring")


LIBRARY = Path(__file__).parent / "library"


def library_names() -> list[str]:
    return sorted(p.stem for p in LIBRARY.glob("*.yaml"))


def load_task(name_or_path: str | Path) -> TaskSpec:
    """A built-in task by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        candidate = LIBRARY / f"{name_or_path}.yaml"
        if not candidate.exists():
            raise ConfigError(
                f"expected a built-in task name or a YAML file, got {str(name_or_path)!r} "
                f"(built-in tasks: {', '.join(library_names())})"
            )
        path = candidate
    if not path.exists():
        raise ConfigError(f"expected a task YAML file, got a missing path: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: expected valid YAML, got: {exc}") from exc
    try:
        return parse_task(raw, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_library() -> list[TaskSpec]:
    return [load_task(name) for name in library_names()]
