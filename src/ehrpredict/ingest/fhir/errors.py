"""The error FHIR input raises: what was expected, what was found, and where (the field path)."""

from __future__ import annotations

from ehrpredict.errors import DataError


class FhirInputError(DataError):
    """A FHIR resource or Bundle that cannot be read, with ``path`` the field at fault.

    >>> error = FhirInputError("entry[3].resource.valueQuantity.value", "a number", "'abc'")
    >>> str(error)
    "expected a number, got 'abc' (at entry[3].resource.valueQuantity.value)"
    >>> error.path
    'entry[3].resource.valueQuantity.value'
    """

    def __init__(self, path: str, expected: str, got: str) -> None:
        self.path = path
        self.expected = expected
        self.got = got
        super().__init__(f"expected {expected}, got {got} (at {path})")

    def under(self, prefix: str) -> FhirInputError:
        """The same error with its path placed under ``prefix`` (``entry[3].resource``)."""
        path = f"{prefix}.{self.path}" if self.path else prefix
        return FhirInputError(path, self.expected, self.got)
