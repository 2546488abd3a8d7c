"""Metric dataclasses as JSON-safe data for reports."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np


def as_json(metrics: Any) -> dict[str, Any]:
    """A metrics dataclass as JSON-safe data (NaN, e.g. an undefined AUROC, becomes null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and np.isnan(value):
            return None
        return value

    return dict(clean(asdict(metrics)))
