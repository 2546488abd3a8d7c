"""FHIR R4 in and out: resources, Bundles and bulk-export NDJSON ↔ events and MEDS datasets.

    >>> from ehrpredict.ingest.fhir import events_from_bundle, bundle_from_events  # doctest: +SKIP
    >>> events = events_from_bundle(bundle)  # doctest: +SKIP
    >>> events_from_bundle(bundle_from_events(events)).equals(events)  # doctest: +SKIP
    True

The code-system table is in :mod:`.systems`, the time policy in :mod:`.times`, the subject-id policy
in :mod:`.references`, what each resource becomes in :mod:`.mapper`. ``fhir.resources`` (the
``[fhir]`` extra) is imported only when a resource is validated.
"""

from __future__ import annotations

from ehrpredict.ingest.fhir.errors import FhirInputError
from ehrpredict.ingest.fhir.export import bundle_from_events, export_fhir, resources_from_events
from ehrpredict.ingest.fhir.frames import events_from_bundle, events_from_resources
from ehrpredict.ingest.fhir.ingest import ingest_fhir

__all__ = [
    "FhirInputError",
    "bundle_from_events",
    "events_from_bundle",
    "events_from_resources",
    "export_fhir",
    "ingest_fhir",
    "resources_from_events",
]
