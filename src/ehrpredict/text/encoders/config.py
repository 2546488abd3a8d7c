"""What every text encoder offers (:class:`TextEncoder`) and how one is chosen (:class:`EncoderConfig`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ehrpredict.errors import ConfigError

KINDS = ("sentence-transformers", "openai")
DEFAULT_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderConfig:
    """Which encoder embeds the texts, and how.

    ``model`` is the packaged default, a local model directory, or (``openai``) the model name sent to
    the endpoint. ``api_key_env`` names the environment variable holding the key, never the key.
    ``tokenizer`` (``openai`` only) is a local Hugging Face tokenizer directory for exact token counts;
    without it the endpoint's tokens are approximated (see :class:`OpenAIEncoder`).
    """

    kind: str = "sentence-transformers"
    model: str = DEFAULT_MODEL
    url: str | None = None
    api_key_env: str | None = None
    instruction: str = ""
    batch_size: int = 32
    max_tokens: int | None = None
    timeout_s: float = 60.0
    max_retries: int = 3
    normalize: bool = True
    device: str = "cpu"
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.model:
            problems.append("model: expected a model name or directory, got an empty string")
        if self.kind == "openai" and not self.url:
            problems.append("url: expected a base URL like http://host:8000/v1 for kind 'openai', got None")
        if self.url is not None and not re.match(r"https?://", self.url):
            problems.append(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if self.batch_size < 1:
            problems.append(f"batch_size: expected a positive integer, got {self.batch_size}")
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append(f"max_tokens: expected a positive integer or None, got {self.max_tokens}")
        if not self.timeout_s > 0:
            problems.append(f"timeout_s: expected a positive number of seconds, got {self.timeout_s}")
        if self.max_retries < 0:
            problems.append(f"max_retries: expected zero or more, got {self.max_retries}")
        if self.tokenizer is not None and self.kind != "openai":
            problems.append("tokenizer: expected None for kind 'sentence-transformers' (it uses the model's own)")
        if problems:
            raise ConfigError("invalid EncoderConfig: " + "; ".join(problems))


class TextEncoder(Protocol):
    """Embeds pieces of text. ``count_tokens(text)`` counts what the encoder sees for ``text``, the
    instruction included, so a text is embedded whole exactly when ``count_tokens(text) <= max_tokens``."""

    config: EncoderConfig

    @property
    def identity(self) -> str:
        """Stable across runs; changes whenever the embeddings could (the cache key)."""
        ...

    @property
    def label(self) -> str:
        """What a report calls the encoder: the model's name, its kind and what pins its weights,
        e.g. ``all-MiniLM-L6-v2 (sentence-transformers, fingerprint 1a2b3c4d5e6f7a8b)``."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of each token of ``text`` alone (no instruction, no special tokens)."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dimension)``: each text, prefixed with the instruction, as one sequence."""
        ...
