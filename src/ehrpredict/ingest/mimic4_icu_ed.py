"""MIMIC-IV icu, ed and note tables as declarative event mappings (timing rules: see
:mod:`ehrpredict.ingest.mimic4_tables`)."""

from __future__ import annotations

import polars as pl

from ehrpredict.ingest.mimic4_common import (
    Lookups,
    c,
    code,
    ed_stay_checks,
    ends_before_start,
    join_edstay,
    latest,
    text_unless_numeric,
)
from ehrpredict.ingest.spec import Check, EventSpec, TableSpec, raw_text
from ehrpredict.vocab.icd import icd_code_expr


def icustays() -> TableSpec:
    return TableSpec(
        name="icu/icustays",
        required_columns=("subject_id", "hadm_id", "stay_id", "intime"),
        optional_columns=("first_careunit", "last_careunit", "outtime"),
        datetimes=("intime", "outtime"),
        stay_column="stay_id",
        checks=(ends_before_start("intime", "outtime"),),
        events=(
            EventSpec(
                code("ICU_ADMISSION", c("first_careunit")), c("intime"), required=True,
                label="icu admission",
            ),
            EventSpec(code("ICU_DISCHARGE", c("last_careunit")), c("outtime")),
        ),
        description="ICU stays (admission with first care unit, discharge)",
    )


def icu_measurement(table: str, prefix: str, value: str, required_value: bool) -> TableSpec:
    """chartevents / outputevents / datetimeevents: one itemid-coded value per row."""
    available = pl.coalesce(c("storetime"), c("charttime"))
    numeric_col = "valuenum" if table == "chartevents" else value
    numerics = (numeric_col,) if table != "datetimeevents" else ()
    return TableSpec(
        name=f"icu/{table}",
        required_columns=("subject_id", "charttime", "itemid")
        + ((value,) if required_value else ()),
        optional_columns=("hadm_id", "stay_id", "storetime", "value", "valuenum", "valueuom"),
        datetimes=("charttime", "storetime"),
        numerics=numerics,
        required_numerics=(value,) if required_value else (),
        stay_column="stay_id",
        events=(
            EventSpec(
                code(prefix, c("itemid"), c("valueuom")), available,
                numeric=c(numeric_col) if numerics else None,
                text=text_unless_numeric("value", numeric_col) if numerics else c("value"),
                required=True,
            ),
        ),
        description=f"ICU {table}",
    )


def icu_interval(table: str, prefix: str, amount: str, unit: str, start_event: bool) -> TableSpec:
    """inputevents / ingredientevents / procedureevents: the amount is known when the interval ends,
    and neither the start nor the amount before the row was stored (``storetime``, often hours later:
    a ventilation start charted weeks after the fact must not be visible at its starttime)."""
    events = [
        EventSpec(
            code(prefix, c("itemid"), c(unit)), latest("endtime", "storetime"), numeric=c(amount),
            required=True,
        )
    ]
    if start_event:
        events.insert(0, EventSpec(code(f"{prefix}_START", c("itemid")), latest("starttime", "storetime")))
    return TableSpec(
        name=f"icu/{table}",
        required_columns=("subject_id", "starttime", "endtime", "itemid"),
        optional_columns=("hadm_id", "stay_id", amount, unit, "rate", "rateuom", "storetime"),
        datetimes=("starttime", "endtime", "storetime"),
        numerics=(amount,),
        stay_column="stay_id",
        events=tuple(events),
        description=f"ICU {table}: start at starttime, amount at endtime (each no earlier than storetime)",
    )


def edstays() -> TableSpec:
    return TableSpec(
        name="ed/edstays",
        required_columns=("subject_id", "stay_id", "intime", "outtime"),
        optional_columns=("hadm_id", "arrival_transport", "disposition", "gender", "race"),
        datetimes=("intime", "outtime"),
        stay_column="stay_id",
        checks=(ends_before_start("intime", "outtime"),),
        events=(
            EventSpec(
                code("ED_ARRIVAL", c("arrival_transport")), c("intime"), required=True,
                label="ed arrival",
            ),
            EventSpec(code("ED_DISPOSITION", c("disposition")), c("outtime"), required=True),
        ),
        description="ED stays: arrival (transport) and disposition",
    )


VITALS = ("temperature", "heartrate", "resprate", "o2sat", "sbp", "dbp", "pain")


def _vital_events(prefix: str, time: pl.Expr) -> list[EventSpec]:
    # Vitals are parsed as numbers (a non-number is flagged); the text of one that is not a number
    # ("unable" for pain) is kept as the event's text.
    return [
        EventSpec(
            code(prefix, v), time, numeric=c(v), text=text_unless_numeric(raw_text(v), v),
            when=c(raw_text(v)).is_not_null(),
        )
        for v in VITALS
    ]


def triage(lookups: Lookups) -> TableSpec:
    time = c("ed_intime")
    return TableSpec(
        name="ed/triage",
        required_columns=("subject_id", "stay_id", *VITALS, "acuity", "chiefcomplaint"),
        numerics=(*VITALS, "acuity"),
        stay_column="stay_id",
        hadm_column=None,
        prepare=join_edstay(lookups),
        checks=ed_stay_checks(lookups),
        events=(
            EventSpec(code("ED_TRIAGE"), time, text=c("chiefcomplaint"), required=True),
            EventSpec(
                code("ED_TRIAGE", "acuity"), time, numeric=c("acuity"), when=c("acuity").is_not_null(),
            ),
            *_vital_events("ED_TRIAGE", time),
        ),
        description="ED triage vitals, acuity (ESI) and chief complaint, timed at ED arrival",
    )


def vitalsign() -> TableSpec:
    return TableSpec(
        name="ed/vitalsign",
        required_columns=("subject_id", "stay_id", "charttime", *VITALS),
        optional_columns=("rhythm",),
        datetimes=("charttime",),
        numerics=VITALS,
        stay_column="stay_id",
        hadm_column=None,
        events=(
            EventSpec(code("ED_VITAL"), c("charttime"), required=True, label="vital set"),
            EventSpec(
                code("ED_VITAL", "rhythm"), c("charttime"), text=c("rhythm"),
                when=c("rhythm").is_not_null(),
            ),
            *_vital_events("ED_VITAL", c("charttime")),
        ),
        description="ED vital signs",
    )


def ed_medication(table: str, prefix: str) -> TableSpec:
    return TableSpec(
        name=f"ed/{table}",
        required_columns=("subject_id", "stay_id", "charttime", "name"),
        optional_columns=("etcdescription",),
        datetimes=("charttime",),
        stay_column="stay_id",
        hadm_column=None,
        events=(
            EventSpec(
                code(prefix, c("name")), c("charttime"), text=c("etcdescription"), required=True
            ),
        ),
        description=f"ED {table}",
    )


def ed_diagnosis(lookups: Lookups) -> TableSpec:
    return TableSpec(
        name="ed/diagnosis",
        required_columns=("subject_id", "stay_id", "icd_code", "icd_version"),
        optional_columns=("seq_num", "icd_title"),
        stay_column="stay_id",
        hadm_column=None,
        prepare=join_edstay(lookups),
        checks=(
            *ed_stay_checks(lookups),
            Check("unknown icd_version", ~c("icd_version").is_in(["9", "10"]), field="icd_version"),
        ),
        events=(
            EventSpec(
                icd_code_expr(c("icd_code"), c("icd_version"), "diagnosis"), c("ed_outtime"),
                text=c("icd_title"), required=True,
            ),
        ),
        description="ED diagnoses, timed at ED departure",
    )


def note(table: str) -> TableSpec:
    return TableSpec(
        name=f"note/{table}",
        required_columns=("subject_id", "charttime", "text"),
        optional_columns=("hadm_id", "note_id", "note_type", "storetime"),
        datetimes=("charttime", "storetime"),
        events=(
            EventSpec(
                code("NOTE", table.upper()), pl.coalesce(c("storetime"), c("charttime")),
                text=c("text"), required=True,
            ),
        ),
        description=f"{table} notes (full text in text_value), timed at storetime",
    )
