"""FHIR resources and Bundles in memory → events (what the prediction service calls per request)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.ingest.fhir.errors import FhirInputError
from ehrpredict.ingest.fhir.mapper import Row, map_resource
from ehrpredict.ingest.fhir.references import Index
from ehrpredict.ingest.fhir.validate import validate_resource

BUNDLE_TYPES = ("collection", "searchset", "batch", "transaction")


def events_frame(rows: list[Row]) -> pl.DataFrame:
    """Rows → an ``EVENT_SCHEMA`` frame sorted by subject_id, time (static events first), stable."""
    frame = pl.DataFrame(rows, schema=S.EVENT_SCHEMA, orient="row")
    return frame.sort([S.SUBJECT_ID, S.TIME], nulls_last=False, maintain_order=True)


def _events(resources: list[tuple[str, Mapping[str, Any]]]) -> pl.DataFrame:
    for path, resource in resources:
        try:
            validate_resource(resource)
        except FhirInputError as error:
            raise error.under(path) from None
    index = Index()
    for _, resource in resources:
        index.add(resource)
    rows: list[Row] = []
    for path, resource in resources:
        try:
            rows.extend(map_resource(resource, index).rows)
        except FhirInputError as error:
            raise error.under(path) from None
    return events_frame(rows)


def events_from_resources(resources: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Events (``EVENT_SCHEMA``, sorted by subject_id, time) of a plain list of FHIR R4 resources, e.g. a
    CDS Hooks prefetch. Every resource is validated; the Patients referred to must be among them.
    Raises :class:`FhirInputError` whose ``path`` starts with the resource's position (``[3].subject``).

    >>> events_from_resources([{"resourceType": "Patient", "id": "p", "gender": "female",
    ...     "identifier": [{"system": "urn:ehrpredict:id:subject_id", "value": "7"}]}]).row(0)[:3]
    (7, None, 'GENDER//F')
    """
    listed = list(resources)
    return _events([(f"[{i}]", r) for i, r in enumerate(listed)])


def events_from_bundle(bundle: Mapping[str, Any]) -> pl.DataFrame:
    """Events (``EVENT_SCHEMA``, sorted by subject_id, time) of a FHIR R4 Bundle of type collection,
    searchset, batch or transaction, holding one or more patients. Raises :class:`FhirInputError` whose
    ``path`` names the field, e.g. ``entry[3].resource.valueQuantity.value``."""
    if not isinstance(bundle, Mapping):
        raise FhirInputError("", "a Bundle (a JSON object)", type(bundle).__name__)
    if bundle.get("resourceType") != "Bundle":
        raise FhirInputError("resourceType", "'Bundle'", repr(bundle.get("resourceType")))
    if bundle.get("type") not in BUNDLE_TYPES:
        raise FhirInputError("type", f"one of {', '.join(BUNDLE_TYPES)}", repr(bundle.get("type")))
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirInputError("entry", "a list of entries", type(entries).__name__)
    resources = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
            raise FhirInputError(f"entry[{i}].resource", "a resource", repr(entry)[:80])
        resource = entry["resource"]
        full_url = entry.get("fullUrl")
        if "id" not in resource and isinstance(full_url, str) and full_url.startswith("urn:uuid:"):
            # transaction bundles refer to new resources by their fullUrl
            resource = {**resource, "id": full_url[len("urn:uuid:"):]}
        resources.append((f"entry[{i}].resource", resource))
    return _events(resources)
