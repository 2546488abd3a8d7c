"""Typed errors. Every user-facing failure is one of these, with a message of the form
``expected X, got Y (file, row/column)`` so the user can fix the input without reading code."""

from __future__ import annotations


class EhrPredictError(Exception):
    """Base class of every error ehrpredict raises on purpose."""


class DataError(EhrPredictError):
    """Input data is missing, unreadable or malformed."""


class SchemaError(DataError):
    """A file lacks a column, or a column has the wrong type."""


class ConfigError(EhrPredictError):
    """An argument or a configuration value is invalid."""


class LeakageError(EhrPredictError):
    """A feature would use information from after its prediction time."""


class EncoderError(EhrPredictError):
    """A text encoder failed: its endpoint is unreachable, timed out or answered with an error."""
