"""MIMIC-IV tables as declarative event mappings (hosp, icu, ed, note modules).

Timing decisions that keep features leakage-free (see shared/MIMIC_NOTES.md):

- ``diagnoses_icd``, ``drgcodes``, ``procedures_icd`` and ``hcpcsevents`` are billing codes assigned
  after discharge, so they are timed at the admission's ``dischtime`` even when a procedure date exists.
- Lab, chart and microbiology results are timed when they were stored (``storetime``), because that is
  when the value became available; ``charttime`` is the fallback when no storetime was recorded.
- Infusion amounts and procedure durations are only known when they end: a start event (no value) at
  ``starttime`` and the amount/duration at ``endtime``. Both are also no earlier than the row's
  ``storetime`` (``inputevents``, ``ingredientevents``, ``procedureevents``): an event sits at the first
  moment its content was known, ``max(starttime, storetime)`` and ``max(endtime, storetime)``. On the demo
  75% of procedure rows and 58% of infusion rows were stored after they started.
- A ``pharmacy`` record is complete once it is verified: it is timed at the latest of ``starttime``,
  ``entertime`` and ``verifiedtime`` (about 8% of demo rows are entered or verified after starttime). A
  ``prescriptions`` row is timed at ``max(starttime, entry time of its pharmacy row)``, linked by
  ``pharmacy_id``, where the entry time is the later of that row's entertime and verifiedtime. Pharmacy
  is streamed before prescriptions and leaves only pharmacy_id → entry time behind (16 bytes a row). A
  prescription without such a pharmacy row keeps its starttime and is flagged.
- ED triage has no time of its own: it happens at ED arrival (``edstays.intime``); ED diagnoses are
  known at ED departure (``edstays.outtime``).
- Notes are timed at ``storetime`` (when they could be read), falling back to ``charttime``.
- Date-only fields (``dod``, ``omr.chartdate``) are placed at 23:59:59 of their day.

Intervals that end before they start (admissions, icustays, transfers, ED stays) are quarantined. A row
that refers to a quarantined admission or stay is handled by what it needs the reference for:

- tables timed by their admission or ED stay (``diagnoses_icd``, ``procedures_icd``, ``drgcodes``,
  ``hcpcsevents``; ED ``triage`` and ``diagnosis``) have no time without it: quarantined ("admission was
  quarantined", "ED stay was quarantined");
- every other table carrying that ``hadm_id`` or ``stay_id`` (labs, ICU charting, transfers, ...) keeps its
  events with the reference cleared (null ``hadm_id``/``stay_id``), and the row is flagged. ICU and ED
  stay ids are separate id spaces: icu tables are checked against ICU stays, ed tables against ED stays.
"""

from __future__ import annotations

from dataclasses import replace

import polars as pl

from ehrpredict import schema as S
from ehrpredict.ingest import mimic4_icu_ed as icu_ed
from ehrpredict.ingest.mimic4_common import (
    ENDS_BEFORE_START,
    Lookups,
    admission_checks,
    c,
    code,
    ends_before_start,
    join_admission,
    joined_text,
    latest,
    text_unless_numeric,
)
from ehrpredict.ingest.spec import Check, DroppedReference, EventSpec, TableSpec, UnmappedTable
from ehrpredict.vocab.icd import icd_code_expr

__all__ = ["ENDS_BEFORE_START", "REQUIRED_TABLES", "UNMAPPED_TABLES", "Lookups", "pharmacy_entry_times",
           "table_specs"]

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
        checks=(ends_before_start("admittime", "dischtime"),),
        # MIMIC has a few (1 of 275 demo admissions): the row is otherwise sound, so it is kept and the
        # negative hours in the ED (the ED_REGISTRATION value) are reported, not hidden.
        flags=(
            Check("edregtime after admittime (negative ED duration)", c("edregtime") > admit, field="edregtime"),
        ),
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
        prepare=join_admission(lookups),
        checks=(
            *admission_checks(lookups),
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
        prepare=join_admission(lookups),
        checks=admission_checks(lookups),
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
        prepare=join_admission(lookups),
        checks=admission_checks(lookups),
        events=(EventSpec(code("HCPCS", c("hcpcs_cd")), c("dischtime"), required=True),),
        description="HCPCS billing codes, timed at discharge",
    )


def _transfers() -> TableSpec:
    return TableSpec(
        name="hosp/transfers",
        required_columns=("subject_id", "eventtype", "intime"),
        optional_columns=("hadm_id", "transfer_id", "careunit", "outtime"),
        datetimes=("intime", "outtime"),
        checks=(ends_before_start("intime", "outtime"),),
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


NO_PHARMACY_ROW = "no pharmacy row with an entry time for pharmacy_id (timed at starttime)"


def _prescriptions(lookups: Lookups) -> TableSpec:
    def prepare(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(lookups.pharmacy_times.lookup(df.get_column("pharmacy_id")).alias("pharmacy_known"))

    return TableSpec(
        name="hosp/prescriptions",
        required_columns=("subject_id", "drug", "starttime"),
        optional_columns=(
            "hadm_id", "pharmacy_id", "stoptime", "drug_type", "dose_val_rx", "dose_unit_rx", "route",
        ),
        datetimes=("starttime", "stoptime"),
        integers=("pharmacy_id",),
        prepare=prepare,
        flags=(Check(NO_PHARMACY_ROW, c("pharmacy_known").is_null(), field="pharmacy_id"),),
        events=(
            EventSpec(
                code("MEDICATION", c("drug")), latest("starttime", "pharmacy_known"),
                text=joined_text("dose_val_rx", "dose_unit_rx", "route", separator=" "),
                required=True,
            ),
        ),
        description="medication orders (drug, dose, route) at their start time, "
        "no earlier than their pharmacy entry/verification",
    )


def pharmacy_entry_times(valid: pl.DataFrame) -> pl.DataFrame:
    """``pharmacy_id, entered`` of valid pharmacy rows: when the order was last entered or verified,
    the moment a prescription linked to it is known (see the module docstring)."""
    return valid.select(
        "pharmacy_id", pl.max_horizontal("entertime", "verifiedtime").alias("entered")
    ).drop_nulls()


def _pharmacy() -> TableSpec:
    return TableSpec(
        name="hosp/pharmacy",
        required_columns=("subject_id", "medication", "starttime"),
        optional_columns=(
            "hadm_id", "pharmacy_id", "route", "frequency", "status", "entertime", "verifiedtime",
        ),
        datetimes=("starttime", "entertime", "verifiedtime"),
        integers=("pharmacy_id",),
        events=(
            EventSpec(
                code("PHARMACY", c("medication")), latest("starttime", "entertime", "verifiedtime"),
                text=joined_text("route", "frequency", separator=" "), required=True,
            ),
        ),
        description="pharmacy dispensing records, once entered and verified",
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
                field="result_value", unparseable=True,
            ),
        ),
        events=(
            EventSpec(code("OMR", name), c("chartdate"), numeric=value, when=~is_bp, required=False),
            EventSpec(code("OMR", name, "systolic"), c("chartdate"), numeric=systolic, when=is_bp),
            EventSpec(code("OMR", name, "diastolic"), c("chartdate"), numeric=diastolic, when=is_bp),
        ),
        description="outpatient measurements (weight, BMI, blood pressure split into two values)",
    )


def table_specs(lookups: Lookups) -> list[TableSpec]:
    """Every mapped table, in processing order. ``patients`` comes first (it defines subjects)."""
    specs = [
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
        _prescriptions(lookups),
        _pharmacy(),
        _emar(),
        _poe(),
        _omr(),
        icu_ed.icustays(),
        icu_ed.icu_measurement("chartevents", "CHART", "value", required_value=False),
        icu_ed.icu_measurement("outputevents", "OUTPUT", "value", required_value=True),
        icu_ed.icu_measurement("datetimeevents", "DATETIME", "value", required_value=False),
        icu_ed.icu_interval("inputevents", "INPUT", "amount", "amountuom", start_event=True),
        icu_ed.icu_interval("ingredientevents", "INGREDIENT", "amount", "amountuom", start_event=False),
        icu_ed.icu_interval("procedureevents", "ICU_PROCEDURE", "value", "valueuom", start_event=True),
        icu_ed.edstays(),
        icu_ed.triage(lookups),
        icu_ed.vitalsign(),
        icu_ed.ed_medication("medrecon", "ED_MEDRECON"),
        icu_ed.ed_medication("pyxis", "ED_PYXIS"),
        icu_ed.ed_diagnosis(lookups),
        icu_ed.note("discharge"),
        icu_ed.note("radiology"),
    ]
    return [_clear_quarantined_references(spec, lookups) for spec in specs]


# Tables timed by their admission or ED stay: a row whose admission or stay was quarantined has no
# time, so it is quarantined too (see admission_checks / ed_stay_checks). Every other row carrying
# such an id keeps its own events and only loses the reference.
TIMED_BY_ADMISSION = ("hosp/diagnoses_icd", "hosp/procedures_icd", "hosp/drgcodes", "hosp/hcpcsevents")
TIMED_BY_ED_STAY = ("ed/triage", "ed/diagnosis")


def _clear_quarantined_references(spec: TableSpec, lookups: Lookups) -> TableSpec:
    refs = []
    if spec.hadm_column and spec.name not in ("hosp/admissions", *TIMED_BY_ADMISSION):
        refs.append(DroppedReference(spec.hadm_column, lookups.quarantined_admissions,
                                     "admission was quarantined (hadm_id cleared)"))
    if spec.stay_column and spec.module == "icu" and spec.name != "icu/icustays":
        refs.append(DroppedReference(spec.stay_column, lookups.quarantined_icu_stays,
                                     "ICU stay was quarantined (stay_id cleared)"))
    if spec.stay_column and spec.module == "ed" and spec.name not in ("ed/edstays", *TIMED_BY_ED_STAY):
        refs.append(DroppedReference(spec.stay_column, lookups.quarantined_ed_stays,
                                     "ED stay was quarantined (stay_id cleared)"))
    return replace(spec, dropped_references=tuple(refs)) if refs else spec


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
