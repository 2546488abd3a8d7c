"""FHIR R4 → events on resources written by hand: codes, times, ids, and the inverse (events → Bundle).

The cohort: subject 10007795 (MIMIC's patient identifier; female, born 2083-04-10, died in hospital
2137-09-02 17:05), one admission 22595853 (EW EMER. as class EMER, 2137-08-30 10:00 → 2137-09-02 17:05,
died), an ICU stay 31269608 in it (MICU → SICU) and an ED stay 33258284 before it. Times carry the
-04:00 offset MIMIC-IV on FHIR writes; events keep the wall clock.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import polars as pl
import pytest

import ehrpredict.ingest.fhir as fhir
from ehrpredict import schema as S
from ehrpredict.errors import DataError
from ehrpredict.ingest.fhir import (
    FhirInputError,
    bundle_from_events,
    events_from_bundle,
    events_from_resources,
)
from ehrpredict.ingest.fhir.systems import MIMIC_CS, MIMIC_ID, generic_prefix
from ehrpredict.ingest.fhir.validate import validate_resource

PATIENT = {"resourceType": "Patient", "id": "pat-1", "gender": "female", "birthDate": "2083-04-10",
           "deceasedDateTime": "2137-09-02",
           "identifier": [{"system": MIMIC_ID + "patient", "value": "10007795"}]}
SUBJECT = {"reference": "Patient/pat-1"}
ADMISSION = {"resourceType": "Encounter", "id": "enc-h", "status": "finished", "subject": SUBJECT,
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
             "identifier": [{"system": MIMIC_ID + "encounter-hosp", "value": "22595853"}],
             "period": {"start": "2137-08-30T10:00:00-04:00", "end": "2137-09-02T17:05:00-04:00"},
             "hospitalization": {
                 "admitSource": {"coding": [{"system": MIMIC_CS + "mimic-admit-source", "code": "EMERGENCY ROOM"}]},
                 "dischargeDisposition": {"coding": [{"system": MIMIC_CS + "mimic-discharge-disposition",
                                                      "code": "DIED"}]}}}
ICU_STAY = {"resourceType": "Encounter", "id": "enc-icu", "status": "finished", "subject": SUBJECT,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ACUTE"},
            "identifier": [{"system": MIMIC_ID + "encounter-icu", "value": "31269608"}],
            "partOf": {"reference": "Encounter/enc-h"},
            "period": {"start": "2137-08-31T02:00:00-04:00", "end": "2137-09-01T12:00:00-04:00"},
            "location": [{"location": {"display": "Medical Intensive Care Unit (MICU)"}},
                         {"location": {"reference": "Location/loc-sicu"}}]}
SICU = {"resourceType": "Location", "id": "loc-sicu", "name": "Surgical Intensive Care Unit (SICU)"}
ED_STAY = {"resourceType": "Encounter", "id": "enc-ed", "status": "finished", "subject": SUBJECT,
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
           "identifier": [{"system": MIMIC_ID + "encounter-ed", "value": "33258284"}],
           "partOf": {"reference": "Encounter/enc-h"},
           "period": {"start": "2137-08-30T04:00:00-04:00", "end": "2137-08-30T10:00:00-04:00"},
           "hospitalization": {
               "admitSource": {"coding": [{"system": MIMIC_CS + "mimic-admit-source", "code": "AMBULANCE"}]},
               "dischargeDisposition": {"coding": [{"system": MIMIC_CS + "mimic-discharge-disposition",
                                                    "code": "ADMITTED"}]}}}
CONDITION = {"resourceType": "Condition", "id": "cond-1", "subject": SUBJECT,
             "encounter": {"reference": "Encounter/enc-h"},
             "code": {"coding": [{"system": MIMIC_CS + "mimic-diagnosis-icd10", "code": "I509"}]}}
OUTPUT = {"resourceType": "Observation", "id": "obs-1", "status": "final", "subject": SUBJECT,
          "encounter": {"reference": "Encounter/enc-icu"},
          "code": {"coding": [{"system": MIMIC_CS + "mimic-d-items", "code": "226560"}]},
          "meta": {"profile": ["http://mimic.mit.edu/fhir/mimic/StructureDefinition/mimic-observation-outputevents"]},
          "effectiveDateTime": "2137-08-31T15:00:00-04:00", "issued": "2137-08-31T16:00:00-04:00",
          "valueQuantity": {"value": 175, "unit": "ml"}}
TRIAGE = {"resourceType": "Procedure", "id": "proc-triage", "status": "completed", "subject": SUBJECT,
          "encounter": {"reference": "Encounter/enc-ed"}, "performedDateTime": "2137-08-30T04:10:00-04:00",
          "code": {"coding": [{"system": "http://snomed.info/sct", "code": "386478007"}]}}
HEART_RATE = {"resourceType": "Observation", "id": "obs-hr", "status": "final", "subject": SUBJECT,
              "encounter": {"reference": "Encounter/enc-ed"}, "partOf": [{"reference": "Procedure/proc-triage"}],
              "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
              "effectiveDateTime": "2137-08-30T04:10:00-04:00", "valueQuantity": {"value": 112, "unit": "/min"}}
RESOURCES = [PATIENT, ADMISSION, ICU_STAY, SICU, ED_STAY, CONDITION, OUTPUT, TRIAGE, HEART_RATE]


def bundle(*resources: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


def canonical(events: pl.DataFrame) -> pl.DataFrame:
    """Events without the table column, in a total order (events at one time may come in another order)."""
    columns = [c for c in S.EVENT_COLUMNS if c != S.TABLE]
    return events.select(columns).sort(columns, nulls_last=False)


def rows(events: pl.DataFrame) -> list[tuple[Any, ...]]:
    return events.select(S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE, S.HADM_ID, S.STAY_ID).rows()


def test_each_resource_becomes_the_csv_routes_events() -> None:
    events = events_from_bundle(bundle(*RESOURCES))
    assert events.schema == pl.Schema(S.EVENT_SCHEMA)
    assert set(events.get_column(S.SUBJECT_ID)) == {10007795}  # MIMIC's identifier, not the UUID
    h, icu, ed = 22595853, 31269608, 33258284
    assert rows(events) == [
        (None, "GENDER//F", None, None, None, None),
        (datetime(2083, 4, 10), "MEDS_BIRTH", None, None, None, None),  # birthDate: start of the day
        (datetime(2137, 8, 30, 4), "ED_ARRIVAL//AMBULANCE", None, None, h, ed),  # wall clock, offset dropped
        (datetime(2137, 8, 30, 4, 10), "ED_TRIAGE//heartrate", 112.0, None, None, ed),  # ED records: no hadm
        (datetime(2137, 8, 30, 10), "HOSPITAL_ADMISSION//EMER", None, "EMERGENCY ROOM", h, None),
        (datetime(2137, 8, 30, 10), "ED_DISPOSITION//ADMITTED", None, None, h, ed),
        (datetime(2137, 8, 31, 2), "ICU_ADMISSION//Medical Intensive Care Unit (MICU)", None, None, h, icu),
        (datetime(2137, 8, 31, 16), "OUTPUT//226560//ml", 175.0, None, h, icu),  # at issued, not effective
        (datetime(2137, 9, 1, 12), "ICU_DISCHARGE//Surgical Intensive Care Unit (SICU)", None, None, h, icu),
        # the date of death meets an admission ending in death that day: its exact end, as admissions.deathtime
        (datetime(2137, 9, 2, 17, 5), "MEDS_DEATH", None, None, None, None),
        (datetime(2137, 9, 2, 17, 5), "HOSPITAL_DISCHARGE//DIED", None, None, h, None),
        (datetime(2137, 9, 2, 17, 5), "ICD10CM//I50.9", None, None, h, None),  # at the admission's end, dotted
    ]
    assert set(events.get_column(S.TABLE)) == {"fhir/Patient", "fhir/Encounter", "fhir/Observation",
                                               "fhir/Condition"}


def test_a_date_alone_is_the_end_of_its_day_and_no_identifier_gives_a_hashed_subject_id() -> None:
    patient = {k: v for k, v in PATIENT.items() if k != "identifier"}
    events = events_from_resources([patient])
    death = events.filter(pl.col(S.CODE) == S.DEATH_CODE)
    assert death.get_column(S.TIME).to_list() == [datetime(2137, 9, 2, 23, 59, 59)]
    subject = events.get_column(S.SUBJECT_ID)[0]
    assert subject == events_from_resources([patient]).get_column(S.SUBJECT_ID)[0]  # deterministic
    assert 0 <= subject < 2**56


def test_a_system_not_in_the_table_gets_a_generic_prefix() -> None:
    observation = {**OUTPUT, "code": {"coding": [{"system": "http://example.org/fhir/CodeSystem/my-codes",
                                                  "code": "X1"}]}, "meta": {}}
    events = events_from_resources([PATIENT, ADMISSION, ICU_STAY, observation])
    assert "FHIR_MY_CODES//X1//ml" in events.get_column(S.CODE).to_list()
    assert generic_prefix("urn:oid:2.16.840.1.113883.6.238") == "FHIR_2_16_840_1_113883_6_238"


def test_standard_systems_map_to_their_prefixes() -> None:
    condition = {**CONDITION, "recordedDate": "2137-09-03T08:00:00-04:00",
                 "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}}
    lab = {**OUTPUT, "meta": {}, "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
           "valueQuantity": {"value": 1.4, "unit": "mg/dL"}}
    events = events_from_resources([PATIENT, ADMISSION, ICU_STAY, condition, lab])
    assert ("ICD10CM//E11.9", datetime(2137, 9, 3, 8)) in events.select(S.CODE, S.TIME).rows()  # recordedDate wins
    assert "LOINC//2160-0//mg/dL" in events.get_column(S.CODE).to_list()


# --- bad input: FhirInputError names the field -----------------------------------------------------
def test_the_error_class_is_the_repositorys_input_error() -> None:
    assert issubclass(FhirInputError, DataError)


@pytest.mark.parametrize(("change", "path"), [
    (lambda b: b["entry"][6]["resource"]["valueQuantity"].update(value="abc"), "entry[6].resource.valueQuantity.value"),
    (lambda b: b["entry"][5]["resource"].pop("subject"), "entry[5].resource.subject"),
    (lambda b: b["entry"][6]["resource"].update(subject={"reference": "Patient/nobody"}),
     "entry[6].resource.subject.reference"),
    (lambda b: b["entry"][6]["resource"].update(resourceType="Observatoin"), "entry[6].resource.resourceType"),
    (lambda b: b["entry"][0]["resource"].update(birthDate="2083-13-40"), "entry[0].resource.birthDate"),
    (lambda b: b["entry"].__setitem__(2, {"resource": "not a resource"}), "entry[2].resource"),
    (lambda b: b.update(type="document"), "type"),
    (lambda b: b.update(resourceType="Patient"), "resourceType"),
])
def test_bad_input_raises_with_the_field_path(change: Any, path: str) -> None:
    broken = copy.deepcopy(bundle(*RESOURCES))
    change(broken)
    with pytest.raises(FhirInputError) as caught:
        events_from_bundle(broken)
    assert caught.value.path == path
    assert path in str(caught.value)


def test_a_resource_list_error_names_the_position() -> None:
    with pytest.raises(FhirInputError, match=r"at \[1\]\.valueQuantity\.value") as caught:
        events_from_resources([PATIENT, {**OUTPUT, "valueQuantity": {"value": "abc"}}])
    assert caught.value.path == "[1].valueQuantity.value"


# --- the inverse ------------------------------------------------------------------------------------
def test_bundle_from_events_is_the_inverse_of_events_from_bundle() -> None:
    events = events_from_bundle(bundle(*RESOURCES))
    again = bundle_from_events(events)
    for entry in again["entry"]:
        validate_resource(entry["resource"])
    assert again["type"] == "collection"
    back = events_from_bundle(json.loads(json.dumps(again)))
    assert canonical(back).equals(canonical(events))


def test_inverse_keeps_every_column_of_ehrpredict_events_of_two_subjects() -> None:
    t = datetime(2150, 1, 5, 8, 30, 15)
    events = pl.DataFrame([
        (1, None, "GENDER//M", None, None, None, None, "x"),
        (1, datetime(2100, 1, 1), S.BIRTH_CODE, None, None, None, None, "x"),
        (1, t, "HOSPITAL_ADMISSION//EW EMER.", None, "EMERGENCY ROOM", 11, None, "x"),
        (1, t, "LAB//50912//mg/dL", 1.1, None, 11, None, "x"),
        (1, t, "LAB//50912//mg/dL", None, "___", 11, None, "x"),
        (1, t, "MEDICATION//Sodium Chloride 0.9%  Flush", None, "10 mL IV", 11, None, "x"),  # two spaces
        (1, t, "NOTE//DISCHARGE", None, "Name: ___\nAdmitted with chest pain.", 11, None, "x"),
        (1, t, "ICD10CM//I50.9", None, None, 11, None, "x"),
        (1, t, "ICU_PROCEDURE_START//225792", None, None, 11, 21, "x"),
        (1, datetime(2150, 1, 6), "HOSPITAL_DISCHARGE//HOME", None, None, 11, None, "x"),
        (2, datetime(2160, 3, 1, 1, 2, 3, 456789), "ED_ARRIVAL//WALK IN", None, None, None, 31, "x"),
        (2, datetime(2160, 3, 1, 5), "ED_TRIAGE//pain", 7.0, None, None, 31, "x"),
        (2, datetime(2160, 3, 1, 9), "ED_DISPOSITION//HOME", None, None, None, 31, "x"),
        (2, datetime(2160, 3, 2), S.DEATH_CODE, None, None, None, None, "x"),
    ], schema=S.EVENT_SCHEMA, orient="row")
    back = events_from_bundle(bundle_from_events(events))
    assert canonical(back).equals(canonical(events))  # the table column is not carried


def test_public_names() -> None:
    assert sorted(fhir.__all__) == ["FhirInputError", "bundle_from_events", "events_from_bundle",
                                    "events_from_resources", "export_fhir", "ingest_fhir",
                                    "resources_from_events"]
