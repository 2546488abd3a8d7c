"""dataset_fingerprint: content, not file names and sizes, identifies a dataset."""

import json
import os
import time
from pathlib import Path

from ehrpredict.dataset import dataset_fingerprint


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def test_equal_sizes_different_content_give_different_fingerprints(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"data/train/0.parquet": b"A" * 100, "metadata/codes.parquet": b"codes"})
    b = write(tmp_path / "b", {"data/train/0.parquet": b"B" * 100, "metadata/codes.parquet": b"codes"})
    c = write(tmp_path / "c", {"data/train/0.parquet": b"A" * 100, "metadata/codes.parquet": b"codes"})
    assert (a / "data/train/0.parquet").stat().st_size == (b / "data/train/0.parquet").stat().st_size
    cache = tmp_path / "cache"
    assert dataset_fingerprint(a, cache) != dataset_fingerprint(b, cache)
    assert dataset_fingerprint(a, cache) == dataset_fingerprint(c, cache)  # same content elsewhere: same print
    assert len(dataset_fingerprint(a, cache)) == 16


def test_a_file_renamed_changes_the_fingerprint(tmp_path: Path) -> None:
    a = write(tmp_path / "a", {"data/train/0.parquet": b"x" * 10})
    b = write(tmp_path / "b", {"data/held_out/0.parquet": b"x" * 10})
    assert dataset_fingerprint(a, tmp_path / "cache") != dataset_fingerprint(b, tmp_path / "cache")


def test_digests_are_cached_and_a_rewrite_is_noticed(tmp_path: Path) -> None:
    root = write(tmp_path / "meds", {"data/train/0.parquet": b"A" * 100})
    cache = tmp_path / "cache"
    first = dataset_fingerprint(root, cache)
    [cache_file] = cache.glob("*.json")
    stored = json.loads(cache_file.read_text())
    assert list(stored["files"]) == ["data/train/0.parquet"]
    # The cache is read while the file's size, inode, mtime and ctime are unchanged: a planted digest shows.
    stored["files"]["data/train/0.parquet"]["sha256"] = "0" * 64
    cache_file.write_text(json.dumps(stored))
    planted = dataset_fingerprint(root, cache)
    assert planted != first
    # Rewritten in place with the same size and its old mtime restored: the ctime moves, so it is read again.
    shard = root / "data/train/0.parquet"
    before = shard.stat()
    time.sleep(0.05)  # file times tick at the kernel's clock granularity (a few ms): let the ctime move
    shard.write_bytes(b"B" * 100)
    os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (shard.stat().st_size, shard.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    rewritten = dataset_fingerprint(root, cache)
    assert rewritten not in (first, planted)
    assert rewritten == dataset_fingerprint(write(tmp_path / "same", {"data/train/0.parquet": b"B" * 100}), cache)
