"""What resources refer to: patients (→ subject_id), encounters (→ hadm_id / stay_id, start, end, kind),
locations (→ care unit names), medications (→ drug names) and the MIMIC ED's triage procedures.

**Subject ids.** A Patient's ``identifier`` in MIMIC's patient system (or ehrpredict's own,
``urn:ehrpredict:id:subject_id``, written by export) holds the subject_id. A Patient without one gets a
deterministic integer: the first 7 bytes of the SHA-256 of its resource id, read as a big-endian
integer (below 2**56, so it never collides with a sign and stays the same on every machine and run).
Hospital admissions and ICU/ED stays get their ids the same way from their encounter identifiers.

**Encounter kinds.** An Encounter is a hospital admission, an ICU stay or an ED stay by its identifier's
system (MIMIC's ``encounter-hosp``/``-icu``/``-ed`` or ehrpredict's own); without one, by its class:
``EMER`` is an ED stay, anything else a hospital admission. An ICU or ED stay's admission is its
``partOf``. Records linked to an ED stay carry its stay_id and no hadm_id, as the CSV route's ED tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ehrpredict.ingest.fhir import systems as Y
from ehrpredict.ingest.fhir.errors import FhirInputError
from ehrpredict.ingest.fhir.times import parse_time

HOSPITAL, ICU, ED, STAY = "hospital", "icu", "ed", "stay"


def obj(resource: object, key: str) -> Mapping[str, Any]:
    """``resource[key]`` when it is a JSON object, else an empty one (R4 validation has checked shapes)."""
    value = resource.get(key) if isinstance(resource, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def items(resource: object, key: str) -> list[Any]:
    """``resource[key]`` when it is a JSON list, else an empty one."""
    value = resource.get(key) if isinstance(resource, Mapping) else None
    return value if isinstance(value, list) else []


def hashed_id(text: str) -> int:
    """A deterministic non-negative integer id for a resource id without a numeric identifier.

    >>> hashed_id("28dcf33b-0c52-587f-83ad-2a3270976719") == hashed_id("28dcf33b-0c52-587f-83ad-2a3270976719")
    True
    """
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:7], "big")


def identifier_in(resource: Mapping[str, Any], wanted: tuple[str, ...]) -> int | None:
    """The integer value of the resource's first identifier in one of ``wanted`` systems."""
    for ident in resource.get("identifier") or ():
        if isinstance(ident, Mapping) and ident.get("system") in wanted:
            value = str(ident.get("value", ""))
            return int(value) if value.isdigit() else hashed_id(value)
    return None


def reference_id(reference: object, kind: str) -> str | None:
    """``"Patient/abc"`` → ``"abc"`` (also a full URL ending in ``Patient/abc``); None for another type."""
    if not isinstance(reference, Mapping):
        return None
    text = reference.get("reference")
    if not isinstance(text, str):
        return None
    parts = text.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == kind:
        return parts[-1]
    if text.startswith("urn:uuid:"):
        return text[len("urn:uuid:"):]
    return None


@dataclass
class EncounterInfo:
    kind: str
    ident: int
    part_of: str | None
    start: datetime | None
    end: datetime | None


@dataclass
class Index:
    """Lookups built from a first pass over the input (small: one entry per patient, encounter, ...)."""

    patients: dict[str, int] = field(default_factory=dict)
    encounters: dict[str, EncounterInfo] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    medications: dict[str, str] = field(default_factory=dict)
    triage_procedures: set[str] = field(default_factory=set)
    mixes: dict[str, list[str]] = field(default_factory=dict)  # Medication id → its ingredients' ids
    deaths: dict[str, list[datetime]] = field(default_factory=dict)  # Patient id → ends of fatal admissions

    def add(self, resource: Mapping[str, Any]) -> None:
        kind, rid = resource.get("resourceType"), str(resource.get("id", ""))
        if kind == "Patient":
            self.patients[rid] = patient_subject_id(resource)
        elif kind == "Encounter":
            info = self.encounters[rid] = encounter_info(resource)
            patient = reference_id(resource.get("subject"), "Patient")
            if info.kind == HOSPITAL and info.end is not None and patient is not None and _died(resource):
                self.deaths.setdefault(patient, []).append(info.end)
        elif kind == "Location" and isinstance(resource.get("name"), str):
            self.locations[rid] = resource["name"]
        elif kind == "Medication":
            name = drug_name(resource.get("code"), resource.get("identifier"))
            ingredients = [reference_id(i.get("itemReference"), "Medication")
                           for i in resource.get("ingredient") or () if isinstance(i, Mapping)]
            if any(ingredients):
                self.mixes[rid] = [i for i in ingredients if i]
            elif name:
                self.medications[rid] = name
        elif kind == "Procedure" and _is_triage(resource):
            self.triage_procedures.add(rid)

    def drug_names(self, rid: str) -> list[str]:
        """The names of a referenced Medication: one, or one per ingredient of a mix (as MIMIC's
        prescriptions list each ingredient of a mixed infusion on its own row)."""
        if rid in self.mixes:
            return [self.medications.get(i, i) for i in self.mixes[rid]]
        return [self.medications.get(rid, rid)]

    def subject(self, resource: Mapping[str, Any]) -> int:
        """The subject_id of a resource's ``subject`` (or ``patient``) reference."""
        key = "subject" if "subject" in resource else "patient"
        ref = resource.get(key)
        if ref is None:
            raise FhirInputError("subject", "a reference to the Patient", "no subject")
        rid = reference_id(ref, "Patient")
        if rid is None:
            raise FhirInputError(f"{key}.reference", "a reference 'Patient/<id>'", repr(ref))
        if rid not in self.patients:
            raise FhirInputError(f"{key}.reference", "a Patient present in the input",
                                 f"unknown Patient/{rid}")
        return self.patients[rid]

    def encounter(self, resource: Mapping[str, Any]) -> EncounterInfo | None:
        for key in ("encounter", "context"):
            ref = resource.get(key)
            if isinstance(ref, Mapping) and isinstance(ref.get("encounter"), list) and ref["encounter"]:
                ref = ref["encounter"][0]  # DocumentReference.context.encounter
            rid = reference_id(ref, "Encounter")
            if rid is not None:
                return self.encounters.get(rid)
        return None

    def admission_of(self, info: EncounterInfo) -> int | None:
        """The hadm_id of a hospital encounter, or of the admission an ICU stay is part of."""
        if info.kind == HOSPITAL:
            return info.ident
        parent = self.encounters.get(info.part_of or "")
        return parent.ident if parent is not None and parent.kind == HOSPITAL else None

    def ids(self, info: EncounterInfo | None) -> tuple[int | None, int | None]:
        """``(hadm_id, stay_id)`` of records linked to an encounter (ED records: stay_id only)."""
        if info is None:
            return None, None
        if info.kind == HOSPITAL:
            return info.ident, None
        if info.kind == ED:
            return None, info.ident
        return self.admission_of(info), info.ident


def patient_subject_id(resource: Mapping[str, Any]) -> int:
    ident = identifier_in(resource, Y.SUBJECT_SYSTEMS)
    return ident if ident is not None else hashed_id(str(resource.get("id", "")))


def encounter_kind(resource: Mapping[str, Any]) -> tuple[str, int]:
    for kind, wanted in ((HOSPITAL, Y.HOSPITAL_SYSTEMS), (ICU, Y.ICU_SYSTEMS), (ED, Y.ED_SYSTEMS),
                         (STAY, Y.STAY_SYSTEMS)):
        ident = identifier_in(resource, wanted)
        if ident is not None:
            return kind, ident
    ident = identifier_in(resource, tuple(str(i.get("system")) for i in items(resource, "identifier")
                                          if isinstance(i, Mapping)))
    ident = ident if ident is not None else hashed_id(str(resource.get("id", "")))
    klass = resource.get("class")
    is_ed = isinstance(klass, Mapping) and klass.get("code") == "EMER"
    return (ED if is_ed else HOSPITAL), ident


def encounter_info(resource: Mapping[str, Any]) -> EncounterInfo:
    kind, ident = encounter_kind(resource)
    period = obj(resource, "period")
    return EncounterInfo(kind, ident, reference_id(resource.get("partOf"), "Encounter"),
                         parse_time(period.get("start")), parse_time(period.get("end")))


def drug_name(concept: object, identifiers: object = None) -> str | None:
    """A drug's name: MIMIC's name coding or identifier, else the concept's text, else its first code."""
    codings = concept.get("coding") or [] if isinstance(concept, Mapping) else []
    for coding in codings:
        if isinstance(coding, Mapping) and coding.get("system") == Y.MIMIC_CS + "mimic-medication-name":
            return str(coding.get("code"))
    for ident in identifiers if isinstance(identifiers, list) else ():
        if isinstance(ident, Mapping) and ident.get("system") == Y.MIMIC_CS + "mimic-medication-name":
            return str(ident.get("value"))
    if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
        return str(concept["text"])
    for coding in codings:
        if isinstance(coding, Mapping) and coding.get("code"):
            return str(coding["code"])
    return None


def _is_triage(resource: Mapping[str, Any]) -> bool:
    code = resource.get("code")
    codings = code.get("coding") or [] if isinstance(code, Mapping) else []
    return any(isinstance(c, Mapping) and (c.get("system"), c.get("code")) == Y.TRIAGE_PROCEDURE for c in codings)


def _died(resource: Mapping[str, Any]) -> bool:
    hosp = resource.get("hospitalization")
    disposition = hosp.get("dischargeDisposition") if isinstance(hosp, Mapping) else None
    codings = disposition.get("coding") or [] if isinstance(disposition, Mapping) else []
    return any(isinstance(c, Mapping) and str(c.get("code", "")).upper() == "DIED" for c in codings)
