"""What a benchmark run does: one frozen config, validated when made."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ehrpredict.errors import ConfigError
from ehrpredict.events.cutoff import DEFAULT_CODING_DELAY
from ehrpredict.features.registry import REPRESENTATIONS, TEXT_FORMATS, RepresentationSettings
from ehrpredict.models.heads import HEADS
from ehrpredict.tasks.spec import parse_duration


@dataclass(frozen=True)
class BenchmarkConfig:
    dataset: Path
    out: Path
    tasks: tuple[str, ...] = ("all",)
    representations: tuple[str, ...] = ("counts",)
    heads: tuple[str, ...] = ("lgbm", "lr")
    n_boot: int = 1000
    seed: int = 0
    min_count: int = 5
    few_shot: bool = False
    shuffle_permutations: int = 5  # label-shuffle control replicates
    # Billing codes are usable by features this long after their time (discharge); "0" is the
    # optimistic setting where a stay's codes are known the moment it ends. See events/cutoff.py.
    coding_delay: str = DEFAULT_CODING_DELAY
    # text representation
    text_format: str = "markdown"
    text_max_tokens: int | None = None  # None: sized to the encoder
    include_notes: bool = True
    encoder: str = "sentence-transformers"  # or "openai"
    encoder_model: str = "all-MiniLM-L6-v2"
    encoder_url: str | None = None
    encoder_instruction: str = ""
    cache_dir: Path | None = None  # None: $EHRPREDICT_CACHE/embeddings or ~/.cache/ehrpredict/embeddings

    def __post_init__(self) -> None:
        if self.text_format not in TEXT_FORMATS:
            raise ConfigError(f"expected --text-format in {list(TEXT_FORMATS)}, got {self.text_format!r}")
        unknown = [r for r in self.representations if r not in REPRESENTATIONS]
        if unknown:
            raise ConfigError(f"expected representations from {list(REPRESENTATIONS)}, got {unknown}")
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown:
            raise ConfigError(f"expected heads from {list(HEADS)}, got {unknown}")
        if self.shuffle_permutations < 1:
            raise ConfigError(f"expected --shuffle-permutations >= 1, got {self.shuffle_permutations}")
        if self.n_boot < 10:
            raise ConfigError(f"expected --bootstrap >= 10, got {self.n_boot}")
        parse_duration(self.coding_delay, "--coding-delay")

    def settings(self) -> RepresentationSettings:
        """What the representations read from this config."""
        from ehrpredict.text.encoders import EncoderConfig

        encoder = EncoderConfig(kind=self.encoder, model=self.encoder_model, url=self.encoder_url,
                                instruction=self.encoder_instruction)
        return RepresentationSettings(min_count=self.min_count, coding_delay=self.coding_delay,
                                      text_format=self.text_format, text_max_tokens=self.text_max_tokens,
                                      include_notes=self.include_notes, encoder=encoder, cache_dir=self.cache_dir)
