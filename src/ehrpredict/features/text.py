"""Text representation: each label row's timeline serialized to text, embedded by a text encoder.

A scikit-learn transformer from a labels frame (subject_id, prediction_time) to a dense matrix of
embeddings. ``fit`` learns which lab and vital items the texts show from its rows (the train split);
serialization goes through the single cutoff (events at or before prediction time); embeddings are
cached on disk keyed by (text, encoder settings), so a rerun does not re-embed.

    >>> featurizer = TextFeaturizer().fit(train_labels, source="out/meds")  # doctest: +SKIP
    >>> X = featurizer.transform(held_out_labels, source="out/meds")  # numpy, (n, dim)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from ehrpredict.cachedir import CACHE_ENV as CACHE_ENV  # re-exported: it was defined here
from ehrpredict.cachedir import cache_root
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import EventSource
from ehrpredict.executor import Executor
from ehrpredict.text.cache import EmbeddingCache
from ehrpredict.text.encoders import EmbeddingStats, EncoderConfig, TextEncoder, embed_texts, make_encoder
from ehrpredict.text.serialize import SERIALIZER_VERSION, SerializedTimeline, SerializerConfig, TimelineSerializer

# The serializer's token budget when none is given: this many encoder windows (the rest is chunked
# and pooled). Long enough for recent labs, vitals, conditions and medications of a typical stay.
DEFAULT_CHUNKS = 2
EMBEDDING_PREFIX = "text_embedding_"  # column i of the embeddings is named text_embedding_{i}


def default_cache_dir() -> Path:
    """``$EHRPREDICT_CACHE/embeddings``, else ``~/.cache/ehrpredict/embeddings``."""
    return cache_root() / "embeddings"


@lru_cache(maxsize=4)
def shared_encoder(config: EncoderConfig) -> TextEncoder:
    """One loaded encoder per configuration per process (loading a model takes seconds)."""
    return make_encoder(config)


@dataclass(frozen=True)
class TextRunStats:
    """What embedding cost across all ``transform`` calls of one featurizer."""

    n_texts: int = 0
    unique_texts: int = 0
    cache_hits: int = 0
    embedded: int = 0
    chunks: int = 0
    embed_seconds: float = 0.0
    truncated_texts: int = 0

    def add(self, stats: EmbeddingStats, truncated: int) -> TextRunStats:
        return TextRunStats(
            self.n_texts + stats.n_texts, self.unique_texts + stats.unique_texts, self.cache_hits + stats.cache_hits,
            self.embedded + stats.embedded, self.chunks + stats.chunks,
            round(self.embed_seconds + stats.seconds, 3), self.truncated_texts + truncated,
        )


class TextFeaturizer(BaseEstimator):
    """Serialize (``serializer``) then embed (``encoder``); ``max_tokens=None`` sizes the serializer's
    budget to the encoder (``DEFAULT_CHUNKS`` × its window). ``cache_dir=None`` uses
    :func:`default_cache_dir`; ``cache=False`` turns the cache off."""

    def __init__(self, serializer: SerializerConfig | None = None,
                 encoder: EncoderConfig | None = None, max_tokens: int | None = None,
                 cache_dir: str | Path | None = None, cache: bool = True) -> None:
        self.serializer = serializer
        self.encoder = encoder
        self.max_tokens = max_tokens
        self.cache_dir = cache_dir
        self.cache = cache

    def fit(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
            executor: Executor | None = None) -> TextFeaturizer:
        """Learn from ``labels`` (the train split's rows) which lab and vital items the texts show
        (``selection_``, see :meth:`TimelineSerializer.fit`); no outcome is used and the encoder is
        frozen. Fit also loads the encoder and sizes the budget."""
        if self.max_tokens is not None and self.max_tokens < 16:
            raise ConfigError(f"expected max_tokens >= 16, got {self.max_tokens}")
        encoder = shared_encoder(self.encoder or EncoderConfig())
        budget = self.max_tokens or DEFAULT_CHUNKS * encoder.max_tokens
        self.serializer_config_ = replace(self.serializer or SerializerConfig(), max_tokens=budget)
        self.serializer_ = TimelineSerializer(self.serializer_config_, count_tokens=encoder.count_tokens).fit(
            labels, source=source, executor=executor)
        self.selection_ = self.serializer_.selection_
        self.dimension_ = encoder.dimension
        self.stats_ = TextRunStats()
        return self

    @property
    def encoder_(self) -> TextEncoder:
        return shared_encoder(self.encoder or EncoderConfig())

    def _store(self) -> EmbeddingCache | None:
        if not self.cache:
            return None
        return EmbeddingCache(Path(self.cache_dir) if self.cache_dir else default_cache_dir())

    def timelines(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  executor: Executor | None = None) -> list[SerializedTimeline]:
        """The serialized timelines of ``labels`` (what the encoder reads)."""
        return self.serializer_.serialize(labels, source=source, executor=executor)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of already-serialized texts (through the cache)."""
        X, stats = embed_texts(texts, self.encoder_, self._store())
        self.stats_ = self.stats_.add(stats, 0)
        return X

    def transform(self, labels: pl.DataFrame, *, source: EventSource | str | Path,
                  executor: Executor | None = None) -> np.ndarray:
        timelines = self.timelines(labels, source=source, executor=executor)
        X, stats = embed_texts([t.text for t in timelines], self.encoder_, self._store(), executor=executor)
        self.stats_ = self.stats_.add(stats, sum(1 for t in timelines if any(n for _, n in t.truncated)))
        return X

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """``text_embedding_0`` … ``text_embedding_{dimension - 1}``: the columns of :meth:`transform`."""
        return np.asarray([f"{EMBEDDING_PREFIX}{i}" for i in range(self.dimension_)])

    def describe(self) -> dict[str, Any]:
        """Settings and embedding costs for a report."""
        return {"serializer": asdict(self.serializer_config_), "serializer_version": SERIALIZER_VERSION,
                "selection": self.selection_.to_json(), "encoder": self.encoder_.identity,
                "encoder_label": self.encoder_.label,
                "dimension": self.dimension_, **asdict(self.stats_)}
