"""Every built-in task on a handful of hand-written patients, expected labels next to their events.

Codes are those the MIMIC-IV ingestion writes. Adults are born 2100 (50 in 2150), children 2140.
Unless a comment says otherwise an admission runs 2150-01-01 08:00 → 01-05 08:00, so a task predicting
at admission + 24 h predicts at 01-02 08:00 and at discharge at 01-05 08:00. Outcome windows are
(prediction time, end]: an event exactly at the prediction time is history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import pytest

from ehrpredict.tasks.labeler import label_events
from ehrpredict.tasks.spec import library_names, load_task
from ehrpredict.testing.events import admission, born, died, ed_stay, events, icu_stay, last_events

ADMIT, PRED24, PRED48, DISCH = "2150-01-01 08:00", "2150-01-02 08:00", "2150-01-03 08:00", "2150-01-05 08:00"
CHILD = "younger than 18 or unknown age"
ENDED = "episode ended before prediction time"
DIED_BEFORE = "died at or before prediction time"
NO_MATCH = "no matching measurement or code in the outcome window"
NO_FOLLOWUP = "no follow-up after prediction time"
NO_BASELINE = "no baseline value at prediction time"


def _when(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S" if t.second else "%Y-%m-%d %H:%M")


def label(task: str, *parts: tuple) -> tuple[list[tuple], dict[str, int]]:
    """Labels as ``(subject, prediction time, value...)`` and exclusion counts; ``parts`` are event rows
    or tuples of rows (``admission(...)``)."""
    rows = [r for p in parts for r in (p if isinstance(p[0], tuple) else (p,))]
    frame = events(*rows)
    labels, excluded = label_events(load_task(task), frame, last_events(frame))
    out = [(row[0], _when(row[1]), *row[2:]) for row in labels.iter_rows()]
    return out, dict(excluded)


TESTED: set[str] = set()
F = TypeVar("F", bound=Callable[..., Any])


def covers(*names: str) -> Callable[[F], F]:
    """Record that the decorated test labels ``names`` (checked by the last test of this file)."""
    TESTED.update(names)
    return lambda f: f


@covers("mortality_in_hospital_24h", "mortality_in_hospital_48h")
@pytest.mark.parametrize("hours", [24, 48])
def test_mortality_in_hospital(hours: int) -> None:
    pred = PRED24 if hours == 24 else PRED48
    labels, excluded = label(
        f"mortality_in_hospital_{hours}h",
        born(1, 2100), admission(1, 10, ADMIT, "2150-01-04 10:00", to="DIED"), died(1, "2150-01-04 10:00"),
        born(2, 2100), admission(2, 20, ADMIT, DISCH),  # alive at discharge
        born(3, 2100), admission(3, 30, ADMIT, DISCH), died(3, "2150-01-05 23:59:59"),  # died at home that day
        born(4, 2100), admission(4, 40, ADMIT, "2150-01-02 20:00", to="DIED"), died(4, "2150-01-02 20:00"),
        born(5, 2100), admission(5, 50, ADMIT, pred, to="DIED"), died(5, pred),  # death at prediction time
        born(6, 2140), admission(6, 60, ADMIT, DISCH),  # 10 years old
    )
    if hours == 24:  # subject 4 died at 01-02 20:00: after 24 h, before 48 h
        assert labels == [(1, pred, True), (2, pred, False), (3, pred, False), (4, pred, True)]
        assert excluded == {DIED_BEFORE: 1, CHILD: 1}
    else:
        assert labels == [(1, pred, True), (2, pred, False), (3, pred, False)]
        assert excluded == {ENDED: 1, DIED_BEFORE: 1, CHILD: 1}


@covers("mortality_icu_24h")
def test_mortality_icu_24h() -> None:
    # ICU stays 01-01 10:00 → 01-03 10:00, so prediction at 01-02 10:00; the window ends 01-04 10:00
    icu_in, icu_out, pred = "2150-01-01 10:00", "2150-01-03 10:00", "2150-01-02 10:00"
    labels, excluded = label(
        "mortality_icu_24h",
        born(1, 2100), admission(1, 10, ADMIT, "2150-01-04 09:00", to="DIED"), icu_stay(1, 100, 10, icu_in, icu_out),
        died(1, "2150-01-04 09:00"),  # 23 h after ICU discharge → True
        born(2, 2100), admission(2, 20, ADMIT, "2150-01-04 11:00", to="DIED"), icu_stay(2, 200, 20, icu_in, icu_out),
        died(2, "2150-01-04 11:00"),  # 25 h after ICU discharge → False
        born(3, 2100), admission(3, 30, ADMIT, DISCH), icu_stay(3, 300, 30, icu_in, "2150-01-02 06:00"),  # left ICU
        born(4, 2100), admission(4, 40, ADMIT, pred, to="DIED"), icu_stay(4, 400, 40, icu_in, pred), died(4, pred),
        born(5, 2140), admission(5, 50, ADMIT, DISCH), icu_stay(5, 500, 50, icu_in, icu_out),
    )
    assert labels == [(1, pred, True), (2, pred, False)]
    assert excluded == {ENDED: 1, DIED_BEFORE: 1, CHILD: 1}


@covers("icu_transfer_24h")
def test_icu_transfer_24h() -> None:
    labels, excluded = label(
        "icu_transfer_24h",
        born(1, 2100), admission(1, 10, ADMIT, DISCH), icu_stay(1, 100, 10, "2150-01-03 12:00", "2150-01-04 12:00"),
        born(2, 2100), admission(2, 20, ADMIT, DISCH), icu_stay(2, 200, 20, "2150-01-01 12:00", "2150-01-02 12:00"),
        born(3, 2100), admission(3, 30, ADMIT, DISCH),  # never in an ICU → False
        born(4, 2100), admission(4, 40, ADMIT, DISCH), icu_stay(4, 400, 40, PRED24, "2150-01-03 08:00"),  # at pred
        # ICU only in the next admission: the first is False, the second (pred 01-11 08:00) True
        born(5, 2100), admission(5, 50, ADMIT, DISCH), admission(5, 51, "2150-01-10 08:00", "2150-01-15 08:00"),
        icu_stay(5, 500, 51, "2150-01-12 08:00", "2150-01-13 08:00"),
        # an ICU stay in last year's admission (True there) does not exclude this one (False)
        born(6, 2100), admission(6, 60, "2149-06-01 08:00", "2149-06-05 08:00"), admission(6, 61, ADMIT, DISCH),
        icu_stay(6, 600, 60, "2149-06-02 12:00", "2149-06-03 12:00"),
        # cardiac surgery (demo 10013049 / 22675517): CVICU from 07:32:58, admitted 08:00, still in the
        # ICU at the prediction time → excluded, although the ICU admission precedes the admission
        born(7, 2100), admission(7, 70, ADMIT, DISCH), icu_stay(7, 700, 70, "2150-01-01 07:32:58", "2150-01-03 10:00"),
        # an ICU stay that ended before this admission began does not exclude it → False
        born(8, 2100), admission(8, 80, ADMIT, DISCH), icu_stay(8, 800, 80, "2150-01-01 05:00", "2150-01-01 07:59"),
    )
    assert labels == [
        (1, PRED24, True), (3, PRED24, False), (5, PRED24, False), (5, "2150-01-11 08:00", True),
        (6, "2149-06-02 08:00", True), (6, PRED24, False), (8, PRED24, False),
    ]
    assert excluded == {"in an ICU stay before prediction time": 3}  # subjects 2, 4 and 7


@covers("long_los_7d")
def test_long_los_7d() -> None:
    labels, excluded = label(
        "long_los_7d",
        born(1, 2100), admission(1, 10, ADMIT, "2150-01-08 08:01"),  # 7 d + 1 min → True
        born(2, 2100), admission(2, 20, ADMIT, "2150-01-08 08:00"),  # exactly 7 d → False
        born(3, 2100), admission(3, 30, ADMIT, "2150-01-03 07:00"),  # gone before 48 h
        born(4, 2100), admission(4, 40, ADMIT, "2150-01-10 08:00", to="DIED"), died(4, "2150-01-10 08:00"),
        born(5, 2140), admission(5, 50, ADMIT, "2150-01-20 08:00"),
    )
    assert labels == [(1, PRED48, True), (2, PRED48, False), (4, PRED48, True)]  # deaths are not excluded
    assert excluded == {ENDED: 1, CHILD: 1}


@covers("length_of_stay_days")
def test_length_of_stay_days() -> None:
    labels, excluded = label(
        "length_of_stay_days",
        born(1, 2100), admission(1, 10, ADMIT, "2150-01-08 20:00"),  # 7.5 d
        born(2, 2100), admission(2, 20, ADMIT, "2150-01-03 08:00"),  # ends exactly at 48 h: still in hospital
        born(3, 2100), admission(3, 30, ADMIT, "2150-01-03 07:00"),  # gone before 48 h
        born(4, 2100), admission(4, 40, ADMIT, "2150-01-10 08:00", to="DIED"), died(4, "2150-01-10 08:00"),
        born(5, 2140), admission(5, 50, ADMIT, "2150-01-20 08:00"),
    )
    assert labels == [(1, PRED48, 7.5), (2, PRED48, 2.0), (4, PRED48, 9.0)]
    assert excluded == {ENDED: 1, CHILD: 1}


@covers("readmission_30d")
def test_readmission_30d() -> None:
    labels, excluded = label(
        "readmission_30d",
        # back the same evening → True; the return stay (to 01-07) has no readmission → False
        born(1, 2100), admission(1, 10, ADMIT, DISCH), admission(1, 11, "2150-01-05 18:00", "2150-01-07 08:00"),
        # back 30 d + 1 min after discharge → False, and the return stay → False
        born(2, 2100), admission(2, 20, ADMIT, DISCH), admission(2, 21, "2150-02-04 08:01", "2150-02-06 08:00"),
        # back exactly 30 d after → True (the window end is inclusive)
        born(3, 2100), admission(3, 30, ADMIT, DISCH), admission(3, 31, "2150-02-04 08:00", "2150-02-06 08:00"),
        born(4, 2100), admission(4, 40, ADMIT, DISCH, to="DIED"), died(4, DISCH),
        born(5, 2100), admission(5, 50, ADMIT, DISCH, to="DIED"),  # no MEDS_DEATH (dod missing)
        born(6, 2140), admission(6, 60, ADMIT, DISCH),
        # a planned return (elective, surgical same day) is not a readmission → False twice
        born(7, 2100), admission(7, 70, ADMIT, DISCH), admission(7, 71, "2150-01-10 08:00", "2150-01-11 08:00",
                                                                  kind="ELECTIVE"),
        born(8, 2100), admission(8, 80, ADMIT, DISCH),
        admission(8, 81, "2150-01-10 08:00", "2150-01-10 18:00", kind="SURGICAL SAME DAY ADMISSION"),
        # a planned return, then an urgent one within the 30 d → True
        born(9, 2100), admission(9, 90, ADMIT, DISCH), admission(9, 91, "2150-01-10 08:00", "2150-01-11 08:00",
                                                                  kind="ELECTIVE"),
        admission(9, 92, "2150-01-20 08:00", "2150-01-22 08:00", kind="URGENT"),
        # died at home on day 10 without a readmission: a competing event → no label
        born(10, 2100), admission(10, 100, ADMIT, DISCH), died(10, "2150-01-15 23:59:59"),
        # readmitted on day 3 and died in that stay → True for the first discharge
        born(11, 2100), admission(11, 110, ADMIT, DISCH),
        admission(11, 111, "2150-01-08 08:00", "2150-01-09 08:00", to="DIED"), died(11, "2150-01-09 08:00"),
        # died on day 40, after the window: not competing → False
        born(12, 2100), admission(12, 120, ADMIT, DISCH), died(12, "2150-02-14 23:59:59"),
    )
    assert labels == [
        (1, DISCH, True), (1, "2150-01-07 08:00", False),
        (2, DISCH, False), (2, "2150-02-06 08:00", False),
        (3, DISCH, True), (3, "2150-02-06 08:00", False),
        (7, DISCH, False), (7, "2150-01-11 08:00", False),
        (8, DISCH, False), (8, "2150-01-10 18:00", False),
        (9, DISCH, True), (9, "2150-01-11 08:00", True), (9, "2150-01-22 08:00", False),
        (11, DISCH, True),
        (12, DISCH, False),
    ]
    assert excluded == {
        DIED_BEFORE: 2, "died during the episode": 1, CHILD: 1, "death before the outcome (competing event)": 1,
    }


@covers("mortality_1y_after_discharge")
def test_mortality_1y_after_discharge() -> None:
    labels, excluded = label(
        "mortality_1y_after_discharge",
        born(1, 2100), admission(1, 10, ADMIT, DISCH), died(1, "2150-06-01 23:59:59"),  # → True
        born(2, 2100), admission(2, 20, ADMIT, DISCH), died(2, "2151-01-05 08:01"),  # 365 d + 1 min → False
        born(3, 2100), admission(3, 30, ADMIT, DISCH), died(3, "2151-01-05 08:00"),  # exactly 365 d → True
        born(4, 2100), admission(4, 40, ADMIT, DISCH),  # no death recorded → False
        born(5, 2100), admission(5, 50, ADMIT, DISCH, to="DIED"), died(5, DISCH),
        born(6, 2140), admission(6, 60, ADMIT, DISCH),
    )
    assert labels == [(1, DISCH, True), (2, DISCH, False), (3, DISCH, True), (4, DISCH, False)]
    assert excluded == {DIED_BEFORE: 1, CHILD: 1}


@covers("time_to_death_after_discharge")
def test_time_to_death_after_discharge() -> None:
    labels, excluded = label(
        "time_to_death_after_discharge",
        born(1, 2100), admission(1, 10, ADMIT, DISCH), died(1, "2150-01-15 08:00"),  # event at 10 d
        born(2, 2100), admission(2, 20, ADMIT, DISCH), (2, "2150-01-20 20:00", "LAB//50912//mg/dL", 1.0),  # censored
        born(3, 2100), admission(3, 30, ADMIT, DISCH),  # nothing after discharge: censored at 0 d
        # a death 730 d after the last discharge is past the end of follow-up: censored at 365 d
        born(4, 2100), admission(4, 40, ADMIT, DISCH), died(4, "2152-01-05 08:00"),
        born(5, 2100), admission(5, 50, ADMIT, DISCH, to="DIED"), died(5, DISCH),
        # two discharges: the first is followed until the last discharge + 365 d (2151-01-06 08:00),
        # 366 d after it; subject 7's death 100 d after the second discharge is an event for both
        born(6, 2100), admission(6, 60, ADMIT, DISCH), admission(6, 61, "2150-01-05 20:00", "2150-01-06 08:00"),
        born(7, 2100), admission(7, 70, ADMIT, DISCH), admission(7, 71, "2150-03-01 08:00", "2150-03-02 08:00"),
        died(7, "2150-06-10 08:00"),
    )
    # Survivors are censored at their last discharge + 365 d (MIMIC's death follow-up), not at their
    # last event: censoring at the last event counted late deaths but not late survivors.
    assert labels == [
        (1, DISCH, True, 10.0), (2, DISCH, False, 365.0), (3, DISCH, False, 365.0), (4, DISCH, False, 365.0),
        (6, DISCH, False, 366.0), (6, "2150-01-06 08:00", False, 365.0),
        (7, DISCH, True, 156.0), (7, "2150-03-02 08:00", True, 100.0),
    ]
    assert excluded == {DIED_BEFORE: 1}


NEW_DIAGNOSES = [  # (task, ICD-10 code, ICD-9 code, a near miss that is not the disease)
    ("new_heart_failure_1y", "ICD10CM//I50.9", "ICD9CM//428.0", "ICD10CM//I51.9"),
    ("new_chronic_kidney_disease_1y", "ICD10CM//N18.3", "ICD9CM//585.9", "ICD10CM//N17.9"),
    ("new_hyperlipidemia_1y", "ICD10CM//E78.5", "ICD9CM//272.4", "ICD9CM//272.5"),
    ("new_hypertension_1y", "ICD10CM//I10", "ICD9CM//401.9", "ICD10CM//I27.0"),
    ("new_type2_diabetes_1y", "ICD10CM//E11.9", "ICD9CM//250.02", "ICD9CM//250.01"),
]


@covers(*(t[0] for t in NEW_DIAGNOSES))
@pytest.mark.parametrize(("task", "icd10", "icd9", "near_miss"), NEW_DIAGNOSES)
def test_new_diagnosis_1y(task: str, icd10: str, icd9: str, near_miss: str) -> None:
    # Diagnoses are timed at their admission's discharge = that admission's prediction time (history).
    b_in = ("2150-03-01 08:00", "2150-03-05 08:00")  # a later admission within the year
    b_out = b_in[1]
    late = ("2150-12-20 08:00", "2151-01-05 08:01")  # discharged 365 d + 1 min after 01-05 08:00
    labels, excluded = label(
        task,
        # near miss in history does not exclude; the disease coded at the next discharge → True;
        # that next admission already has it → excluded
        born(1, 2100), admission(1, 10, ADMIT, DISCH), (1, DISCH, near_miss, None, 10),
        admission(1, 11, *b_in), (1, b_out, icd10, None, 11),
        # coded in this very admission → already has it
        born(2, 2100), admission(2, 20, ADMIT, DISCH), (2, DISCH, icd10, None, 20),
        # coded just outside the year → False; the late admission → excluded
        born(3, 2100), admission(3, 30, ADMIT, DISCH), admission(3, 31, *late), (3, late[1], icd9, None, 31),
        # coded in ICD-9 within the year → True; then excluded
        born(4, 2100), admission(4, 40, ADMIT, DISCH), admission(4, 41, *b_in), (4, b_out, icd9, None, 41),
        born(5, 2100), admission(5, 50, ADMIT, DISCH),  # never seen again → no label
        # only the near miss later → False; nothing after the second discharge → no label
        born(6, 2100), admission(6, 60, ADMIT, DISCH), admission(6, 61, *b_in), (6, b_out, near_miss, None, 61),
        born(7, 2100), admission(7, 70, ADMIT, DISCH, to="DIED"), died(7, DISCH),
    )
    assert labels == [(1, DISCH, True), (3, DISCH, False), (4, DISCH, True), (6, DISCH, False)]
    name = task.removeprefix("new_").removesuffix("_1y")
    assert excluded == {f"already has {name}": 4, NO_FOLLOWUP: 2, DIED_BEFORE: 1}


@covers("discharge_diagnoses_icd10")
def test_discharge_diagnoses_icd10() -> None:
    labels, excluded = label(
        "discharge_diagnoses_icd10",
        # I50.9 and I50.1 are one category; the ICD-10-PCS procedure is not a diagnosis → "E11|I50|N17"
        born(1, 2100), admission(1, 10, ADMIT, DISCH),
        *((1, DISCH, c, None, 10) for c in ("ICD10CM//I50.9", "ICD10CM//I50.1", "ICD10CM//E11.9", "ICD10CM//N17")),
        (1, DISCH, "ICD10PCS//0DTJ4ZZ", None, 10),
        born(2, 2100), admission(2, 20, ADMIT, DISCH), (2, DISCH, "ICD9CM//428.0", None, 20),  # ICD-9 era
        # an earlier admission's E78.5 is history for the second one → "E78" then "I10"
        born(3, 2100), admission(3, 30, "2149-06-01 08:00", "2149-06-03 08:00"),
        (3, "2149-06-03 08:00", "ICD10CM//E78.5", None, 30),
        admission(3, 31, ADMIT, DISCH), (3, DISCH, "ICD10CM//I10", None, 31),
        born(4, 2100), admission(4, 40, ADMIT, "2150-01-01 20:00"), (4, "2150-01-01 20:00", "ICD10CM//J18.9", None, 40),
    )
    assert labels == [(1, PRED24, "E11|I50|N17"), (3, "2149-06-02 08:00", "E78"), (3, PRED24, "I10")]
    assert excluded == {NO_MATCH: 1, ENDED: 1}


@covers("aki_48h")
def test_aki_48h() -> None:
    cr = "LAB//50912//mg/dL"
    window = "2150-01-03 08:00"  # inside (01-02 08:00, 01-04 08:00]
    labels, excluded = label(
        "aki_48h",
        born(1, 2100), admission(1, 10, ADMIT, DISCH), (1, "2150-01-01 09:00", cr, 1.0), (1, window, cr, 1.5),  # +0.5
        born(2, 2100), admission(2, 20, ADMIT, DISCH), (2, "2150-01-01 09:00", cr, 1.0), (2, window, cr, 1.2),  # +0.2
        born(3, 2100), admission(3, 30, ADMIT, DISCH), (3, "2150-01-01 09:00", cr, 0.4), (3, window, cr, 0.65),  # x1.6
        # the baseline is the recent value at the prediction time (1.0, not 2.0 from last year) → True
        born(4, 2100), admission(4, 40, ADMIT, DISCH), (4, "2149-01-01 09:00", cr, 2.0), (4, PRED24, cr, 1.0),
        (4, window, cr, 1.5),
        # a creatinine in another unit is not a creatinine in mg/dL: 1.0 → 1.1 → False
        born(5, 2100), admission(5, 50, ADMIT, DISCH), (5, "2150-01-01 09:00", cr, 1.0), (5, window, cr, 1.1),
        (5, window, "LAB//50912//umol/L", 300.0),
        born(6, 2100), admission(6, 60, ADMIT, DISCH), (6, window, cr, 3.0),  # no baseline → no label
        born(7, 2140), admission(7, 70, ADMIT, DISCH), (7, "2150-01-01 09:00", cr, 1.0), (7, window, cr, 3.0),
        # KDIGO's baseline is recent: a value three months old is no baseline → no label
        born(8, 2100), admission(8, 80, ADMIT, DISCH), (8, "2149-10-01 09:00", cr, 1.0), (8, window, cr, 3.0),
        # 5 days before: a baseline for the 1.5x criterion (7 d) but not for +0.3 (48 h); 1.0 → 1.4 → False
        born(9, 2100), admission(9, 90, ADMIT, DISCH), (9, "2149-12-28 08:00", cr, 1.0), (9, window, cr, 1.4),
        # the lowest value in 7 d (1.0), not the last (2.0), is the 1.5x baseline: 1.6 >= 1.5 → True
        born(10, 2100), admission(10, 100, ADMIT, DISCH), (10, "2149-12-27 08:00", cr, 1.0),
        (10, "2150-01-01 09:00", cr, 2.0), (10, window, cr, 1.6),
    )
    assert labels == [
        (1, PRED24, True), (2, PRED24, False), (3, PRED24, True), (4, PRED24, True), (5, PRED24, False),
        (9, PRED24, False), (10, PRED24, True),
    ]
    assert excluded == {NO_BASELINE: 2, CHILD: 1}


def test_aki_48h_without_a_window_creatinine_is_excluded_for_that_reason() -> None:
    cr = "LAB//50912//mg/dL"
    _, excluded = label(
        "aki_48h",  # a baseline at 09:00, but the next creatinine is at 01-04 08:01, just after the window
        born(1, 2100), admission(1, 10, ADMIT, DISCH), (1, "2150-01-01 09:00", cr, 1.0),
        (1, "2150-01-04 08:01", cr, 3.0),
    )
    assert excluded == {NO_MATCH: 1}


def test_aki_48h_counts_a_rise_of_exactly_0_3() -> None:
    cr, before, inside = "LAB//50912//mg/dL", "2150-01-01 09:00", "2150-01-03 08:00"
    labels, _ = label(  # KDIGO: a rise of >= 0.3 mg/dL; MIMIC reports creatinine to one decimal
        "aki_48h",
        born(1, 2100), admission(1, 10, ADMIT, DISCH), (1, before, cr, 1.1), (1, inside, cr, 1.4),  # → True
        born(2, 2100), admission(2, 20, ADMIT, DISCH), (2, before, cr, 1.6), (2, inside, cr, 1.9),  # → True
    )
    assert labels == [(1, PRED24, True), (2, PRED24, True)]


LAB_TASKS = [  # (task, item, blood-gas item, unit, abnormal, threshold (not abnormal), other unit)
    ("hyperkalemia_48h", "LAB//50971", "LAB//50822", "mEq/L", 6.1, 5.5, "mg/dL"),
    ("hyponatremia_48h", "LAB//50983", "LAB//50824", "mEq/L", 128.0, 135.0, "mg/dL"),
    ("hypoglycemia_48h", "LAB//50931", "LAB//50809", "mg/dL", 55.0, 70.0, "mmol/L"),
    ("anemia_48h", "LAB//51222", "LAB//50811", "g/dL", 8.5, 10.0, "mmol/L"),
    ("thrombocytopenia_48h", "LAB//51265", None, "K/uL", 90.0, 150.0, "x10E9/L"),
]


@covers(*(t[0] for t in LAB_TASKS))
@pytest.mark.parametrize(("task", "item", "gas", "unit", "abnormal", "threshold", "other_unit"), LAB_TASKS)
def test_lab_threshold_48h(
    task: str, item: str, gas: str | None, unit: str, abnormal: float, threshold: float, other_unit: str
) -> None:
    lab, inside, after = f"{item}//{unit}", "2150-01-03 08:00", "2150-01-04 08:01"  # window ends 01-04 08:00
    # 5: the other unit's value is abnormal as a number (e.g. glucose 3 mmol/L) but must not count
    wrong_unit = abnormal / 20 if abnormal < threshold else abnormal * 20
    labels, excluded = label(
        task,
        born(1, 2100), admission(1, 10, ADMIT, DISCH), (1, ADMIT, lab, threshold), (1, inside, lab, abnormal),
        # abnormal exactly at the prediction time is history; the threshold value itself is normal → False
        born(2, 2100), admission(2, 20, ADMIT, DISCH), (2, PRED24, lab, abnormal), (2, inside, lab, threshold),
        # abnormal just after the window → False
        born(3, 2100), admission(3, 30, ADMIT, DISCH), (3, inside, lab, threshold), (3, after, lab, abnormal),
        born(4, 2100), admission(4, 40, ADMIT, DISCH),  # never measured → no label
        born(5, 2100), admission(5, 50, ADMIT, DISCH), (5, inside, f"{item}//{other_unit}", wrong_unit),
        born(6, 2140), admission(6, 60, ADMIT, DISCH), (6, inside, lab, abnormal),
        *([born(7, 2100), admission(7, 70, ADMIT, DISCH), (7, inside, f"{gas}//{unit}", abnormal)] if gas else []),
    )
    expected = [(1, PRED24, True), (2, PRED24, False), (3, PRED24, False)] + ([(7, PRED24, True)] if gas else [])
    assert labels == expected
    assert excluded == {NO_MATCH: 2, CHILD: 1}


@covers("ed_hospitalization")
def test_ed_hospitalization() -> None:
    labels, excluded = label(
        "ed_hospitalization",  # predicted at ED arrival
        born(1, 2100), ed_stay(1, 901, ADMIT, "2150-01-01 12:00", "ADMITTED", hadm=10),
        admission(1, 10, "2150-01-01 12:00", DISCH),
        # sent home first (False), admitted on the second visit (True)
        born(2, 2100), ed_stay(2, 902, ADMIT, "2150-01-01 12:00", "HOME"),
        ed_stay(2, 903, "2150-02-01 08:00", "2150-02-01 12:00", "ADMITTED", hadm=20),
        admission(2, 20, "2150-02-01 12:00", "2150-02-03 08:00"),
        born(3, 2140), ed_stay(3, 904, ADMIT, "2150-01-01 12:00", "ADMITTED", hadm=30),
    )
    assert labels == [(1, ADMIT, True), (2, ADMIT, False), (2, "2150-02-01 08:00", True)]
    assert excluded == {CHILD: 1}


@covers("ed_critical_outcome")
def test_ed_critical_outcome() -> None:
    out = "2150-01-01 10:00"  # ED 08:00 → 10:00; ICU within 12 h of arrival means by 20:00
    labels, excluded = label(
        "ed_critical_outcome",
        born(1, 2100), ed_stay(1, 901, ADMIT, out, "ADMITTED", hadm=10), admission(1, 10, out, DISCH),
        icu_stay(1, 101, 10, "2150-01-01 19:00", "2150-01-02 19:00"),  # ICU at 11 h → True
        born(2, 2100), ed_stay(2, 902, ADMIT, out, "ADMITTED", hadm=20), admission(2, 20, out, DISCH),
        icu_stay(2, 201, 20, "2150-01-01 20:01", "2150-01-02 19:00"),  # ICU at 12 h 1 min → False
        born(3, 2100), ed_stay(3, 903, ADMIT, out, "ADMITTED", hadm=30),
        admission(3, 30, out, "2150-01-03 08:00", to="DIED"), died(3, "2150-01-03 08:00"),  # died in hospital
        born(4, 2100), ed_stay(4, 904, ADMIT, out, "ADMITTED", hadm=40), admission(4, 40, out, DISCH),
        died(4, "2150-01-05 23:59:59"),  # died at home after discharge → False
        born(5, 2100), ed_stay(5, 905, ADMIT, out, "HOME"), died(5, "2150-03-01 23:59:59"),  # died later → False
        born(6, 2140), ed_stay(6, 906, ADMIT, out, "HOME"),
    )
    assert labels == [(1, ADMIT, True), (2, ADMIT, False), (3, ADMIT, True), (4, ADMIT, False), (5, ADMIT, False)]
    assert excluded == {CHILD: 1}


@covers("ed_revisit_72h")
def test_ed_revisit_72h() -> None:
    out = "2150-01-01 12:00"  # predicted at ED departure; 72 h later is 01-04 12:00
    labels, excluded = label(
        "ed_revisit_72h",
        born(1, 2100), ed_stay(1, 901, ADMIT, out, "HOME"),  # back after 71 h → True
        ed_stay(1, 902, "2150-01-04 11:00", "2150-01-04 15:00", "HOME"),  # and then not → False
        born(2, 2100), ed_stay(2, 903, ADMIT, out, "HOME"),  # back after 72 h 1 min → False
        ed_stay(2, 904, "2150-01-04 12:01", "2150-01-04 15:00", "HOME"),  # → False
        born(3, 2100), ed_stay(3, 905, ADMIT, out, "ADMITTED", hadm=30),  # died in the admission it led to
        admission(3, 30, out, "2150-01-03 08:00", to="DIED"), died(3, "2150-01-03 08:00"),
        born(4, 2140), ed_stay(4, 906, ADMIT, out, "HOME"),
        # admitted from the ED (and back in the ED later): not a discharge from the ED → no label
        born(5, 2100), ed_stay(5, 907, ADMIT, out, "ADMITTED", hadm=50), admission(5, 50, out, "2150-01-02 08:00"),
        ed_stay(5, 908, "2150-01-02 20:00", "2150-01-02 23:00", "HOME"),  # the later visit → False
    )
    assert labels == [
        (1, out, True), (1, "2150-01-04 15:00", False), (2, out, False), (2, "2150-01-04 15:00", False),
        (5, "2150-01-02 23:00", False),
    ]
    assert excluded == {"died during the episode": 1, CHILD: 1, "admission_from_the_ed before prediction time": 1}


def test_an_admission_without_hadm_id_is_counted() -> None:
    # e.g. a MEDS dataset from another ETL: admission codes without the hadm_id provenance column
    labels, excluded = label(
        "readmission_30d",
        born(1, 2100), (1, ADMIT, "HOSPITAL_ADMISSION//EW EMER."), (1, DISCH, "HOSPITAL_DISCHARGE//HOME"),
    )
    assert len(labels) + sum(excluded.values()) == 1  # "every episode gets a label or a counted reason"


def test_every_builtin_task_has_a_labeling_test() -> None:
    assert set(library_names()) == TESTED


def test_lab_windows_end_at_discharge() -> None:
    k = "LAB//50971//mEq/L"
    labels, excluded = label(  # discharged 2150-01-03 20:00, inside the 48 h after PRED24
        "hyperkalemia_48h",
        # a high potassium after discharge is an outpatient value: not this stay's outcome
        born(1, 2100), admission(1, 10, ADMIT, "2150-01-03 20:00"), (1, "2150-01-03 12:00", k, 4.1),
        (1, "2150-01-03 21:00", k, 6.5),
        # the same value before discharge counts → True
        born(2, 2100), admission(2, 20, ADMIT, "2150-01-03 20:00"), (2, "2150-01-03 19:00", k, 6.5),
        # only a post-discharge value: no in-hospital measurement → no label
        born(3, 2100), admission(3, 30, ADMIT, "2150-01-03 20:00"), (3, "2150-01-03 22:00", k, 6.5),
    )
    assert labels == [(1, PRED24, False), (2, PRED24, True)]
    assert excluded == {NO_MATCH: 1}


def test_an_eighteenth_birthday_counts_as_eighteen() -> None:
    # Born 2090-01-01 (MEDS_BIRTH), predicted on 2108-01-01: exactly 18. 2100 is not a leap year, so
    # days / 365.25 would say 17.996 and wrongly exclude the patient.
    labels, excluded = label(
        "mortality_in_hospital_24h",
        born(1, 2090), admission(1, 10, "2107-12-31 08:00", "2108-01-04 08:00"),
        born(2, 2091), admission(2, 20, "2107-12-31 08:00", "2108-01-04 08:00"),  # 17 → excluded
    )
    assert labels == [(1, "2108-01-01 08:00", False)]
    assert excluded == {CHILD: 1}
