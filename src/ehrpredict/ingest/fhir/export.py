"""Events → FHIR R4 resources (``ehrpredict export fhir DATASET OUT`` and :func:`bundle_from_events`).

Every event becomes part of one resource, and every resource carries the event's exact ehrpredict code
as a coding in ``urn:ehrpredict:code`` (plus the standard system's coding where the prefix has one:
ICD-10-CM, ICD-9-CM, ICD-10-PCS, LOINC, SNOMED CT, RxNorm, NDC), so reading an export back gives the
same events:

- a Patient per subject (identifier ``urn:ehrpredict:id:subject_id``): ``MEDS_BIRTH`` → ``birthDate``
  with the exact time in the ``patient-birthTime`` extension, ``GENDER//F|M|O|U`` → ``gender``,
  ``MEDS_DEATH`` → ``deceasedDateTime``;
- an Encounter per hadm_id and per stay_id (ICU, ED, or a stay of unknown kind), whose start and end
  events (``HOSPITAL_ADMISSION``/``HOSPITAL_DISCHARGE``, ``ICU_*``, ``ED_ARRIVAL``/``ED_DISPOSITION``)
  are its ``period`` with the codes in ``type`` and ``hospitalization.dischargeDisposition``;
- conditions → Condition (``recordedDate``), procedures → Procedure (``performedDateTime``),
  medications → MedicationAdministration (numeric value as ``dosage.dose``), notes → DocumentReference
  (text as base64 ``attachment.data``), everything else → Observation (``valueQuantity`` for a number,
  ``valueString`` for text, ``note`` for text beside a number); the kinds are the dataset's CodeKinds.

What is not carried: the ``table`` provenance column (ingest writes ``fhir/<ResourceType>``); an empty
text value; a NaN number; hadm_id/stay_id pairs that differ from their stay's admission (a record is
linked to its stay, whose ``partOf`` gives the admission; ED records get no hadm_id back).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.dataset import dataset_code_kinds, shard_files
from ehrpredict.ingest.fhir import systems as Y
from ehrpredict.ingest.fhir.references import ED, HOSPITAL, ICU, STAY
from ehrpredict.ingest.fhir.times import format_time
from ehrpredict.ingest.fhir.validate import validate_resource
from ehrpredict.ingest.output import staged_output
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS, CodeKinds

SEP = S.CODE_SEPARATOR
GENDERS = {"F": "female", "M": "male", "O": "other", "U": "unknown"}
VISITS = {  # kind → (start code, end code, Encounter.class)
    HOSPITAL: ("HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE", "IMP"),
    ICU: ("ICU_ADMISSION", "ICU_DISCHARGE", "ACUTE"),
    ED: ("ED_ARRIVAL", "ED_DISPOSITION", "EMER"),
}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"
Event = dict[str, Any]


def _prefix(code: str) -> str:
    return code.split(SEP, 1)[0]


def _concept(code: str) -> dict[str, Any]:
    # A FHIR code has single inner spaces only ("Sodium Chloride 0.9%  Flush" is not one): the exact
    # code is the display, the code its whitespace-normalized form.
    codings = [{"system": Y.OWN_CODE_SYSTEM, "code": _fhir_code(code), "display": code}]
    prefix, _, rest = code.partition(SEP)
    standard = Y.EXPORT_STANDARD.get(prefix)
    if standard and rest.strip() and SEP not in rest:
        codings.append({"system": standard, "code": _fhir_code(rest)})
    return {"coding": codings}


def _fhir_code(code: str) -> str:
    return " ".join(code.split()) or "-"


def _number(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(str(np.float32(value)))  # the shortest decimal that reads back as the same float32


def _text(value: str | None) -> str | None:
    return value if value else None


class _Subject:
    """The resources of one subject's events."""

    def __init__(self, subject_id: int, events: list[Event], kinds: CodeKinds) -> None:
        self.subject_id = subject_id
        self.events = events
        self.kinds = kinds
        self.patient_ref = {"reference": f"Patient/subject-{subject_id}"}
        self.stay_kind = self._stay_kinds()

    def _stay_kinds(self) -> dict[int, str]:
        kinds: dict[int, str] = {}
        for event in self.events:
            stay, prefix = event[S.STAY_ID], _prefix(event[S.CODE])
            for kind in (ICU, ED):
                if stay is not None and prefix in VISITS[kind][:2]:
                    kinds.setdefault(stay, kind)
        for event in self.events:
            if event[S.STAY_ID] is not None:
                kinds.setdefault(event[S.STAY_ID], STAY)
        return kinds

    def encounter_id(self, kind: str, ident: int) -> str:
        return f"{'hadm' if kind == HOSPITAL else kind}-{ident}"

    def resources(self) -> Iterator[dict[str, Any]]:
        used: set[int] = set()
        yield self._patient(used)
        yield from self._encounters(used)
        for n, event in enumerate(self.events):
            if n not in used:
                yield self._resource(n, event)

    def _patient(self, used: set[int]) -> dict[str, Any]:
        patient: dict[str, Any] = {
            "resourceType": "Patient", "id": f"subject-{self.subject_id}",
            "identifier": [{"system": Y.OWN_ID_SYSTEM + "subject_id", "value": str(self.subject_id)}],
        }
        for n, event in enumerate(self.events):
            code, time = event[S.CODE], event[S.TIME]
            plain = event[S.NUMERIC_VALUE] is None and not event[S.TEXT_VALUE]
            if code == S.BIRTH_CODE and time is not None and plain and "birthDate" not in patient:
                patient["birthDate"] = time.strftime("%Y-%m-%d")
                patient["_birthDate"] = {"extension": [{"url": BIRTH_TIME, "valueDateTime": format_time(time)}]}
            elif code == S.DEATH_CODE and time is not None and plain and "deceasedDateTime" not in patient:
                patient["deceasedDateTime"] = format_time(time)
            elif (_prefix(code) == self.kinds.sex and time is None and plain and "gender" not in patient
                  and code.partition(SEP)[2] in GENDERS):
                patient["gender"] = GENDERS[code.partition(SEP)[2]]
            else:
                continue
            used.add(n)
        return patient

    def _encounters(self, used: set[int]) -> Iterator[dict[str, Any]]:
        hadms = sorted({e[S.HADM_ID] for e in self.events if e[S.HADM_ID] is not None})
        stays = sorted(self.stay_kind)
        for kind, ident in [*((HOSPITAL, h) for h in hadms), *((self.stay_kind[s], s) for s in stays)]:
            yield self._encounter(kind, ident, used)

    def _visit_event(self, kind: str, ident: int, position: int, used: set[int]) -> int | None:
        if kind not in VISITS:
            return None
        column = S.HADM_ID if kind == HOSPITAL else S.STAY_ID
        for n, event in enumerate(self.events):
            if (n not in used and event[column] == ident and _prefix(event[S.CODE]) == VISITS[kind][position]
                    and event[S.TIME] is not None and event[S.NUMERIC_VALUE] is None):
                return n
        return None

    def _encounter(self, kind: str, ident: int, used: set[int]) -> dict[str, Any]:
        system = {HOSPITAL: "hadm_id", ICU: "icu_stay_id", ED: "ed_stay_id", STAY: "stay_id"}[kind]
        encounter: dict[str, Any] = {
            "resourceType": "Encounter", "id": self.encounter_id(kind, ident), "status": "unknown",
            "identifier": [{"system": Y.OWN_ID_SYSTEM + system, "value": str(ident)}],
            "class": {"system": ACT_CODE, "code": VISITS[kind][2] if kind in VISITS else "ACUTE"},
            "subject": self.patient_ref,
        }
        start = self._visit_event(kind, ident, 0, used)
        if kind != HOSPITAL:  # the admission a stay is part of: its start event's, else its first record's
            linked = [self.events[start]] if start is not None else []
            linked += [e for e in self.events if e[S.STAY_ID] == ident and e[S.HADM_ID] is not None]
            hadm = next((e[S.HADM_ID] for e in linked if e[S.HADM_ID] is not None), None)
            if hadm is not None:
                encounter["partOf"] = {"reference": f"Encounter/hadm-{hadm}"}
        if start is None:
            return encounter
        used.add(start)
        first = self.events[start]
        encounter["type"] = [_concept(first[S.CODE])]
        encounter["period"] = {"start": format_time(first[S.TIME])}
        hospitalization: dict[str, Any] = {}
        if _text(first[S.TEXT_VALUE]):
            hospitalization["admitSource"] = {"text": first[S.TEXT_VALUE]}
        end = self._visit_event(kind, ident, 1, used)
        encounter["status"] = "in-progress"
        if end is not None and self.events[end][S.TIME] >= first[S.TIME]:
            used.add(end)
            last = self.events[end]
            encounter["status"] = "finished"
            encounter["period"]["end"] = format_time(last[S.TIME])
            disposition = _concept(last[S.CODE])
            if _text(last[S.TEXT_VALUE]):
                disposition["text"] = last[S.TEXT_VALUE]
            hospitalization["dischargeDisposition"] = disposition
        if hospitalization:
            encounter["hospitalization"] = hospitalization
        return encounter

    def _resource(self, n: int, event: Event) -> dict[str, Any]:
        code, time = event[S.CODE], event[S.TIME]
        numeric, text = _number(event[S.NUMERIC_VALUE]), _text(event[S.TEXT_VALUE])
        prefix = _prefix(code)
        base: dict[str, Any] = {"id": f"e-{self.subject_id}-{n}", "subject": self.patient_ref}
        stay = event[S.STAY_ID]
        encounter: dict[str, str] | None
        if stay is not None:
            encounter = {"reference": f"Encounter/{self.encounter_id(self.stay_kind[stay], stay)}"}
        elif event[S.HADM_ID] is not None:
            encounter = {"reference": f"Encounter/hadm-{event[S.HADM_ID]}"}
        else:
            encounter = None
        note = [{"text": text}] if text else None
        timed = time is not None
        if prefix in self.kinds.conditions and numeric is None and timed:
            return _clean({**base, "resourceType": "Condition", "code": _concept(code), "encounter": encounter,
                           "recordedDate": format_time(time), "note": note})
        if prefix in self.kinds.procedures and numeric is None and timed:
            return _clean({**base, "resourceType": "Procedure", "status": "completed", "code": _concept(code),
                           "encounter": encounter, "performedDateTime": format_time(time), "note": note})
        if prefix in self.kinds.medications and timed:
            dosage = {"dose": {"value": numeric}} if numeric is not None else None
            return _clean({**base, "resourceType": "MedicationAdministration", "status": "completed",
                           "medicationCodeableConcept": _concept(code), "context": encounter,
                           "effectiveDateTime": format_time(time), "dosage": dosage, "note": note})
        if prefix in self.kinds.notes and numeric is None and timed:
            data = base64.b64encode(text.encode()).decode() if text else None
            return _clean({**base, "resourceType": "DocumentReference", "status": "current", "type": _concept(code),
                           "date": format_time(time), "context": {"encounter": [encounter]} if encounter else None,
                           "content": [{"attachment": _clean({"contentType": "text/plain", "data": data})}]})
        value: dict[str, Any] = {}
        if numeric is not None:
            value["valueQuantity"] = {"value": numeric}
            value["note"] = note
        elif text:
            value["valueString"] = text
        return _clean({**base, "resourceType": "Observation", "status": "final", "code": _concept(code),
                       "encounter": encounter, "effectiveDateTime": format_time(time) if timed else None, **value})


def _clean(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v is not None}


def resources_from_events(events: pl.DataFrame, kinds: CodeKinds = DEFAULT_CODE_KINDS) -> Iterator[dict[str, Any]]:
    """FHIR R4 resources (dicts) for events in ``EVENT_SCHEMA``, subject by subject (see the module
    docstring for what each event becomes)."""
    columns = [c for c in S.EVENT_COLUMNS if c in events.columns]
    frame = events.select(columns).with_columns(
        [pl.lit(None, dtype).alias(c) for c, dtype in S.EVENT_SCHEMA.items() if c not in columns]
    )
    frame = frame.sort([S.SUBJECT_ID, S.TIME], nulls_last=False, maintain_order=True)
    for (subject_id,), part in frame.partition_by(S.SUBJECT_ID, as_dict=True, maintain_order=True).items():
        yield from _Subject(int(subject_id), part.to_dicts(), kinds).resources()


def bundle_from_events(events: pl.DataFrame) -> dict[str, Any]:
    """A FHIR R4 collection Bundle of one or more subjects' events (the inverse of
    :func:`~ehrpredict.ingest.fhir.events_from_bundle` on the codes it maps)."""
    entries = [{"fullUrl": f"urn:ehrpredict:{r['resourceType']}/{r['id']}", "resource": r}
               for r in resources_from_events(events)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def export_fhir(dataset: str | Path, out_dir: str | Path, *, overwrite: bool = False, validate: bool = True,
                subjects: Collection[int] | None = None) -> dict[str, int]:
    """Write a MEDS dataset as FHIR R4 NDJSON, one file per resource type (``Patient.ndjson``, ...), one
    shard at a time (a shard holds whole subjects); only ``subjects`` when given. Each resource is
    validated against the R4B models unless ``validate`` is False. Returns the resources written per type."""
    dataset = Path(dataset)
    kinds = dataset_code_kinds(dataset)
    counts: dict[str, int] = {}
    with staged_output(Path(out_dir), overwrite=overwrite) as staging:
        handles: dict[str, Any] = {}
        try:
            for shard in shard_files(dataset):
                events = pl.read_parquet(shard)
                if subjects is not None:
                    events = events.filter(pl.col(S.SUBJECT_ID).is_in(list(subjects)))
                for resource in resources_from_events(events, kinds):
                    if validate:
                        validate_resource(resource)
                    kind = resource["resourceType"]
                    if kind not in handles:
                        handles[kind] = open(staging / f"{kind}.ndjson", "w", encoding="utf-8")  # noqa: SIM115
                    handles[kind].write(json.dumps(resource, separators=(",", ":"), default=_default) + "\n")
                    counts[kind] = counts.get(kind, 0) + 1
        finally:
            for handle in handles.values():
                handle.close()
    return dict(sorted(counts.items()))


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return format_time(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
