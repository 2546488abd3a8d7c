"""What every representation's featurizer is: fitted on label rows of a source, then applied to label
rows of any source.

    featurizer.fit(train_labels, source=train_source)          # learns state (a vocabulary, a selection)
    X = featurizer.transform(labels, source=other_source)       # one row per label row, in order

A fitted featurizer keeps no path and no events: everything it reads comes from the ``source`` of
the call (:class:`~ehrpredict.events.source.EventSource`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import polars as pl

from ehrpredict.events.source import EventSource
from ehrpredict.executor import Executor


class Featurizer(Protocol):
    def fit(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
            executor: Executor | None = None) -> Featurizer: ...

    def transform(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  executor: Executor | None = None) -> Any: ...

    def describe(self) -> dict[str, Any]: ...
