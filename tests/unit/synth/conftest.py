"""One small synthetic hospital shared by the synth unit tests (generating it takes well under a second)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ehrpredict.ingest.synth import SynthConfig, generate

N_PATIENTS = 400


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    generate(out, SynthConfig(n_patients=N_PATIENTS, seed=7, chunk_size=150))
    return out


def read(root: Path, table: str) -> pl.DataFrame:
    """A synthetic table with MIMIC-style parsing of times (all columns as text otherwise)."""
    frame = pl.read_csv(root / f"{table}.csv.gz", infer_schema_length=0)
    times = [c for c in frame.columns if c.endswith("time") or c in ("intime", "outtime")]
    return frame.with_columns(pl.col(c).str.to_datetime("%Y-%m-%d %H:%M:%S") for c in times)


@pytest.fixture(scope="session")
def tables(synth_dir: Path) -> dict[str, pl.DataFrame]:
    """Every table of the shared hospital, read once."""
    return {f"{p.parent.name}/{p.name.removesuffix('.csv.gz')}": read(synth_dir, f"{p.parent.name}/"
                                                                      f"{p.name.removesuffix('.csv.gz')}")
            for p in sorted(synth_dir.glob("*/*.csv.gz"))}


@pytest.fixture(scope="session")
def oracle(synth_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(synth_dir / "oracle" / "oracle.parquet")
