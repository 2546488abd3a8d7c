"""Arbitrary texts to one vector each: chunking to the encoder's limit, token-weighted pooling of the
chunks, de-duplication and the on-disk cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from ehrpredict.errors import ConfigError
from ehrpredict.executor import Executor, local
from ehrpredict.text.cache import EmbeddingCache, cache_key
from ehrpredict.text.encoders.config import TextEncoder

BLOCK_TEXTS = 1024  # unique texts embedded, then cached, per step: bounds the work a crash loses


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
    executor: Executor | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """Embeddings in input order; duplicates embedded once; cached ones not re-embedded. Blocks of
    ``BLOCK_TEXTS`` texts are embedded through ``executor``.

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
    blocks = [todo[start : start + BLOCK_TEXTS] for start in range(0, len(todo), BLOCK_TEXTS)]
    done = 0
    # Blocks go through the executor (here, one after another; on a cluster, to GPU workers); results
    # come back in order, so each block is cached as soon as it is embedded.
    for block, (pooled, chunks) in zip(blocks, (executor or local()).map(partial(_embed_block, encoder=encoder),
                                                                          blocks), strict=True):
        done += len(block)
        n_chunks += chunks
        new = {keys[text]: vector for text, vector in zip(block, pooled, strict=True)}
        if cache is not None:
            cache.put_many(new)
        vectors.update(new)
        if progress is not None:
            progress(hits + done, len(unique))
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
