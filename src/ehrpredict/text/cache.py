"""An on-disk embedding cache: append-only segment files plus a key index held in memory.

Each ``put_many`` writes one immutable segment ``segment-<id>.npz`` holding the keys and a float32
matrix. The segment is written to a hidden temporary file and renamed into place, so a crash leaves
at most a temporary file, which is ignored, never a half-written segment under a real name. Opening
the cache reads only the key arrays of the segments; vectors are read on demand, a segment at a time.
Segments are never modified, so any number of readers (and writers, each writing its own segments)
can share a directory.

>>> cache = EmbeddingCache(tmp_dir)                              # doctest: +SKIP
>>> key = cache_key("Patient, 71 years old.", encoder.identity)  # doctest: +SKIP
>>> cache.put_many({key: vector}); cache.get_many([key])          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ehrpredict.errors import DataError

SEGMENT_GLOB = "segment-*.npz"
TEMP_PREFIX = ".tmp-"


def cache_key(text: str, encoder_identity: str) -> str:
    """The sha256 hex digest of (encoder identity, text); the identity is length-prefixed so the pair is unambiguous."""
    identity = encoder_identity.encode("utf-8")
    digest = hashlib.sha256()
    digest.update(str(len(identity)).encode("ascii") + b":" + identity)
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()


class EmbeddingCache:
    """Embeddings on disk keyed by :func:`cache_key`; counts ``hits`` and ``misses`` of ``get_many``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._index: dict[str, tuple[Path, int]] = {}  # key -> (segment, row)
        self._segments: set[Path] = set()
        self._vectors: dict[Path, np.ndarray] = {}  # segments whose vectors were read
        self._scan()

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those ``keys`` that are cached; the others are counted as misses."""
        if any(key not in self._index for key in keys):
            self._scan()  # another process may have added segments since we opened
        found: dict[str, np.ndarray] = {}
        for key in keys:
            entry = self._index.get(key)
            if entry is not None:
                segment, row = entry
                found[key] = self._segment_vectors(segment)[row]
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: Mapping[str, np.ndarray]) -> None:
        """Store ``items`` as one new segment (atomically); keys already cached are skipped."""
        new = {key: vector for key, vector in items.items() if key not in self._index}
        if not new:
            return
        keys = np.array(list(new), dtype="S64")
        vectors = np.stack([np.asarray(vector, dtype=np.float32) for vector in new.values()])
        name = f"segment-{uuid.uuid4().hex}.npz"
        temp = self.directory / f"{TEMP_PREFIX}{name}"
        with temp.open("wb") as handle:
            np.savez(handle, keys=keys, vectors=vectors)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, self.directory / name)
        self._add_segment(self.directory / name, list(new))
        self._vectors[self.directory / name] = vectors

    def _scan(self) -> None:
        for segment in sorted(self.directory.glob(SEGMENT_GLOB)):
            if segment not in self._segments:
                keys = self._read(segment, "keys")
                self._add_segment(segment, [key.decode("ascii") for key in keys.tolist()])

    def _add_segment(self, segment: Path, keys: list[str]) -> None:
        self._segments.add(segment)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (segment, row))

    def _segment_vectors(self, segment: Path) -> np.ndarray:
        if segment not in self._vectors:
            self._vectors[segment] = self._read(segment, "vectors")
        return self._vectors[segment]

    @staticmethod
    def _read(segment: Path, member: str) -> np.ndarray:
        try:
            with np.load(segment, allow_pickle=False) as archive:
                return np.asarray(archive[member])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise DataError(
                f"expected an embedding cache segment with '{member}', got an unreadable file ({segment}: {error}); "
                "delete it to re-embed its texts"
            ) from error
