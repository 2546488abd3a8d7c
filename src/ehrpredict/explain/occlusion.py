"""Occlusion for the text representation: how one patient's predicted risk moves when a section (or a
line) of their serialized timeline is removed.

The model is re-run on the text with the part left out; everything else (counts features for
``counts+text``) stays as it was. A positive ``delta`` means the part pushed the risk up.

    >>> model = fit_text_model("out/meds", "long_los_7d")            # doctest: +SKIP
    >>> result = explain_occlusion(model, subject_id=10000032)       # doctest: +SKIP
    >>> print(result.summary())                                      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError, DataError
from ehrpredict.events.source import EventSource, ParquetEvents
from ehrpredict.features.combine import Concatenated, concatenate
from ehrpredict.features.registry import RepresentationSettings
from ehrpredict.features.text import TextFeaturizer
from ehrpredict.pipeline import FittedPipeline, TaskData, fit_pipeline
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task
from ehrpredict.text.serialize import SerializedTimeline

BY = ("section", "line")


@dataclass
class FittedTextModel:
    """A fitted ``text`` or ``counts+text`` pipeline for a binary task, with the source and label rows
    of the subjects it can explain."""

    pipeline: FittedPipeline
    source: EventSource
    labels: pl.DataFrame  # the task's labels, to find a subject's label rows

    @property
    def task(self) -> str:
        return self.pipeline.task

    @property
    def text(self) -> TextFeaturizer:
        text = self._parts()["text"]
        if not isinstance(text, TextFeaturizer):
            raise ConfigError(f"expected a text featurizer in the {self.pipeline.representation} pipeline, got "
                              f"{type(text).__name__}")
        return text

    def _parts(self) -> dict[str, Any]:
        featurizer = self.pipeline.featurizer
        return dict(featurizer.parts) if isinstance(featurizer, Concatenated) else {"text": featurizer}

    def predict_texts(self, label_row: pl.DataFrame, texts: list[str]) -> np.ndarray:
        """Risk for one label row, once per text (the row's own features besides the text stay fixed)."""
        X: Any = self.text.embed(texts)
        featurizer = self.pipeline.featurizer
        if isinstance(featurizer, Concatenated):
            blocks = [sp.vstack([part.transform(label_row, source=self.source)] * len(texts)) if name != "text"
                      else X for name, part in featurizer.parts]
            X = concatenate(blocks, featurizer.log_transform)
        return self.pipeline.predict_proba_features(X)


def fit_text_model(dataset: str | Path, task: str, representation: str = "text", head: str = "lr",
                   settings: RepresentationSettings | None = None, seed: int = 0) -> FittedTextModel:
    """Label ``task`` and fit ``representation`` × ``head`` through :func:`fit_pipeline` (the featurizer
    on the train split, the head tuned on tuning)."""
    if representation not in ("text", "counts+text"):
        raise ConfigError(f"expected representation text or counts+text for occlusion, got {representation!r}")
    spec = load_task(task)
    if spec.label_type != "binary":
        raise ConfigError(f"expected a binary task for occlusion, got {task} ({spec.label_type})")
    source = ParquetEvents(Path(dataset))
    labels = label_many(dataset, [spec])[spec.name].labels
    data = TaskData.from_splits(source, labels, settings=settings)
    pipeline = fit_pipeline(spec, representation, head, data, seed=seed)
    return FittedTextModel(pipeline, source, labels.join(source.splits(), on=S.SUBJECT_ID, how="inner"))


@dataclass(frozen=True)
class OcclusionItem:
    section: str
    line: str | None  # None when a whole section was left out
    risk_without: float
    delta: float  # risk − risk_without: how much this part raised the risk


@dataclass(frozen=True)
class Occlusion:
    task: str
    subject_id: int
    prediction_time: datetime
    risk: float
    items: tuple[OcclusionItem, ...]  # largest |delta| first
    timeline: SerializedTimeline

    def summary(self, top: int = 15) -> str:
        lines = [f"{self.task}: subject {self.subject_id} at {self.prediction_time}: predicted risk {self.risk:.3f}",
                 f"{'change if removed':>18}  part"]
        for item in self.items[:top]:
            part = item.section if item.line is None else f"{item.section}: {item.line}"
            lines.append(f"{-item.delta:>+18.3f}  {part[:100]}")
        if len(self.items) > top:
            lines.append(f"({len(self.items) - top} smaller effects not shown)")
        return "\n".join(lines)


def explain_occlusion(model: FittedTextModel, subject_id: int, prediction_time: datetime | None = None,
                      by: str = "section") -> Occlusion:
    """Leave out each section (``by="section"``) or each line (``by="line"``) and re-predict."""
    if by not in BY:
        raise ConfigError(f"expected by in {list(BY)}, got {by!r}")
    rows = model.labels.filter(pl.col(S.SUBJECT_ID) == subject_id)
    if prediction_time is not None:
        rows = rows.filter(pl.col(S.PREDICTION_TIME) == prediction_time)
    if rows.height == 0:
        raise DataError(f"expected a label row of {model.task} for subject {subject_id}"
                        f"{'' if prediction_time is None else f' at {prediction_time}'}, got none "
                        f"(the task has {model.labels.height} label rows)")
    row = rows.head(1).select(S.SUBJECT_ID, S.PREDICTION_TIME)
    timeline = model.text.timelines(row, source=model.source)[0]
    parts: list[tuple[str, str | None, str]] = []
    for section in timeline.sections:
        if by == "section":
            parts.append((section.title, None, timeline.render(omit_section=section.title)))
        else:
            parts += [(section.title, line, timeline.render(omit_line=(section.title, i)))
                      for i, line in enumerate(section.lines)]
    risks = model.predict_texts(row, [timeline.text] + [text for _, _, text in parts])
    items = [OcclusionItem(section, line, float(r), float(risks[0] - r))
             for (section, line, _), r in zip(parts, risks[1:], strict=True)]
    items.sort(key=lambda item: (-abs(item.delta), item.section, item.line or ""))
    return Occlusion(model.task, subject_id, row.item(0, S.PREDICTION_TIME), float(risks[0]), tuple(items), timeline)
