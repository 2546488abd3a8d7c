"""The representations, registered in one place: a name → how to build its featurizer.

``counts`` (windowed code counts and value aggregates), ``text`` (the serialized timeline embedded by a
text encoder) and ``counts+text`` (both, side by side). A new representation (the sequence model) is a
new module and one entry in :data:`REPRESENTATIONS`; nothing that trains or evaluates changes.

    >>> sorted(REPRESENTATIONS)
    ['counts', 'counts+text', 'text']
    >>> get_representation("counts").raw_counts
    True
    >>> get_representation("tabular")
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: expected a representation in ['counts', 'text', 'counts+text'], got 'tabular'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ehrpredict.errors import ConfigError
from ehrpredict.events.cutoff import DEFAULT_CODING_DELAY
from ehrpredict.features.base import Featurizer
from ehrpredict.features.combine import Concatenated
from ehrpredict.features.counts import DEFAULT_STATIC_FEATURES, static_feature_columns

if TYPE_CHECKING:
    from ehrpredict.text.encoders import EncoderConfig

TEXT_FORMATS = ("markdown", "recent_codes")


def _default_encoder() -> EncoderConfig:
    from ehrpredict.text.encoders import EncoderConfig

    return EncoderConfig()


@dataclass(frozen=True)
class RepresentationSettings:
    """Every knob a representation reads (each reads its own). ``coding_delay``: billing codes are usable
    this long after their time (see :mod:`ehrpredict.events.cutoff`); ``static_features``: the counts'
    columns after the code columns (``"age"``, ``"visit_hours"``; ``()`` for none); ``text_max_tokens=None``
    sizes the text to the encoder; ``cache_dir=None`` is the default embedding cache."""

    min_count: int = 5
    coding_delay: str = DEFAULT_CODING_DELAY
    static_features: tuple[str, ...] = DEFAULT_STATIC_FEATURES
    text_format: str = "markdown"
    text_max_tokens: int | None = None
    include_notes: bool = True
    encoder: EncoderConfig = field(default_factory=_default_encoder)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.text_format not in TEXT_FORMATS:
            raise ConfigError(f"expected text_format in {list(TEXT_FORMATS)}, got {self.text_format!r}")
        if self.min_count < 1:
            raise ConfigError(f"expected min_count >= 1, got {self.min_count}")
        static_feature_columns(self.static_features)


def _counts(settings: RepresentationSettings) -> Featurizer:
    from ehrpredict.features.counts import CountsFeaturizer

    return CountsFeaturizer(min_count=settings.min_count, coding_delay=settings.coding_delay,
                            static_features=settings.static_features)


def _text(settings: RepresentationSettings) -> Featurizer:
    from ehrpredict.features.text import TextFeaturizer
    from ehrpredict.text.serialize import SerializerConfig

    serializer = SerializerConfig(format=settings.text_format, include_notes=settings.include_notes,
                                  coding_delay=settings.coding_delay)
    return TextFeaturizer(serializer=serializer, encoder=settings.encoder, max_tokens=settings.text_max_tokens,
                          cache_dir=settings.cache_dir)


@dataclass(frozen=True)
class Representation:
    """``build`` makes an unfitted featurizer; a combination lists its ``parts`` (registered names) and
    builds none of its own. ``raw_counts``: the features are raw counts, which linear heads log-transform."""

    name: str
    description: str
    raw_counts: bool
    build: Callable[[RepresentationSettings], Featurizer] | None = None
    parts: tuple[str, ...] = ()

    def featurizer(self, settings: RepresentationSettings) -> Featurizer:
        """An unfitted featurizer (a combination's parts fitted together: see :class:`Concatenated`)."""
        if self.build is not None:
            return self.build(settings)
        return self.combine(lambda part: part.featurizer(settings))

    def combine(self, featurizer_of: Callable[[Representation], Featurizer]) -> Concatenated:
        """A combination's :class:`Concatenated` of its parts' featurizers (``featurizer_of(part)``:
        new ones, or ones fitted before), raw-count parts flagged for log1p."""
        parts = [get_representation(p) for p in self.parts]
        return Concatenated([(p.name, featurizer_of(p)) for p in parts], [p.raw_counts for p in parts])


REPRESENTATIONS: dict[str, Representation] = {
    r.name: r for r in (
        Representation("counts", "windowed code counts and value aggregates", raw_counts=True, build=_counts),
        Representation("text", "the serialized timeline embedded by a text encoder", raw_counts=False, build=_text),
        Representation("counts+text", "counts (log1p) and text embeddings side by side", raw_counts=False,
                       parts=("counts", "text")),
    )
}


def get_representation(name: str) -> Representation:
    if name not in REPRESENTATIONS:
        raise ConfigError(f"expected a representation in {list(REPRESENTATIONS)}, got {name!r}")
    return REPRESENTATIONS[name]
