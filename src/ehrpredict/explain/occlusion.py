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
from ehrpredict.features.counts import CountsFeaturizer
from ehrpredict.features.text import TextFeaturizer
from ehrpredict.models.heads import make_head
from ehrpredict.models.preprocess import log1p
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task
from ehrpredict.text.serialize import SerializedTimeline

BY = ("section", "line")


@dataclass
class FittedTextModel:
    """A binary head on ``text`` or ``counts+text`` features, with what it needs to re-featurize."""

    task: str
    representation: str
    text: TextFeaturizer
    head: Any
    labels: pl.DataFrame  # the task's labels with their split, to find a subject's label rows
    counts: CountsFeaturizer | None = None

    def predict_texts(self, label_row: pl.DataFrame, texts: list[str]) -> np.ndarray:
        """Risk for one label row, once per text (the row's own features besides the text stay fixed)."""
        X = self.text.embed(texts)
        if self.counts is not None:
            counts = log1p(self.counts.transform(label_row))
            X = sp.hstack([sp.vstack([counts] * len(texts)), sp.csr_matrix(X)]).tocsr()
        return np.asarray(self.head.predict_proba(X)[:, 1])


def fit_text_model(dataset: str | Path, task: str, representation: str = "text", head: str = "lr",
                   text: TextFeaturizer | None = None, seed: int = 0, min_count: int = 5) -> FittedTextModel:
    """Label ``task``, featurize its train and tuning splits and fit ``head`` (tuned on tuning)."""
    if representation not in ("text", "counts+text"):
        raise ConfigError(f"expected representation text or counts+text for occlusion, got {representation!r}")
    spec = load_task(task)
    if spec.label_type != "binary":
        raise ConfigError(f"expected a binary task for occlusion, got {task} ({spec.label_type})")
    labels = label_many(dataset, [spec])[spec.name].labels
    splits = pl.read_parquet(Path(dataset) / S.SPLITS_FILE)
    labels = labels.join(splits, on=S.SUBJECT_ID, how="inner")
    train, tune = (labels.filter(pl.col(S.SPLIT) == s) for s in (S.TRAIN, S.TUNING))
    featurizer = (text or TextFeaturizer(dataset)).fit(train)
    X = {"train": featurizer.transform(train), "tune": featurizer.transform(tune)}
    counts = None
    if representation == "counts+text":
        # the counts block sees billing codes with the same delay as the text beside it
        counts = CountsFeaturizer(dataset, min_count=min_count,
                                  coding_delay=featurizer.serializer_config_.coding_delay).fit(train)
        X = {k: sp.hstack([log1p(counts.transform(part)), sp.csr_matrix(X[k])]).tocsr()
             for k, part in (("train", train), ("tune", tune))}
    y = {k: part.get_column(S.BOOLEAN_VALUE).to_numpy().astype(int) for k, part in (("train", train), ("tune", tune))}
    model = make_head(head, seed, log1p=False).fit(X["train"], y["train"], X_val=X["tune"], y_val=y["tune"])
    return FittedTextModel(spec.name, representation, featurizer, model, labels, counts)


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
    timeline = model.text.timelines(row)[0]
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
