"""Input checks shared by the evaluation functions.

Every check raises :class:`MetricInputError`, which is both a :class:`~ehrpredict.errors.DataError`
(the project's typed hierarchy) and a :class:`ValueError` (what numeric callers expect), with a
message of the form ``expected X, got Y``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ehrpredict.errors import DataError


class MetricInputError(DataError, ValueError):
    """Labels, probabilities, groups or thresholds handed to a metric are malformed."""


def as_labels(y: ArrayLike, name: str = "y") -> NDArray[np.float64]:
    """``y`` as a float array of 0.0/1.0; any other value is an error."""
    arr = np.asarray(y)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MetricInputError(f"expected numeric 0/1 labels in {name}, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise MetricInputError(
            f"expected only 0/1 labels in {name}, got {float(arr.ravel()[first])!r} at flat index {first} "
            f"({int(bad.sum())} bad values)"
        )
    return arr


def as_probabilities(p: ArrayLike, name: str = "p") -> NDArray[np.float64]:
    """``p`` as a float array inside [0, 1]; NaN, inf or out-of-range values are an error."""
    arr = np.asarray(p)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MetricInputError(f"expected numeric probabilities in {name}, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~((arr >= 0.0) & (arr <= 1.0))  # also catches NaN
    if bad.any():
        first = int(np.flatnonzero(bad.ravel())[0])
        raise MetricInputError(
            f"expected probabilities in [0, 1] in {name}, got {float(arr.ravel()[first])!r} at flat index {first} "
            f"({int(bad.sum())} bad values)"
        )
    return arr


def check_binary(y: ArrayLike, p: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate a binary (labels, probabilities) pair: 1-D, same non-zero length, 0/1 and [0, 1]."""
    y_arr, p_arr = as_labels(y), as_probabilities(p)
    if y_arr.ndim != 1 or p_arr.ndim != 1:
        raise MetricInputError(f"expected 1-D y and p, got shapes {y_arr.shape} and {p_arr.shape}")
    if y_arr.shape != p_arr.shape:
        raise MetricInputError(f"expected y and p of equal length, got {y_arr.size} and {p_arr.size}")
    if y_arr.size == 0:
        raise MetricInputError("expected at least one row, got empty y and p")
    return y_arr, p_arr


def check_groups(groups: ArrayLike | Sequence[Any], n: int) -> tuple[NDArray[np.intp], int]:
    """Patient ids → (row → patient index, number of patients). Ids may be ints or strings."""
    arr = np.asarray(groups)
    if arr.ndim != 1 or arr.size != n:
        raise MetricInputError(f"expected one group id per row ({n}), got shape {arr.shape}")
    _, inverse = np.unique(arr, return_inverse=True)
    inverse = inverse.astype(np.intp).ravel()
    return inverse, int(inverse.max()) + 1


def check_threshold(t: float, name: str = "threshold") -> float:
    value = float(t)
    if not 0.0 <= value <= 1.0:
        raise MetricInputError(f"expected {name} in [0, 1], got {t!r}")
    return value


def check_n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise MetricInputError(f"expected n_boot to be a positive integer, got {n_boot!r}")
    return int(n_boot)
