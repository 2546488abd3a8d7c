"""The executor seam: per-shard work of featurizing and serializing goes through the executor it is
given, one call per shard, with the same result as the default local one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.events.source import ParquetEvents
from ehrpredict.executor import LocalExecutor
from ehrpredict.features.counts import CountsFeaturizer
from ehrpredict.text.serialize import SerializerConfig, TimelineSerializer

PRED = datetime(2150, 3, 10, 12)


class Recording:
    """Runs items in reverse order (as a cluster might finish them) and records them; returns results
    in the items' order, as the Executor contract says."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        items = list(items)
        self.items += items
        results = {i: fn(item) for i, item in reversed(list(enumerate(items)))}
        return iter([results[i] for i in range(len(items))])


def _dataset(root: Path) -> Path:
    for shard, subjects in enumerate(([1, 2], [3])):
        rows = [(s, datetime(2150, 3, d, 8), "LAB//50912//mg/dL", float(s + d)) for s in subjects for d in (1, 5, 9)]
        frame = pl.DataFrame(rows, schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String,
                                           S.NUMERIC_VALUE: pl.Float32}, orient="row")
        (root / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(frame.to_arrow(), root / "data" / f"{shard}.parquet")
    return root


def test_per_shard_work_goes_through_the_executor(tmp_path: Path) -> None:
    source = ParquetEvents(_dataset(tmp_path))
    labels = pl.DataFrame({S.SUBJECT_ID: [3, 1, 2], S.PREDICTION_TIME: [PRED] * 3})
    recording = Recording()
    counts = CountsFeaturizer(windows=("all",), min_count=1).fit(labels, source=source, executor=recording)
    X = counts.transform(labels, source=source, executor=recording)
    assert recording.items == list(source.shards()) * 2  # fit and transform: one call per shard each
    local = CountsFeaturizer(windows=("all",), min_count=1).fit(labels, source=source, executor=LocalExecutor())
    np.testing.assert_array_equal(X.toarray(), local.transform(labels, source=source).toarray())
    assert X[0, 0] == 3.0  # subject 3's three creatinines, in the labels' order

    serializer = TimelineSerializer(SerializerConfig(max_tokens=4096)).fit(labels, source=source)
    recording = Recording()
    texts = [t.text for t in serializer.serialize(labels, source=source, executor=recording)]
    assert recording.items == list(source.shards())
    assert texts == serializer.texts(labels, source=source)
