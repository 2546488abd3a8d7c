"""A fitted featurizer as plain data, and back: JSON for settings and small learned state, polars
frames (written as parquet by a bundle) for vocabularies. Nothing pickles.

- counts: the settings, the vocabulary (``codes_``), the feature names, the coding delay and its
  vocabularies, the code parents when rolled up, and any other learned attribute of plain values.
- text: the serializer's settings, its learned item selection, the code descriptions and code kinds
  it writes with, the coding delay, and the encoder's settings and identity. The encoder's weights are
  not part of the state: loading checks that the encoder found now has the identity recorded at
  fit time, and refuses it otherwise (other weights give other embeddings).
- a combination (``Concatenated``): its parts' states and the log-transform flags.

    >>> state = featurizer_state(CountsFeaturizer().fit(labels, source="out/meds"))   # doctest: +SKIP
    >>> featurizer = featurizer_from_state(state)                                   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError
from ehrpredict.events.cutoff import CodingDelay
from ehrpredict.features.base import Featurizer
from ehrpredict.features.combine import Concatenated
from ehrpredict.features.counts import CountsFeaturizer, _windows
from ehrpredict.features.text import TextFeaturizer, TextRunStats, shared_encoder
from ehrpredict.text.encoders import EncoderConfig
from ehrpredict.text.selection import ItemSelection
from ehrpredict.text.serialize import SERIALIZER_VERSION, SerializerConfig, TimelineSerializer, _Vocabulary
from ehrpredict.vocab.kinds import code_kinds

STATE_VERSION = 1


@dataclass
class FeaturizerState:
    """``spec``: JSON-able; ``frames``: name → polars frame (vocabularies)."""

    spec: dict[str, Any]
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)

    def frame(self, name: str) -> pl.DataFrame:
        if name not in self.frames:
            raise ConfigError(f"expected the table {name!r} in the featurizer state, got {sorted(self.frames)}")
        return self.frames[name]


def _delay_json(delay: CodingDelay) -> dict[str, Any]:
    return {"seconds": delay.delay.total_seconds(), "vocabularies": list(delay.vocabularies)}


def _delay_from(data: dict[str, Any]) -> CodingDelay:
    return CodingDelay(timedelta(seconds=float(data["seconds"])), tuple(str(v) for v in data["vocabularies"]))


# Learned attributes of CountsFeaturizer written explicitly; others of plain values travel as JSON.
_COUNTS_EXPLICIT = {"windows_", "coding_delay_", "parents_", "codes_", "feature_names_", "columns_"}


def _plain(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, (tuple, list)):
        return all(_plain(v) for v in value)
    return False


def _learned(featurizer: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(featurizer).items() if k.endswith("_") and not k.startswith("_")}


def _counts_state(featurizer: CountsFeaturizer, key: str) -> FeaturizerState:
    extra = {k: v for k, v in _learned(featurizer).items() if k not in _COUNTS_EXPLICIT}
    odd = [k for k, v in extra.items() if not _plain(v)]
    if odd:
        raise ConfigError(f"expected the counts featurizer's learned state in plain values, got {odd} (add them to "
                          "features/portable.py)")
    params = featurizer.get_params()
    params["windows"] = list(params["windows"])
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    spec = {"kind": "counts", "params": params, "coding_delay": _delay_json(featurizer.coding_delay_),
            "extra": {k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()},
            "n_features": len(featurizer.feature_names_)}
    frames = {f"{key}.codes": pl.DataFrame({S.CODE: featurizer.codes_}),
              f"{key}.features": pl.DataFrame({"feature": list(featurizer.feature_names_)},
                                              schema={"feature": pl.String})}
    frames[f"{key}.columns"] = featurizer.columns_  # code features → column (static columns follow them)
    if featurizer.parents_ is not None:
        frames[f"{key}.parents"] = featurizer.parents_
    return FeaturizerState(spec, frames)


def _counts_from(spec: dict[str, Any], state: FeaturizerState, key: str) -> CountsFeaturizer:
    params: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["params"].items()}
    featurizer = CountsFeaturizer(**params)
    featurizer.windows_ = _windows(featurizer.windows)
    featurizer.coding_delay_ = _delay_from(spec["coding_delay"])
    featurizer.parents_ = state.frames.get(f"{key}.parents") if featurizer.rollup else None
    if featurizer.rollup and featurizer.parents_ is None:
        raise ConfigError("expected the code parents of a rolled-up counts featurizer, got none")
    featurizer.codes_ = state.frame(f"{key}.codes").get_column(S.CODE)
    names = state.frame(f"{key}.features").get_column("feature").to_list()
    if len(names) != int(spec["n_features"]):
        raise ConfigError(f"expected {spec['n_features']} counts features, got {len(names)} names")
    featurizer.feature_names_ = np.asarray(names)
    columns = state.frame(f"{key}.columns")
    if columns.columns != ["_name", "_column"] or columns.height > len(names):
        raise ConfigError(f"expected the counts columns table (_name, _column) over at most {len(names)} features, got "
                          f"{columns.columns} with {columns.height} rows")
    featurizer.columns_ = columns
    for name, value in spec.get("extra", {}).items():
        setattr(featurizer, name, tuple(value) if isinstance(value, list) else value)
    return featurizer


def _text_state(featurizer: TextFeaturizer, key: str) -> FeaturizerState:
    serializer = featurizer.serializer_
    vocabulary = serializer.vocabulary_
    encoder = featurizer.encoder_
    spec = {"kind": "text", "serializer_config": asdict(featurizer.serializer_config_),
            "serializer_version": SERIALIZER_VERSION, "max_tokens": featurizer.max_tokens,
            "encoder": asdict(featurizer.encoder or EncoderConfig()), "encoder_identity": encoder.identity,
            "encoder_label": encoder.label, "dimension": int(featurizer.dimension_),
            "selection": featurizer.selection_.to_json(), "code_kinds": vocabulary.kinds.to_json(),
            "coding_delay": _delay_json(serializer.coding_delay_)}
    return FeaturizerState(spec, {f"{key}.descriptions": vocabulary.codes})


def _text_from(spec: dict[str, Any], state: FeaturizerState, key: str) -> TextFeaturizer:
    if spec["serializer_version"] != SERIALIZER_VERSION:
        raise ConfigError(f"expected timelines written by serializer version {SERIALIZER_VERSION} (this ehrpredict), "
                          f"got a model fitted on version {spec['serializer_version']}: its texts would differ")
    encoder_config = EncoderConfig(**spec["encoder"])
    encoder = shared_encoder(encoder_config)
    if encoder.identity != spec["encoder_identity"]:
        raise ConfigError(f"expected the text encoder the model was fitted with ({spec['encoder_label']}), got "
                          f"{encoder.label}: other weights give other embeddings, so the model cannot use it")
    config = SerializerConfig(**spec["serializer_config"])
    featurizer = TextFeaturizer(serializer=config, encoder=encoder_config, max_tokens=spec["max_tokens"])
    serializer = TimelineSerializer(config, count_tokens=encoder.count_tokens)
    kinds = code_kinds({"ehrpredict": {"code_kinds": spec["code_kinds"]}}, source="the model's code kinds")
    serializer.vocabulary_ = _Vocabulary(state.frame(f"{key}.descriptions"), kinds)
    serializer.coding_delay_ = _delay_from(spec["coding_delay"])
    selection = spec["selection"]
    serializer.selection_ = ItemSelection(
        vitals=tuple((str(c), int(n)) for c, n in selection["vitals"].items()),
        labs=tuple((str(c), int(n)) for c, n in selection["labs"].items()),
        flagged_labs=tuple(str(v) for v in selection["flagged_labs"]), n_rows=int(selection["n_rows"]))
    featurizer.serializer_config_ = config
    featurizer.serializer_ = serializer
    featurizer.selection_ = serializer.selection_
    featurizer.dimension_ = int(spec["dimension"])
    featurizer.stats_ = TextRunStats()
    return featurizer


def featurizer_state(featurizer: Featurizer, key: str = "featurizer") -> FeaturizerState:
    """A fitted featurizer (counts, text or a combination of them) as plain data."""
    if isinstance(featurizer, CountsFeaturizer):
        return _counts_state(featurizer, key)
    if isinstance(featurizer, TextFeaturizer):
        return _text_state(featurizer, key)
    if isinstance(featurizer, Concatenated):
        parts, frames = [], {}
        for name, part in featurizer.parts:
            state = featurizer_state(part, f"{key}.{name}")
            parts.append({"name": name, **state.spec})
            frames.update(state.frames)
        return FeaturizerState({"kind": "concatenated", "parts": parts,
                                "log_transform": list(featurizer.log_transform)}, frames)
    raise ConfigError(f"expected a counts, text or combined featurizer, got {type(featurizer).__name__}")


def featurizer_from_state(state: FeaturizerState, key: str = "featurizer") -> Featurizer:
    """The fitted featurizer again, from :func:`featurizer_state`'s data."""
    spec = state.spec
    kind = spec.get("kind")
    try:
        if kind == "counts":
            return _counts_from(spec, state, key)
        if kind == "text":
            return _text_from(spec, state, key)
        if kind == "concatenated":
            parts = [(str(p["name"]), featurizer_from_state(FeaturizerState(p, state.frames), f"{key}.{p['name']}"))
                     for p in spec["parts"]]
            return Concatenated(parts, [bool(f) for f in spec["log_transform"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"expected a complete {kind} featurizer state, got an error reading it: {exc!r}") from exc
    raise ConfigError(f"expected a featurizer kind counts, text or concatenated, got {kind!r}")
