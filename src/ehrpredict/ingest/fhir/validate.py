"""Validation of resources against the FHIR R4 models of ``fhir.resources`` (its R4B package, which
validates R4 content), imported lazily: the core package works without the ``[fhir]`` extra."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from ehrpredict.errors import ConfigError
from ehrpredict.ingest.fhir.errors import FhirInputError

Validator = Callable[[Mapping[str, Any]], object]


@cache
def _model_class(resource_type: str) -> Any:
    try:
        from fhir.resources.R4B import get_fhir_model_class
    except ImportError as exc:
        raise ConfigError("expected the fhir.resources package for FHIR input/output, got none installed "
                          "(pip install 'ehrpredict[fhir]')") from exc
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError):  # not a resource type it knows
        return None


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate_resource(resource: object) -> None:
    """Raise :class:`FhirInputError` (path relative to the resource) unless ``resource`` is a valid R4
    resource.

    >>> validate_resource({"resourceType": "Patient", "gender": "female"})
    >>> validate_resource({"resourceType": "Patient", "birthDate": "soon"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ehrpredict.ingest.fhir.errors.FhirInputError: expected a valid FHIR R4 value (...), got 'soon' (at birthDate)
    """
    from pydantic import ValidationError

    if not isinstance(resource, Mapping):
        raise FhirInputError("", "a JSON object (a FHIR resource)", type(resource).__name__)
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        raise FhirInputError("resourceType", "a resource type", repr(kind))
    model = _model_class(kind)
    if model is None:
        raise FhirInputError("resourceType", "a FHIR R4 resource type", repr(kind))
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        got = repr(first.get("input")) if first.get("type") != "missing" else "nothing"
        if len(got) > 80:
            got = got[:77] + "..."
        raise FhirInputError(_path(tuple(first["loc"])), f"a valid FHIR R4 value ({first['msg']})", got) from None
