"""One mapper from FHIR R4 resources to events (``EVENT_SCHEMA`` rows), for files and Bundles alike.

Codes come from :mod:`ehrpredict.ingest.fhir.systems`; times follow :mod:`ehrpredict.ingest.fhir.times`
(wall clock kept, offset dropped); ids follow :mod:`ehrpredict.ingest.fhir.references`. An event sits at
the first moment its content was known, as in the CSV route:

- Patient: ``MEDS_BIRTH`` at the start of ``birthDate``, ``GENDER//F|M|O|U`` (no time), ``MEDS_DEATH`` at
  ``deceasedDateTime`` (a date alone: 23:59:59 of that day).
- Encounter: a hospital admission gives ``HOSPITAL_ADMISSION//<type>`` at its start (text: admit source)
  and ``HOSPITAL_DISCHARGE//<disposition>`` at its end; an ICU stay ``ICU_ADMISSION//<first unit>`` and
  ``ICU_DISCHARGE//<last unit>``; an ED stay ``ED_ARRIVAL//<admit source>`` and
  ``ED_DISPOSITION//<disposition>``. MIMIC writes the admission type only as class and priority, so a
  MIMIC admission is ``HOSPITAL_ADMISSION//<class code>`` (``EMER``, ``AMB``, ``OBSENC``, ``SS``).
- Condition, and Procedure in a billing vocabulary (ICD, HCPCS): no time at which they were known (coders
  assign them after discharge), so they sit at their encounter's end, as the CSV route times
  ``diagnoses_icd`` at ``dischtime``; the coding delay (``events.cutoff.CodingDelay``, 7 days by default)
  then holds them back from features exactly as for CSV data. ``recordedDate``, when given, wins.
- Observation: at ``issued`` (when the value was known), else the end of its effective time.
- MedicationRequest at the later of ``authoredOn`` and the validity start; MedicationAdministration at
  its effective time (an ICU infusion: start event at the start, amount at the end);
  MedicationDispense at ``whenHandedOver``, else its encounter's end; MedicationStatement at
  ``dateAsserted``, else its effective time.
- Other Procedures at the end of ``performed[x]``; ICU procedures (MIMIC d_items) give a start event
  at the start and an event at the end.
- DocumentReference (``date``) and DiagnosticReport (``issued``, else effective): ``NOTE//<type>``
  with the text in ``text_value``.

A resource that cannot be mapped raises :class:`FhirInputError` with the field path, relative to the
resource; callers place it under ``entry[i].resource`` or name the file and line.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ehrpredict import schema as S
from ehrpredict.ingest.fhir import systems as Y
from ehrpredict.ingest.fhir.errors import FhirInputError
from ehrpredict.ingest.fhir.references import (
    ED,
    HOSPITAL,
    ICU,
    EncounterInfo,
    Index,
    drug_name,
    items,
    obj,
    reference_id,
)
from ehrpredict.ingest.fhir.times import parse_time

Row = tuple[int, datetime | None, str, float | None, str | None, int | None, int | None, str]
SEP = S.CODE_SEPARATOR
GENERIC_FLAG = "code system not in the table (generic prefix)"
NO_VALUE_FLAG = "no value (dataAbsentReason): no event"
GENDERS = {"female": "F", "male": "M", "other": "O", "unknown": "U"}
# Resources that only other resources refer to; they give no events of their own.
REFERENCE_ONLY = ("Location", "Organization", "Medication", "Specimen", "Practitioner", "PractitionerRole")


@dataclass
class Mapped:
    """The events of one resource and the problems it was kept with (``(reason, field)``)."""

    rows: list[Row] = field(default_factory=list)
    flags: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Ctx:
    resource: Mapping[str, Any]
    index: Index
    subject: int
    table: str
    encounter: EncounterInfo | None
    out: Mapped

    def emit(self, code: str, time: datetime | None, numeric: float | None = None, text: str | None = None,
             own_ids: tuple[int | None, int | None] | None = None) -> None:
        hadm, stay = own_ids if own_ids is not None else self.index.ids(self.encounter)
        self.out.rows.append((self.subject, time, code, numeric, text, hadm, stay, self.table))

    def encounter_end(self) -> datetime | None:
        return self.encounter.end if self.encounter is not None else None


def map_resource(resource: Mapping[str, Any], index: Index) -> Mapped:
    """The events of one resource (none for reference-only resources such as Location)."""
    kind = resource.get("resourceType")
    out = Mapped()
    if kind in REFERENCE_ONLY:
        return out
    handler = _HANDLERS.get(str(kind))
    if handler is None:
        raise FhirInputError("resourceType", f"one of {', '.join(sorted([*_HANDLERS, *REFERENCE_ONLY]))}",
                             repr(kind))
    if kind == "Patient":
        subject = index.patients.get(str(resource.get("id", "")))
        if subject is None:
            from ehrpredict.ingest.fhir.references import patient_subject_id

            subject = patient_subject_id(resource)
    else:
        subject = index.subject(resource)
    ctx = _Ctx(resource, index, subject, f"fhir/{kind}", index.encounter(resource), out)
    handler(ctx)
    return out


# --- codes ----------------------------------------------------------------------------------------
def _codings(concept: object, path: str) -> list[tuple[str, str, Mapping[str, Any]]]:
    """``(system, code, coding)`` of a CodeableConcept's codings that have both."""
    if not isinstance(concept, Mapping):
        return []
    found = []
    for coding in concept.get("coding") or ():
        if isinstance(coding, Mapping) and coding.get("code") is not None:
            found.append((str(coding.get("system") or ""), str(coding["code"]), coding))
    return found


def _code(ctx: _Ctx, concept: object, path: str, *, prefix: str | None = None) -> str:
    """The ehrpredict code of a CodeableConcept: its own-system coding as is, else the first coding of a
    system in the table, else the first coding under a generic prefix (flagged), else ``prefix//text``."""
    codings = _codings(concept, path)
    own = _own(concept)
    if own is not None:
        return own
    for system, code, _ in codings:
        known_prefix, known = Y.prefix_of(system)
        if known:
            return f"{prefix or known_prefix}{SEP}{Y.code_value(known_prefix, code)}"
    if codings:
        system, code, _ = codings[0]
        ctx.out.flags.append((GENERIC_FLAG, f"{path}.coding[0].system={system}"))
        return f"{prefix or Y.prefix_of(system)[0]}{SEP}{code}"
    if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
        return f"{prefix or Y.GENERIC_PREFIX + 'TEXT'}{SEP}{concept['text']}"
    raise FhirInputError(path, "a CodeableConcept with a coding or text", repr(concept))


def _own(concept: object) -> str | None:
    """The exact ehrpredict code of an exported concept: its own-system coding's display (the code
    itself when the display is absent; see export)."""
    for system, code, coding in _codings(concept, ""):
        if system == Y.OWN_CODE_SYSTEM:
            display = coding.get("display")
            return str(display) if isinstance(display, str) else code
    return None


def _first_code(concept: object) -> str | None:
    codings = _codings(concept, "")
    if codings:
        return codings[0][1]
    if isinstance(concept, Mapping) and isinstance(concept.get("text"), str):
        return str(concept["text"])
    return None


def _join(*parts: str | None) -> str:
    return SEP.join(p for p in parts if p)


# --- values and times -----------------------------------------------------------------------------
def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FhirInputError(path, "a number", repr(value))
    return float(value)


def _time(ctx: _Ctx, key: str, *, required: bool = False, start: bool = False) -> datetime | None:
    raw = ctx.resource.get(key)
    if raw is None:
        if required:
            raise FhirInputError(key, "a date or dateTime", "none")
        return None
    parsed = parse_time(raw, start=start)
    if parsed is None:
        raise FhirInputError(key, "a FHIR date or dateTime", repr(raw))
    return parsed


def _period(ctx: _Ctx, key: str) -> tuple[datetime | None, datetime | None]:
    period = ctx.resource.get(key)
    if period is None:
        return None, None
    if not isinstance(period, Mapping):
        raise FhirInputError(key, "a Period", repr(period))
    out = []
    for end in ("start", "end"):
        raw = period.get(end)
        parsed = parse_time(raw) if raw is not None else None
        if raw is not None and parsed is None:
            raise FhirInputError(f"{key}.{end}", "a FHIR dateTime", repr(raw))
        out.append(parsed)
    return out[0], out[1]


def _latest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return max(present) if present else None


def _require(time: datetime | None, what: str) -> datetime:
    if time is None:
        raise FhirInputError(what, "a time at which the record was known", "none")
    return time


def _note_text(resource: Mapping[str, Any]) -> str | None:
    notes = resource.get("note")
    if isinstance(notes, list) and notes and isinstance(notes[0], Mapping) and isinstance(notes[0].get("text"), str):
        return str(notes[0]["text"])
    return None


# --- Patient and Encounter ------------------------------------------------------------------------
def _patient(ctx: _Ctx) -> None:
    r = ctx.resource
    birth = _time(ctx, "birthDate", start=True)
    extras = obj(r, "_birthDate")
    for ext in items(extras, "extension"):
        if isinstance(ext, Mapping) and str(ext.get("url", "")).endswith("patient-birthTime"):
            birth = parse_time(ext.get("valueDateTime")) or birth
    none: tuple[None, None] = (None, None)
    if birth is not None:
        ctx.emit(S.BIRTH_CODE, birth, own_ids=none)
    gender = r.get("gender")
    if gender is not None:
        if gender not in GENDERS:
            raise FhirInputError("gender", f"one of {', '.join(GENDERS)}", repr(gender))
        ctx.emit(_join("GENDER", GENDERS[gender]), None, own_ids=none)
    death = _time(ctx, "deceasedDateTime")
    raw_death = r.get("deceasedDateTime")
    if death is not None and isinstance(raw_death, str) and len(raw_death) == 10:
        # A date alone (MIMIC's dod): an admission that ended in death that day has the exact time,
        # which the CSV route takes from admissions.deathtime.
        same_day = [t for t in ctx.index.deaths.get(str(r.get("id", "")), []) if t.date() == death.date()]
        death = max(same_day) if same_day else death
    if death is not None:
        ctx.emit(S.DEATH_CODE, death, own_ids=none)


_VISIT_CODES = {HOSPITAL: ("HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE"), ICU: ("ICU_ADMISSION", "ICU_DISCHARGE"),
                ED: ("ED_ARRIVAL", "ED_DISPOSITION")}


def _encounter(ctx: _Ctx) -> None:
    r = ctx.resource
    info = ctx.index.encounters.get(str(r.get("id", "")))
    if info is None:
        from ehrpredict.ingest.fhir.references import encounter_info

        info = encounter_info(r)
    start, end = _period(ctx, "period")
    if info.kind not in _VISIT_CODES or start is None:
        return  # a stay of unknown kind, or one without a start: only a target of references
    ids = (ctx.index.admission_of(info), info.ident if info.kind != HOSPITAL else None)
    hosp = obj(r, "hospitalization")
    admit, discharge = _VISIT_CODES[info.kind]
    types = items(r, "type")
    own_start = next((c for c in (_own(t) for t in types) if c), None)
    source = hosp.get("admitSource")
    source_text = source.get("text") if isinstance(source, Mapping) else None
    if own_start is not None:
        ctx.emit(own_start, start, text=source_text, own_ids=ids)
    elif info.kind == HOSPITAL:
        klass = r.get("class")
        ctx.emit(_join(admit, klass.get("code") if isinstance(klass, Mapping) else None), start,
                 text=_first_code(source), own_ids=ids)
    elif info.kind == ICU:
        ctx.emit(_join(admit, _unit(ctx, 0)), start, own_ids=ids)
    else:
        ctx.emit(_join(admit, _first_code(source)), start, own_ids=ids)
    if end is None:
        return
    for t in types:  # MIMIC writes the admission's HCPCS codes as encounter types: billing, at the end
        for system, code, _ in _codings(t, "type"):
            if system == Y.MIMIC_CS + "mimic-hcpcs-cd":
                ctx.emit(_join("HCPCS", code), end, own_ids=ids)
    disposition = hosp.get("dischargeDisposition")
    own_end = _own(disposition)
    end_text = disposition.get("text") if isinstance(disposition, Mapping) and own_end else None
    if own_end is not None:
        ctx.emit(own_end, end, text=end_text, own_ids=ids)
    elif info.kind == ICU:
        ctx.emit(_join(discharge, _unit(ctx, -1)), end, own_ids=ids)
    else:
        ctx.emit(_join(discharge, _first_code(disposition)), end, own_ids=ids)


def _unit(ctx: _Ctx, position: int) -> str | None:
    """The care unit of the encounter's first or last location: the Location's name, else the
    reference's display."""
    locations = ctx.resource.get("location")
    if not isinstance(locations, list) or not locations or not isinstance(locations[position], Mapping):
        return None
    ref = locations[position].get("location")
    rid = reference_id(ref, "Location")
    if rid is not None and rid in ctx.index.locations:
        return ctx.index.locations[rid]
    return ref.get("display") if isinstance(ref, Mapping) else None


# --- clinical resources ---------------------------------------------------------------------------
def _condition(ctx: _Ctx) -> None:
    code = _code(ctx, ctx.resource.get("code"), "code")
    time = _time(ctx, "recordedDate") or ctx.encounter_end()
    text = _note_text(ctx.resource)
    if text is None and ctx.encounter is not None and ctx.encounter.kind == ED:
        # ED diagnoses keep their title, as ed/diagnosis's icd_title in the CSV route
        codings = _codings(ctx.resource.get("code"), "code")
        text = str(codings[0][2].get("display")) if codings and codings[0][2].get("display") else None
    ctx.emit(code, _require(time, "recordedDate (or an encounter with an end)"), text=text)


def _procedure(ctx: _Ctx) -> None:
    r = ctx.resource
    concept = r.get("code")
    codings = _codings(concept, "code")
    start, end = _period(ctx, "performedPeriod")
    performed = _time(ctx, "performedDateTime")
    if any(s == Y.D_ITEMS for s, _, _ in codings) and _own(concept) is None:
        item = next(c for s, c, _ in codings if s == Y.D_ITEMS)
        if start is not None:
            ctx.emit(_join("ICU_PROCEDURE_START", item), start)
        ctx.emit(_join("ICU_PROCEDURE", item), _require(end or performed or start, "performedPeriod.end"))
        return
    if any((s, c) == Y.TRIAGE_PROCEDURE for s, c, _ in codings) and ctx.encounter is not None \
            and ctx.encounter.kind == ED and _own(concept) is None:
        return  # the triage's observations are its events (ED_TRIAGE//...)
    if any((s, c) == ("http://snomed.info/sct", "410188000") for s, c, _ in codings) and _own(concept) is None:
        ctx.emit("ED_VITAL", _require(performed or end, "performedDateTime"))
        return
    code = _code(ctx, concept, "code")
    billing = code.split(SEP, 1)[0] in Y.BILLING_PREFIXES and _own(concept) is None
    time = ctx.encounter_end() if billing else None
    time = time or performed or end or start or ctx.encounter_end()
    ctx.emit(code, _require(time, "performed[x] (or an encounter with an end)"), text=_note_text(r))


def _observation(ctx: _Ctx) -> None:
    r = ctx.resource
    _start, end = _period(ctx, "effectivePeriod")
    time = _time(ctx, "issued") or _time(ctx, "effectiveDateTime") or _time(ctx, "effectiveInstant") or end
    if time is not None or _own(r.get("code")) is None:  # an exported event may be static (no time)
        time = _require(time, "issued or effective[x]")
    components = items(r, "component")
    if not _has_value(r) and not components and r.get("dataAbsentReason") is not None:
        ctx.out.flags.append((NO_VALUE_FLAG, "dataAbsentReason"))
        return
    ed_name = _ed_vital(ctx, r.get("code"))
    ed_components = any(isinstance(c, Mapping) and _ed_vital(ctx, c.get("code")) for c in components)
    if ed_components:  # a blood pressure panel of an ED stay: its parts are the CSV's sbp and dbp
        for i, comp in enumerate(components):
            if isinstance(comp, Mapping) and _has_value(comp):
                name = _ed_vital(ctx, comp.get("code")) or _first_code(comp.get("code"))
                _emit_ed(ctx, name, comp, f"component[{i}]", time)
        return
    if ed_name is not None:
        _emit_ed(ctx, ed_name, r, "", time)
        return
    numeric, text, unit = _value(r, "")
    code = _observation_code(ctx, unit)
    ctx.emit(code, time, numeric, text if text is not None else _note_text(r))
    for i, comp in enumerate(components):
        if isinstance(comp, Mapping) and _has_value(comp):
            c_numeric, c_text, c_unit = _value(comp, f"component[{i}].")
            c_code = _code(ctx, comp.get("code"), f"component[{i}].code")
            ctx.emit(_join(c_code, c_unit) if _own(comp.get("code")) is None else c_code, time, c_numeric, c_text)


def _observation_code(ctx: _Ctx, unit: str | None) -> str:
    concept = ctx.resource.get("code")
    own = _own(concept)
    if own is not None:
        return own
    codings = _codings(concept, "code")
    if any(s == Y.D_ITEMS for s, _, _ in codings):
        item = next(c for s, c, _ in codings if s == Y.D_ITEMS)
        profiles = (ctx.resource.get("meta") or {}).get("profile") or []
        kind = "CHART"
        if any(str(p).endswith("outputevents") for p in profiles):
            kind = "OUTPUT"
        elif any(str(p).endswith("datetimeevents") for p in profiles) or "valueDateTime" in ctx.resource:
            kind = "DATETIME"
        return _join(kind, item, unit)
    return _join(_code(ctx, concept, "code"), unit)


_VALUE_KEYS = ("valueQuantity", "valueString", "valueCodeableConcept", "valueDateTime", "valueInteger",
               "valueBoolean", "valueTime", "valuePeriod", "valueRatio", "valueSampledData", "valueRange")


def _has_value(r: Mapping[str, Any]) -> bool:
    return any(k in r for k in _VALUE_KEYS)


def _value(r: Mapping[str, Any], path: str) -> tuple[float | None, str | None, str | None]:
    """``(numeric, text, unit)`` of an observation's (or component's) value."""
    if "valueQuantity" in r:
        q = r["valueQuantity"]
        if not isinstance(q, Mapping):
            raise FhirInputError(f"{path}valueQuantity", "a Quantity", repr(q))
        numeric = _number(q.get("value"), f"{path}valueQuantity.value") if "value" in q else None
        unit = q.get("unit") or q.get("code")
        return numeric, None, str(unit) if unit else None
    if "valueInteger" in r:
        return _number(r["valueInteger"], f"{path}valueInteger"), None, None
    if "valueString" in r:
        return None, str(r["valueString"]), None
    if "valueCodeableConcept" in r:
        return None, _first_code(r["valueCodeableConcept"]), None
    if "valueDateTime" in r:
        parsed = parse_time(r["valueDateTime"], start=True)
        if parsed is None:
            raise FhirInputError(f"{path}valueDateTime", "a FHIR dateTime", repr(r["valueDateTime"]))
        return None, parsed.strftime("%Y-%m-%d %H:%M:%S"), None
    if "valueBoolean" in r:
        return None, str(r["valueBoolean"]).lower(), None
    return None, None, None


def _ed_vital(ctx: _Ctx, concept: object) -> str | None:
    """The MIMIC-IV-ED column a LOINC-coded observation of an ED stay holds, if any."""
    if ctx.encounter is None or ctx.encounter.kind != ED or _own(concept) is not None:
        return None
    for system, code, _ in _codings(concept, "code"):
        if system == "http://loinc.org" and code in Y.ED_VITALS_BY_LOINC:
            return Y.ED_VITALS_BY_LOINC[code]
    return None


def _emit_ed(ctx: _Ctx, name: str | None, r: Mapping[str, Any], path: str, time: datetime | None) -> None:
    """ED_TRIAGE//<vital> for a triage's observation, else ED_VITAL//<vital>; a number when the value
    is one (MIMIC writes pain and acuity as strings), else the text, as the CSV route's ED tables."""
    parts = [*(r.get("partOf") or ()), *(ctx.resource.get("partOf") or ())]
    triage = any(reference_id(p, "Procedure") in ctx.index.triage_procedures for p in parts)
    prefix = "ED_TRIAGE" if triage or name in ("acuity", "chiefcomplaint") else "ED_VITAL"
    numeric, text, _ = _value(r, f"{path}." if path else "")
    if name == "chiefcomplaint":
        ctx.emit(prefix, time, text=text)
        return
    if text is not None:
        with contextlib.suppress(ValueError):
            numeric, text = float(text), None
    ctx.emit(_join(prefix, name), time, numeric, text)


def _medication_code(ctx: _Ctx, path_key: str) -> tuple[list[str], bool, object]:
    """``(drug, is_mimic, concept)``: the drug's name (MIMIC's name coding, a referenced Medication's
    name, the text, else its first code) and whether it is coded in one of MIMIC's drug systems."""
    r = ctx.resource
    concept = r.get("medicationCodeableConcept")
    if concept is not None:
        systems = {s for s, _, _ in _codings(concept, path_key)}
        name = drug_name(concept)
        return [name] if name else [], bool(systems & set(Y.MIMIC_DRUG_SYSTEMS)) or not systems, concept
    rid = reference_id(r.get("medicationReference"), "Medication")
    if rid is None:
        raise FhirInputError("medication[x]", "medicationCodeableConcept or medicationReference", "neither")
    return ctx.index.drug_names(rid), True, None


def _medication_request(ctx: _Ctx) -> None:
    r = ctx.resource
    drug, mimic, concept = _medication_code(ctx, "medicationCodeableConcept")
    dispense = r.get("dispenseRequest")
    validity = dispense.get("validityPeriod") if isinstance(dispense, Mapping) else None
    start = parse_time(validity.get("start")) if isinstance(validity, Mapping) else None
    time = _require(_latest(_time(ctx, "authoredOn"), start), "authoredOn")
    own = _own(concept)
    if own is not None:
        ctx.emit(own, time, text=_note_text(r))
    elif mimic:
        for name in drug or [""]:
            ctx.emit(_join("MEDICATION", name), time, text=_dose_text(r))
    else:
        ctx.emit(_code(ctx, concept, "medicationCodeableConcept"), time, text=_dose_text(r))


def _dose_text(r: Mapping[str, Any]) -> str | None:
    dosage = r.get("dosageInstruction")
    if not isinstance(dosage, list) or not dosage or not isinstance(dosage[0], Mapping):
        return None
    first = dosage[0]
    dose = None
    for rate in first.get("doseAndRate") or ():
        q = rate.get("doseQuantity") if isinstance(rate, Mapping) else None
        if isinstance(q, Mapping):
            dose = " ".join(str(x) for x in (q.get("value"), q.get("unit")) if x is not None)
    route = _first_code(first.get("route"))
    return " ".join(p for p in (dose, route) if p) or None


def _medication_administration(ctx: _Ctx) -> None:
    r = ctx.resource
    drug, mimic, concept = _medication_code(ctx, "medicationCodeableConcept")
    start, end = _period(ctx, "effectivePeriod")
    at = _time(ctx, "effectiveDateTime")
    dosage = obj(r, "dosage")
    dose = obj(dosage, "dose")
    amount = _number(dose["value"], "dosage.dose.value") if "value" in dose else None
    unit = dose.get("unit") or dose.get("code")
    own = _own(concept)
    icu_item = next((c for s, c, _ in _codings(concept, "") if s == Y.MIMIC_CS + "mimic-medication-icu"), None)
    if own is None and icu_item is not None:
        if start is not None or at is not None:
            ctx.emit(_join("INPUT_START", icu_item), start or at)
        ctx.emit(_join("INPUT", icu_item, unit), _require(end or at, "effective[x]"), amount)
        return
    time = _require(at or end or start, "effective[x]")
    if own is not None:
        ctx.emit(own, time, amount, _note_text(r))
    elif mimic:
        ctx.emit(_join("EMAR", drug[0] if drug else None, _first_code(dosage.get("method"))), time)
    else:
        ctx.emit(_code(ctx, concept, "medicationCodeableConcept"), time, amount)


def _medication_dispense(ctx: _Ctx) -> None:
    r = ctx.resource
    drug, mimic, concept = _medication_code(ctx, "medicationCodeableConcept")
    time = _require(_time(ctx, "whenHandedOver") or _time(ctx, "whenPrepared") or ctx.encounter_end(),
                    "whenHandedOver (or an encounter with an end)")
    own = _own(concept)
    if own is not None:
        ctx.emit(own, time, text=_note_text(r))
    elif ctx.encounter is not None and ctx.encounter.kind == ED:
        ctx.emit(_join("ED_PYXIS", drug[0] if drug else None), time)
    elif mimic:
        dosage = r.get("dosageInstruction")
        first = dosage[0] if isinstance(dosage, list) and dosage and isinstance(dosage[0], Mapping) else {}
        timing = obj(first, "timing")
        text = " ".join(p for p in (_first_code(first.get("route")), _first_code(timing.get("code"))) if p)
        ctx.emit(_join("PHARMACY", drug[0] if drug else None), time, text=text or None)
    else:
        ctx.emit(_code(ctx, concept, "medicationCodeableConcept"), time)


def _medication_statement(ctx: _Ctx) -> None:
    r = ctx.resource
    drug, _mimic, concept = _medication_code(ctx, "medicationCodeableConcept")
    start, end = _period(ctx, "effectivePeriod")
    time = _require(_time(ctx, "dateAsserted") or _time(ctx, "effectiveDateTime") or end or start,
                    "dateAsserted or effective[x]")
    own = _own(concept)
    if own is not None:
        ctx.emit(own, time, text=_note_text(r))
    elif ctx.encounter is not None and ctx.encounter.kind == ED:
        etc = next((c[2].get("display") for c in _codings(concept, "") if c[0] == Y.MIMIC_ETC), None)
        ctx.emit(_join("ED_MEDRECON", drug[0] if drug else None), time, text=str(etc) if etc else None)
    else:
        ctx.emit(_code(ctx, concept, "medicationCodeableConcept"), time)


def _attachment_text(attachment: object, path: str) -> str | None:
    if not isinstance(attachment, Mapping) or "data" not in attachment:
        return None
    try:
        return base64.b64decode(str(attachment["data"]), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise FhirInputError(f"{path}.data", "base64 of UTF-8 text", f"undecodable data ({exc})") from exc


def _note_code(ctx: _Ctx, concept: object, path: str) -> str:
    own = _own(concept)
    if own is not None:
        return own
    name = _first_code(concept)
    return _join("NOTE", name.upper() if name else "UNKNOWN")


def _document_reference(ctx: _Ctx) -> None:
    r = ctx.resource
    contents = items(r, "content")
    texts = [_attachment_text(c.get("attachment"), f"content[{i}].attachment")
             for i, c in enumerate(contents) if isinstance(c, Mapping)]
    context = obj(r, "context")
    period = obj(context, "period")
    time = _require(_time(ctx, "date") or parse_time(period.get("end")), "date")
    text = "\n".join(t for t in texts if t) or None
    ctx.emit(_note_code(ctx, r.get("type"), "type"), time, text=text)


def _diagnostic_report(ctx: _Ctx) -> None:
    r = ctx.resource
    forms = items(r, "presentedForm")
    texts = [_attachment_text(f, f"presentedForm[{i}]") for i, f in enumerate(forms)]
    text = "\n".join(t for t in texts if t) or r.get("conclusion")
    _start, end = _period(ctx, "effectivePeriod")
    time = _require(_time(ctx, "issued") or _time(ctx, "effectiveDateTime") or end, "issued or effective[x]")
    ctx.emit(_note_code(ctx, r.get("code"), "code"), time, text=str(text) if text else None)


_HANDLERS = {
    "Patient": _patient,
    "Encounter": _encounter,
    "Condition": _condition,
    "Procedure": _procedure,
    "Observation": _observation,
    "MedicationRequest": _medication_request,
    "MedicationAdministration": _medication_administration,
    "MedicationDispense": _medication_dispense,
    "MedicationStatement": _medication_statement,
    "DocumentReference": _document_reference,
    "DiagnosticReport": _diagnostic_report,
}
MAPPED_TYPES = tuple(_HANDLERS)
