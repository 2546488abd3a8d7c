"""The on-disk embedding cache: round trip, persistence, crash safety, identity in the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ehrpredict.errors import DataError
from ehrpredict.text.cache import EmbeddingCache, cache_key


def vec(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_round_trip_and_hit_miss_counts(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_many({"a": vec(1, 2, 3), "b": vec(4, 5, 6)})
    found = cache.get_many(["a", "b", "c"])
    assert set(found) == {"a", "b"}
    np.testing.assert_array_equal(found["a"], vec(1, 2, 3))
    np.testing.assert_array_equal(found["b"], vec(4, 5, 6))
    assert found["a"].dtype == np.float32
    assert (cache.hits, cache.misses) == (2, 1)


def test_persists_across_instances_in_one_segment_per_put(tmp_path: Path) -> None:
    first = EmbeddingCache(tmp_path)
    first.put_many({"a": vec(1, 0)})
    first.put_many({"b": vec(0, 1), "a": vec(9, 9)})  # "a" is cached already: not written again
    assert len(list(tmp_path.glob("segment-*.npz"))) == 2
    second = EmbeddingCache(tmp_path)
    assert len(second) == 2
    found = second.get_many(["a", "b"])
    np.testing.assert_array_equal(found["a"], vec(1, 0))
    np.testing.assert_array_equal(found["b"], vec(0, 1))
    assert (second.hits, second.misses) == (2, 0)


def test_put_of_only_known_keys_writes_nothing(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_many({"a": vec(1)})
    cache.put_many({"a": vec(2)})
    cache.put_many({})
    assert len(list(tmp_path.iterdir())) == 1


def test_leftover_temp_file_from_a_crash_is_ignored(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path).put_many({"a": vec(1, 2)})
    # A writer killed mid-write leaves its temporary file, half written, under a hidden name.
    whole = next(tmp_path.glob("segment-*.npz")).read_bytes()
    (tmp_path / ".tmp-segment-dead.npz").write_bytes(whole[: len(whole) // 2])
    cache = EmbeddingCache(tmp_path)
    assert cache.get_many(["a"])["a"].tolist() == [1, 2]
    cache.put_many({"b": vec(3, 4)})
    assert EmbeddingCache(tmp_path).get_many(["b"])["b"].tolist() == [3, 4]


def test_a_corrupt_segment_fails_loudly_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "segment-broken.npz").write_bytes(b"not a zip archive")
    with pytest.raises(DataError, match=r"segment-broken\.npz"):
        EmbeddingCache(tmp_path)


def test_a_reader_sees_segments_written_after_it_opened(tmp_path: Path) -> None:
    reader = EmbeddingCache(tmp_path)
    EmbeddingCache(tmp_path).put_many({"a": vec(7)})
    assert reader.get_many(["a"])["a"].tolist() == [7]


def test_keys_differ_by_encoder_identity_and_text() -> None:
    key = cache_key("Patient, 71 years old.", "sentence-transformers|model=x|normalize=True")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key("Patient, 71 years old.", "sentence-transformers|model=x|normalize=True")
    assert key != cache_key("Patient, 71 years old.", "sentence-transformers|model=x|normalize=False")
    assert key != cache_key("Patient, 72 years old.", "sentence-transformers|model=x|normalize=True")
    # The identity is length-prefixed, so moving characters between identity and text changes the key.
    assert cache_key("bc", "a") != cache_key("c", "ab")


def test_vectors_of_different_dimensions_share_a_directory(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put_many({cache_key("t", "small"): vec(1, 2)})
    cache.put_many({cache_key("t", "large"): vec(1, 2, 3, 4)})
    found = EmbeddingCache(tmp_path).get_many([cache_key("t", "small"), cache_key("t", "large")])
    assert [v.shape for v in found.values()] == [(2,), (4,)]
