"""MIMIC-IV tables as declarative event mappings (hosp, icu, ed, note modules).

Timing decisions that keep features leakage-free (see shared/MIMIC_NOTES.md):

- ``diagnoses_icd``, ``drgcodes``, ``procedures_icd`` and ``hcpcsevents`` are billing codes assigned
  after discharge, so they are timed at the admission's ``dischtime`` even when a procedure date exists.
- Lab, chart and microbiology results are timed when they were stored (``storetime``), because that is
  when the value became available; ``charttime`` is the fallback when no storetime was recorded.
- Infusion amounts and procedure durations are only known when they end: a start event (no value) at
  ``starttime`` and the amount/duration at ``endtime``.
- ED triage has no time of its own: it happens at ED arrival (``edstays.intime``); ED diagnoses are
  known at ED departure (``edstays.outtime``).
- Notes are timed at ``storetime`` (when they could be read), falling back to ``charttime``.
- Date-only fields (``dod``, ``omr.chartdate``) are placed at 23:59:59 of their day.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ehrpredict import schema as S
from ehrpredict.ingest.spec import Check, EventSpec, Prepare, TableSpec, UnmappedTable
from ehrpredict.vocab.icd import icd_code_expr

c = pl.col


def code(*parts: str | pl.Expr) -> pl.Expr:
    """Join code parts with ``//``, skipping null parts: ``code("LAB", c("itemid"), c("valueuom"))``."""
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in parts]
    return pl.concat_str(exprs, separator=S.CODE_SEPARATOR, ignore_nulls=True)


def text_unless_numeric(raw: str, numeric: str) -> pl.Expr:
    """The raw text of a value only when it has no numeric reading (avoids storing "7.4" twice)."""
    return pl.when(c(numeric).is_null()).then(c(raw)).otherwise(None)


def joined_text(*columns: str, separator: str = "; ") -> pl.Expr:
    return pl.concat_str([c(x) for x in columns], separator=separator, ignore_nulls=True)


@dataclass(frozen=True)
class Lookups:
    """Small tables other tables join against. All are loaded fully before streaming the rest."""

    admissions: pl.DataFrame  # hadm_id, admission_subject_id, dischtime
    edstays: pl.DataFrame  # stay_id, ed_subject_id, ed_intime, ed_outtime
    death_times: pl.DataFrame  # subject_id, deathtime (latest in-hospital death time)


def _join_admission(lookups: Lookups) -> Prepare:
    def prepare(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(lookups.admissions, on=S.HADM_ID, how="left", maintain_order="left")

    return prepare


def _join_edstay(lookups: Lookups) -> Prepare:
    def prepare(df: pl.DataFrame) -> pl.DataFrame:
        return df.join(lookups.edstays, on=S.STAY_ID, how="left", maintain_order="left")

    return prepare


UNKNOWN_ADMISSION = Check(
    "unknown admission (hadm_id not in admissions)", c("dischtime").is_null(), field=S.HADM_ID
)
FOREIGN_ADMISSION = Check(
    "admission belongs to another subject", c("admission_subject_id") != c(S.SUBJECT_ID), field=S.HADM_ID
)
UNKNOWN_ED_STAY = Check(
    "unknown ED stay (stay_id not in edstays)", c("ed_intime").is_null(), field=S.STAY_ID
)
FOREIGN_ED_STAY = Check(
    "ED stay belongs to another subject", c("ed_subject_id") != c(S.SUBJECT_ID), field=S.STAY_ID
)


def _patients(lookups: Lookups) -> TableSpec:
    def prepare(df: pl.DataFrame) -> pl.DataFrame:
        df = df.join(lookups.death_times, on=S.SUBJECT_ID, how="left", maintain_order="left")
        birth_year = c("anchor_year") - c("anchor_age")
        return df.with_columns(
            birth=pl.datetime(birth_year.cast(pl.Int32), 1, 1),
            # An in-hospital death has an exact time; dod alone is a date (end of day).
            death=pl.coalesce(c("deathtime"), c("dod")),
        )

    return TableSpec(
        name="hosp/patients",
        required_columns=("subject_id", "gender", "anchor_age", "anchor_year"),
        optional_columns=("dod",),
        dates=("dod",),
        integers=("anchor_age", "anchor_year"),
        hadm_column=None,
        prepare=prepare,
        checks=(
            Check("missing anchor_age or anchor_year", c("birth").is_null(), field="anchor_age"),
            # patients is read whole, so the window sees every row: a later row repeating a
            # subject_id (an exact copy or a conflicting one) is quarantined, the first is kept.
            Check(
                "duplicate subject_id in patients",
                pl.int_range(pl.len()).over(S.SUBJECT_ID) > 0, field=S.SUBJECT_ID,
            ),
        ),
        events=(
            EventSpec(code(S.BIRTH_CODE), c("birth"), required=True, label="birth"),
            EventSpec(code("GENDER", c("gender")), None, when=c("gender").is_not_null()),
            EventSpec(code(S.DEATH_CODE), c("death")),
        ),
        description="demographics: birth (from anchor_age/anchor_year), sex, date of death",
    )


def _admissions() -> TableSpec:
    admit = c("admittime")
    demographics = [
        EventSpec(code(name.upper(), c(name)), admit, when=c(name).is_not_null())
        for name in ("insurance", "language", "marital_status", "race")
    ]
    return TableSpec(
        name="hosp/admissions",
        required_columns=("subject_id", "hadm_id", "admittime", "dischtime", "admission_type"),
        optional_columns=(
            "deathtime", "admission_location", "discharge_location", "insurance", "language",
            "marital_status", "race", "edregtime", "edouttime",
        ),
        datetimes=("admittime", "dischtime", "deathtime", "edregtime", "edouttime"),
        events=(
            EventSpec(
                code("HOSPITAL_ADMISSION", c("admission_type")), admit,
                text=c("admission_location"), required=True, label="admission",
            ),
            EventSpec(
                code("HOSPITAL_DISCHARGE", c("discharge_location")), c("dischtime"), required=True,
            ),
            # edregtime precedes admittime, but the admission row only exists once the patient is
            # admitted: an event at edregtime would tell an ED-triage model who gets admitted. The ED
            # stay is recorded at admittime, with the hours spent in the ED as its value.
            EventSpec(
                code("ED_REGISTRATION"), pl.when(c("edregtime").is_not_null()).then(admit),
                numeric=(admit - c("edregtime")).dt.total_seconds() / 3600,
            ),
            EventSpec(
                code("ED_OUT"), pl.when(c("edouttime").is_not_null()).then(pl.max_horizontal(c("edouttime"), admit))
            ),
            *demographics,
        ),
        description="hospital admissions and discharges, ED registration, insurance/language/race",
    )


def _billing(name: str, lookups: Lookups) -> TableSpec:
    """diagnoses_icd / procedures_icd: ICD codes known at discharge."""
    kind = "diagnosis" if name == "diagnoses_icd" else "procedure"
    return TableSpec(
        name=f"hosp/{name}",
        required_columns=("subject_id", "hadm_id", "icd_code", "icd_version"),
        optional_columns=("seq_num", "chartdate"),
        prepare=_join_admission(lookups),
        checks=(
            UNKNOWN_ADMISSION,
            FOREIGN_ADMISSION,
            Check("unknown icd_version", ~c("icd_version").is_in(["9", "10"]), field="icd_version"),
        ),
        events=(
            EventSpec(
                icd_code_expr(c("icd_code"), c("icd_version"), kind), c("dischtime"), required=True
            ),
        ),
        description=f"ICD {kind} codes, timed at discharge (billing codes)",
    )


def _drgcodes(lookups: Lookups) -> TableSpec:
    return TableSpec(
        name="hosp/drgcodes",
        required_columns=("subject_id", "hadm_id", "drg_type", "drg_code"),
        optional_columns=("description", "drg_severity", "drg_mortality"),
        prepare=_join_admission(lookups),
        checks=(UNKNOWN_ADMISSION, FOREIGN_ADMISSION),
        events=(
            EventSpec(
                code("DRG", c("drg_type"), c("drg_code")), c("dischtime"),
                text=c("description"), required=True,
            ),
        ),
        description="diagnosis-related groups, timed at discharge",
    )


def _hcpcsevents(lookups: Lookups) -> TableSpec:
    return TableSpec(
        name="hosp/hcpcsevents",
        required_columns=("subject_id", "hadm_id", "hcpcs_cd"),
        optional_columns=("chartdate", "seq_num", "short_description"),
        prepare=_join_admission(lookups),
        checks=(UNKNOWN_ADMISSION, FOREIGN_ADMISSION),
        events=(EventSpec(code("HCPCS", c("hcpcs_cd")), c("dischtime"), required=True),),
        description="HCPCS billing codes, timed at discharge",
    )


def _transfers() -> TableSpec:
    return TableSpec(
        name="hosp/transfers",
        required_columns=("subject_id", "eventtype", "intime"),
        optional_columns=("hadm_id", "transfer_id", "careunit", "outtime"),
        datetimes=("intime", "outtime"),
        events=(
            EventSpec(
                code("TRANSFER", c("eventtype"), c("careunit")), c("intime"), required=True
            ),
        ),
        description="ward and care-unit transfers",
    )


def _services() -> TableSpec:
    return TableSpec(
        name="hosp/services",
        required_columns=("subject_id", "hadm_id", "transfertime", "curr_service"),
        optional_columns=("prev_service",),
        datetimes=("transfertime",),
        events=(EventSpec(code("SERVICE", c("curr_service")), c("transfertime"), required=True),),
        description="hospital service (e.g. MED, CSURG) changes",
    )


def _labevents() -> TableSpec:
    available = pl.coalesce(c("storetime"), c("charttime"))
    return TableSpec(
        name="hosp/labevents",
        required_columns=("subject_id", "itemid", "charttime"),
        optional_columns=(
            "hadm_id", "labevent_id", "specimen_id", "storetime", "value", "valuenum", "valueuom",
            "ref_range_lower", "ref_range_upper", "flag", "priority",
        ),
        datetimes=("charttime", "storetime"),
        numerics=("valuenum",),
        events=(
            EventSpec(
                code("LAB", c("itemid"), c("valueuom")), available, numeric=c("valuenum"),
                text=text_unless_numeric("value", "valuenum"), required=True,
            ),
            EventSpec(
                code("LAB_FLAG", c("itemid"), c("flag")), available,
                when=c("flag").is_not_null(),
            ),
        ),
        description="laboratory results (value, unit; abnormal flag as LAB_FLAG), timed at storetime",
    )


def _microbiology() -> TableSpec:
    available = pl.coalesce(c("storetime"), c("storedate"), c("charttime"), c("chartdate"))
    result = joined_text("org_name", "ab_name", "interpretation", "comments", separator=" | ")
    return TableSpec(
        name="hosp/microbiologyevents",
        required_columns=("subject_id", "chartdate", "test_name"),
        optional_columns=(
            "hadm_id", "microevent_id", "charttime", "spec_type_desc", "storedate", "storetime",
            "org_name", "ab_name", "interpretation", "comments",
        ),
        datetimes=("charttime", "storetime"),
        dates=("chartdate", "storedate"),
        events=(
            EventSpec(
                code("MICROBIOLOGY", c("spec_type_desc"), c("test_name")), available,
                text=result, required=True,
            ),
        ),
        description="microbiology tests with organism and susceptibility, timed when stored",
    )


def _prescriptions() -> TableSpec:
    return TableSpec(
        name="hosp/prescriptions",
        required_columns=("subject_id", "drug", "starttime"),
        optional_columns=(
            "hadm_id", "pharmacy_id", "stoptime", "drug_type", "dose_val_rx", "dose_unit_rx", "route",
        ),
        datetimes=("starttime", "stoptime"),
        events=(
            EventSpec(
                code("MEDICATION", c("drug")), c("starttime"),
                text=joined_text("dose_val_rx", "dose_unit_rx", "route", separator=" "),
                required=True,
            ),
        ),
        description="medication orders (drug, dose, route) at their start time",
    )


def _pharmacy() -> TableSpec:
    return TableSpec(
        name="hosp/pharmacy",
        required_columns=("subject_id", "medication", "starttime"),
        optional_columns=("hadm_id", "pharmacy_id", "route", "frequency", "status"),
        datetimes=("starttime",),
        events=(
            EventSpec(
                code("PHARMACY", c("medication")), c("starttime"),
                text=joined_text("route", "frequency", separator=" "), required=True,
            ),
        ),
        description="pharmacy dispensing records",
    )


def _emar() -> TableSpec:
    return TableSpec(
        name="hosp/emar",
        required_columns=("subject_id", "charttime", "medication"),
        optional_columns=("hadm_id", "emar_id", "event_txt", "scheduletime", "storetime"),
        datetimes=("charttime",),
        events=(
            EventSpec(
                code("EMAR", c("medication"), c("event_txt")), c("charttime"), required=True
            ),
        ),
        description="medication administrations (bedside barcode record)",
    )


def _poe() -> TableSpec:
    return TableSpec(
        name="hosp/poe",
        required_columns=("subject_id", "ordertime", "order_type"),
        optional_columns=("hadm_id", "poe_id", "order_subtype", "transaction_type"),
        datetimes=("ordertime",),
        events=(
            EventSpec(
                code("ORDER", c("order_type"), c("order_subtype")), c("ordertime"), required=True
            ),
        ),
        description="provider order entries",
    )


def _omr() -> TableSpec:
    name = c("result_name")
    is_bp = name.str.starts_with("Blood Pressure")
    parts = c("result_value").str.split_exact("/", 1)
    systolic = parts.struct.field("field_0").cast(pl.Float64, strict=False)
    diastolic = parts.struct.field("field_1").cast(pl.Float64, strict=False)
    value = c("result_value").cast(pl.Float64, strict=False)
    bad_bp = is_bp & (systolic.is_null() | diastolic.is_null())
    bad_number = ~is_bp & value.is_null()
    return TableSpec(
        name="hosp/omr",
        required_columns=("subject_id", "chartdate", "result_name", "result_value"),
        optional_columns=("seq_num",),
        dates=("chartdate",),
        hadm_column=None,
        checks=(
            Check(
                "non-numeric value where one is required", bad_bp | bad_number,
                field="result_value",
            ),
        ),
        events=(
            EventSpec(code("OMR", name), c("chartdate"), numeric=value, when=~is_bp, required=False),
            EventSpec(code("OMR", name, "systolic"), c("chartdate"), numeric=systolic, when=is_bp),
            EventSpec(code("OMR", name, "diastolic"), c("chartdate"), numeric=diastolic, when=is_bp),
        ),
        description="outpatient measurements (weight, BMI, blood pressure split into two values)",
    )


def _icustays() -> TableSpec:
    return TableSpec(
        name="icu/icustays",
        required_columns=("subject_id", "hadm_id", "stay_id", "intime"),
        optional_columns=("first_careunit", "last_careunit", "outtime"),
        datetimes=("intime", "outtime"),
        stay_column="stay_id",
        events=(
            EventSpec(
                code("ICU_ADMISSION", c("first_careunit")), c("intime"), required=True,
                label="icu admission",
            ),
            EventSpec(code("ICU_DISCHARGE", c("last_careunit")), c("outtime")),
        ),
        description="ICU stays (admission with first care unit, discharge)",
    )


def _icu_measurement(table: str, prefix: str, value: str, required_value: bool) -> TableSpec:
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


def _icu_interval(table: str, prefix: str, amount: str, unit: str, start_event: bool) -> TableSpec:
    """inputevents / ingredientevents / procedureevents: the amount is known when the interval ends."""
    events = [
        EventSpec(
            code(prefix, c("itemid"), c(unit)), c("endtime"), numeric=c(amount), required=True,
        )
    ]
    if start_event:
        events.insert(0, EventSpec(code(f"{prefix}_START", c("itemid")), c("starttime")))
    return TableSpec(
        name=f"icu/{table}",
        required_columns=("subject_id", "starttime", "endtime", "itemid"),
        optional_columns=("hadm_id", "stay_id", amount, unit, "rate", "rateuom", "storetime"),
        datetimes=("starttime", "endtime"),
        numerics=(amount,),
        stay_column="stay_id",
        events=tuple(events),
        description=f"ICU {table}: start at starttime, amount at endtime",
    )


def _edstays() -> TableSpec:
    return TableSpec(
        name="ed/edstays",
        required_columns=("subject_id", "stay_id", "intime", "outtime"),
        optional_columns=("hadm_id", "arrival_transport", "disposition", "gender", "race"),
        datetimes=("intime", "outtime"),
        stay_column="stay_id",
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
    return [
        EventSpec(
            code(prefix, v), time, numeric=c(v).cast(pl.Float64, strict=False), text=
            pl.when(c(v).cast(pl.Float64, strict=False).is_null()).then(c(v)).otherwise(None),
            when=c(v).is_not_null(),
        )
        for v in VITALS
    ]


def _triage(lookups: Lookups) -> TableSpec:
    time = c("ed_intime")
    return TableSpec(
        name="ed/triage",
        required_columns=("subject_id", "stay_id", *VITALS, "acuity", "chiefcomplaint"),
        stay_column="stay_id",
        hadm_column=None,
        prepare=_join_edstay(lookups),
        checks=(UNKNOWN_ED_STAY, FOREIGN_ED_STAY),
        events=(
            EventSpec(code("ED_TRIAGE"), time, text=c("chiefcomplaint"), required=True),
            EventSpec(
                code("ED_TRIAGE", "acuity"), time, numeric=c("acuity").cast(pl.Float64, strict=False),
                when=c("acuity").is_not_null(),
            ),
            *_vital_events("ED_TRIAGE", time),
        ),
        description="ED triage vitals, acuity (ESI) and chief complaint, timed at ED arrival",
    )


def _vitalsign() -> TableSpec:
    return TableSpec(
        name="ed/vitalsign",
        required_columns=("subject_id", "stay_id", "charttime", *VITALS),
        optional_columns=("rhythm",),
        datetimes=("charttime",),
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


def _ed_medication(table: str, prefix: str) -> TableSpec:
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


def _ed_diagnosis(lookups: Lookups) -> TableSpec:
    return TableSpec(
        name="ed/diagnosis",
        required_columns=("subject_id", "stay_id", "icd_code", "icd_version"),
        optional_columns=("seq_num", "icd_title"),
        stay_column="stay_id",
        hadm_column=None,
        prepare=_join_edstay(lookups),
        checks=(
            UNKNOWN_ED_STAY,
            FOREIGN_ED_STAY,
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


def _note(table: str) -> TableSpec:
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


def table_specs(lookups: Lookups) -> list[TableSpec]:
    """Every mapped table, in processing order. ``patients`` comes first (it defines subjects)."""
    return [
        _patients(lookups),
        _admissions(),
        _transfers(),
        _billing("diagnoses_icd", lookups),
        _billing("procedures_icd", lookups),
        _drgcodes(lookups),
        _hcpcsevents(lookups),
        _services(),
        _labevents(),
        _microbiology(),
        _prescriptions(),
        _pharmacy(),
        _emar(),
        _poe(),
        _omr(),
        _icustays(),
        _icu_measurement("chartevents", "CHART", "value", required_value=False),
        _icu_measurement("outputevents", "OUTPUT", "value", required_value=True),
        _icu_measurement("datetimeevents", "DATETIME", "value", required_value=False),
        _icu_interval("inputevents", "INPUT", "amount", "amountuom", start_event=True),
        _icu_interval("ingredientevents", "INGREDIENT", "amount", "amountuom", start_event=False),
        _icu_interval("procedureevents", "ICU_PROCEDURE", "value", "valueuom", start_event=True),
        _edstays(),
        _triage(lookups),
        _vitalsign(),
        _ed_medication("medrecon", "ED_MEDRECON"),
        _ed_medication("pyxis", "ED_PYXIS"),
        _ed_diagnosis(lookups),
        _note("discharge"),
        _note("radiology"),
    ]


REQUIRED_TABLES = ("hosp/patients", "hosp/admissions")

UNMAPPED_TABLES = (
    UnmappedTable("hosp/emar_detail", "dose details of emar rows; the administration is an event"),
    UnmappedTable("hosp/poe_detail", "field/value details of poe orders, which are events"),
    UnmappedTable("hosp/provider", "list of provider ids, no clinical content"),
    UnmappedTable("icu/caregiver", "list of caregiver ids, no clinical content"),
    UnmappedTable("note/discharge_detail", "author/field details of discharge notes"),
    UnmappedTable("note/radiology_detail", "exam codes and fields of radiology notes"),
    *(
        UnmappedTable(f"{m}/{t}", "dictionary: used for code descriptions")
        for m, t in (
            ("hosp", "d_hcpcs"), ("hosp", "d_icd_diagnoses"), ("hosp", "d_icd_procedures"),
            ("hosp", "d_labitems"), ("icu", "d_items"),
        )
    ),
)
