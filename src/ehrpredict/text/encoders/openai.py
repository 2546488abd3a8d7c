"""Any OpenAI-compatible ``POST {url}/embeddings`` endpoint (vLLM, TEI, Ollama, ...) as a
:class:`~ehrpredict.text.encoders.TextEncoder`, spoken with the standard library only."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from ehrpredict.errors import ConfigError, EncoderError
from ehrpredict.text.encoders.config import EncoderConfig
from ehrpredict.text.encoders.hf import directory_fingerprint, hf_count, hf_spans, load_tokenizer

OPENAI_MAX_TOKENS = 512
BACKOFF_S = 0.5  # first retry delay; doubles per attempt, capped at MAX_BACKOFF_S
MAX_BACKOFF_S = 8.0


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
        self._tokenizer = load_tokenizer(config.tokenizer) if config.tokenizer is not None else None
        self._dimension: int | None = None

    @cached_property
    def identity(self) -> str:
        tokenizer = self.config.tokenizer
        tokens = "approx" if tokenizer is None else directory_fingerprint(Path(tokenizer))
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
            return hf_count(self._tokenizer, text)
        return sum(1 for _ in _APPROX_TOKEN.finditer(text))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        if self._tokenizer is not None:
            return hf_spans(self._tokenizer, text)
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
