"""Hugging Face tokenizers (token counts and character spans) and fingerprints of local model directories,
shared by both encoders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ehrpredict.errors import ConfigError


def hf_spans(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    # verbose=False: the "longer than the maximum sequence length" notice does not apply, we chunk.
    encoded = tokenizer(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True, verbose=False)
    return [(int(start), int(end)) for start, end in encoded["offset_mapping"]]


def hf_count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])


def load_tokenizer(directory: str) -> Any:
    if not Path(directory).is_dir():
        raise ConfigError(f"tokenizer: expected a local tokenizer directory, got {directory!r} (no such directory)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    if not tokenizer.is_fast:
        raise ConfigError(f"tokenizer: expected a fast (Rust) tokenizer with offsets, got a slow one in {directory}")
    return tokenizer


def directory_fingerprint(directory: Path) -> str:
    """A short hash of a model directory: every file's name and size, and the content of small config files.
    Cheap (no reading of weights) yet it changes whenever the model does in practice."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and ".git" not in p.parts):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(directory).as_posix()}\0{size}\n".encode())
        if path.suffix in {".json", ".txt"} and size < 1_000_000 and path.name != "README.md":
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
