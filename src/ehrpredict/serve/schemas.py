"""The service's request and response bodies (pydantic models, so OpenAPI documents them exactly).

Times: a time with a UTC offset keeps its wall-clock time and drops the offset, the same policy as
FHIR ingestion (MIMIC-IV on FHIR writes the CSV's local clock with an offset): the model was trained on
local clock times, and converting to UTC would move every event by the offset.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ehrpredict import schema as S

MAX_EVENTS = 100_000
MAX_BATCH = 100
MAX_CODE = 512


def wall_clock(value: datetime) -> datetime:
    return value.replace(tzinfo=None)


class Event(BaseModel):
    """One MEDS event row. ``time`` null: a static event (e.g. sex)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    time: datetime | None = None
    code: str = Field(min_length=1, max_length=MAX_CODE)
    numeric_value: float | None = None
    text_value: str | None = None
    hadm_id: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stay_id: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)

    _clock = field_validator("time")(lambda v: None if v is None else wall_clock(v))


class PatientRequest(BaseModel):
    """One patient: MEDS rows in ``events`` or a FHIR R4 Bundle in ``fhir``, and the moment to predict at.
    Every event must be at or before ``prediction_time``."""

    model_config = ConfigDict(extra="forbid")

    prediction_time: datetime
    subject_id: int | None = Field(default=None, ge=0, le=2**63 - 1,
                                   description="kept in the response only; not needed for scoring")
    events: list[Event] | None = Field(default=None, max_length=MAX_EVENTS)
    fhir: dict[str, Any] | None = Field(default=None, description="a FHIR R4 Bundle of one patient")
    explain: int = Field(default=5, ge=0, le=20, description="top factors up and down (0: none)")

    _clock = field_validator(S.PREDICTION_TIME)(wall_clock)

    @model_validator(mode="after")
    def _one_source(self) -> PatientRequest:
        if (self.events is None) == (self.fhir is None):
            raise ValueError("expected exactly one of events (MEDS rows) or fhir (a FHIR R4 Bundle)")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patients: list[PatientRequest] = Field(min_length=1, max_length=MAX_BATCH)


class FactorOut(BaseModel):
    direction: str
    rank: int
    feature: str
    factor: str
    contribution: float
    value: float


class UnknownCodesOut(BaseModel):
    events: int = Field(description="input events whose code the model never saw in training (ignored)")
    distinct: int
    top: list[tuple[str, int]]


class ModelRef(BaseModel):
    name: str
    version: str
    task: str
    label_type: str


class PredictionOut(BaseModel):
    model: ModelRef
    subject_id: int | None
    prediction_time: datetime
    probability: float | None = Field(default=None, description="calibrated (binary tasks)")
    uncalibrated_probability: float | None = None
    threshold: float | None = None
    decision: bool | None = Field(default=None, description="probability >= threshold")
    prediction: float | None = Field(default=None, description="regression tasks")
    categories: list[str] = Field(default_factory=list, description="multilabel: categories at their thresholds")
    category_probabilities: dict[str, float] = Field(default_factory=dict)
    factors: list[FactorOut] = Field(default_factory=list)
    unknown_codes: UnknownCodesOut
    events_used: int


class BatchOut(BaseModel):
    predictions: list[PredictionOut]


class ModelSummary(BaseModel):
    name: str
    version: str
    task: str
    label_type: str
    representation: str
    head: str
    created: str | None
    metrics: dict[str, Any]


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    manifest: dict[str, Any]
    model_card: str


class FieldError(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    kind: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class ErrorOut(BaseModel):
    error: ErrorBody


class Status(BaseModel):
    status: str
    models: int | None = None
