"""A bundle's files: how its parts are written and read, and the checks every load makes.

A bundle is a directory. ``manifest.json`` lists every other file with its sha256; loading refuses a
bundle whose format version is newer than this ehrpredict reads, a file that is missing, and a file
whose bytes differ from the manifest's hash (naming the file). Nothing is unpickled: JSON, parquet,
``.npy`` read with ``allow_pickle=False`` and LightGBM's model text are the only formats.

The hashes catch corruption and edits made without updating the manifest; they are not a signature
(whoever can write the directory can rewrite the manifest too). Loading never executes code from the
bundle either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ehrpredict.errors import ConfigError
from ehrpredict.features.portable import FeaturizerState
from ehrpredict.ingest.output import staged_output, write_json
from ehrpredict.models.portable import HeadState

FORMAT = "ehrpredict-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODEL_CARD = "MODEL_CARD.md"
TASK_FILE = "task.yaml"
FEATURIZER_DIR = "featurizer"
HEAD_DIR = "head"
STATE = "state.json"
CALIBRATION = "calibration.json"
TRAINING_CODES = "vocabulary/training_codes.parquet"
REPORT_DIR = "report"
HELD_OUT_PREDICTIONS = "report/held_out_predictions.parquet"


class BundleError(ConfigError):
    """A bundle is incomplete, altered, or from a newer ehrpredict."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def staged_bundle(out: Path, overwrite: bool) -> Iterator[Path]:
    """A staging directory that becomes ``out`` only once everything is written (a crash leaves no
    half-written bundle that looks whole)."""
    with staged_output(out, overwrite) as staging:
        yield staging


def write_featurizer(root: Path, state: FeaturizerState) -> None:
    folder = root / FEATURIZER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in state.frames.items():
        frame.write_parquet(folder / f"{name}.parquet")
    write_json(folder / STATE, {"spec": state.spec, "frames": sorted(state.frames)})


def write_head(root: Path, state: HeadState) -> None:
    folder = root / HEAD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in state.arrays.items():
        np.save(folder / f"{name}.npy", np.asarray(array), allow_pickle=False)
    for name, text in state.texts.items():
        (folder / f"{name}.txt").write_text(text)
    write_json(folder / STATE, {"spec": state.spec, "arrays": sorted(state.arrays), "texts": sorted(state.texts)})


def _safe_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise BundleError(f"expected a plain file name in {where}, got {name!r}")
    return name


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise BundleError(f"expected {path.name} in the bundle, got no such file: {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"expected valid JSON in {path}, got: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"expected a JSON object in {path}, got {type(data).__name__}")
    return data


def read_featurizer(root: Path) -> FeaturizerState:
    folder = root / FEATURIZER_DIR
    data = read_json(folder / STATE)
    frames = {}
    for name in data.get("frames", []):
        path = folder / f"{_safe_name(name, str(folder / STATE))}.parquet"
        try:
            frames[name] = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise BundleError(f"expected a parquet table at {path}, got: {exc}") from exc
    return FeaturizerState(data["spec"], frames)


def read_head(root: Path) -> HeadState:
    folder = root / HEAD_DIR
    data = read_json(folder / STATE)
    arrays, texts = {}, {}
    for name in data.get("arrays", []):
        path = folder / f"{_safe_name(name, str(folder / STATE))}.npy"
        try:
            arrays[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:  # ValueError: an object array (it would need pickle) or bad bytes
            raise BundleError(f"expected a numeric .npy array at {path}, got: {exc}") from exc
    for name in data.get("texts", []):
        path = folder / f"{_safe_name(name, str(folder / STATE))}.txt"
        try:
            texts[name] = path.read_text()
        except OSError as exc:
            raise BundleError(f"expected a text file at {path}, got: {exc}") from exc
    return HeadState(data["spec"], arrays, texts)


def file_hashes(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``root`` except the manifest."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def read_manifest(root: Path) -> dict[str, Any]:
    """The manifest, after checking the format version and every listed file's hash."""
    root = Path(root)
    if not root.is_dir():
        what = "a file" if root.exists() else "no such path"
        raise BundleError(f"expected a bundle directory (from ehrpredict fit), got {what}: "
                          f"{root}")
    manifest = read_json(root / MANIFEST)
    if manifest.get("format") != FORMAT:
        raise BundleError(f"expected format {FORMAT!r} in {root / MANIFEST}, got {manifest.get('format')!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise BundleError(f"expected an integer format_version in {root / MANIFEST}, got {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(f"expected bundle format version {FORMAT_VERSION} or older, got version {version} "
                          f"({root}): it was written by a newer ehrpredict ({manifest.get('ehrpredict_version')}); "
                          "upgrade ehrpredict to load it")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"expected a files table (path → sha256) in {root / MANIFEST}, got {files!r}")
    for relative, expected in sorted(files.items()):
        path = root / relative
        if ".." in Path(relative).parts or Path(relative).is_absolute():
            raise BundleError(f"expected paths inside the bundle in {root / MANIFEST}, got {relative!r}")
        if not path.is_file():
            raise BundleError(f"expected {relative} in the bundle {root}, got no such file (the bundle is incomplete)")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(f"expected {relative} to have sha256 {expected} as the manifest records, got {actual}: "
                              f"the file was altered or corrupted after the bundle was written ({root})")
    return manifest
