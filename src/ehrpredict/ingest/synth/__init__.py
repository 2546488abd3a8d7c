"""A synthetic hospital written as raw MIMIC-IV 2.2 tables (hosp, icu, ed, note), with a ground-truth oracle.

    >>> from ehrpredict.ingest.synth import SynthConfig, generate
    >>> result = generate("out/synth", SynthConfig(n_patients=2000, seed=0))  # doctest: +SKIP
    >>> result.tables["hosp/admissions"]  # doctest: +SKIP
    5310

``ehrpredict ingest mimic4 OUT_DIR MEDS_DIR`` reads the result unchanged. The true probability of each
outcome the generator drew is in ``OUT_DIR/oracle/oracle.parquet`` (outside the module directories, so
it never enters a MEDS dataset). See docs/synthetic.md for the model and its coefficients.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ehrpredict import __version__
from ehrpredict.errors import ConfigError
from ehrpredict.ingest.output import staged_output
from ehrpredict.ingest.synth.dictionaries import OracleWriter, dictionary_tables, oracle_frame
from ehrpredict.ingest.synth.ed import ed_tables
from ehrpredict.ingest.synth.encounters import Chunk, draw_encounters
from ehrpredict.ingest.synth.hosp import hosp_tables
from ehrpredict.ingest.synth.icu import icu_tables
from ehrpredict.ingest.synth.labs import lab_table, omr_table
from ehrpredict.ingest.synth.notes import note_tables
from ehrpredict.ingest.synth.world import draw_patients
from ehrpredict.ingest.synth.writer import TableSet

# 1.1 treatments after the outcome window; 1.2 ED transfers for every ED visit; 1.3 OMR after encounters
GENERATOR_VERSION = "1.3"
MODULES = ("hosp", "icu", "ed", "note")
ORACLE_FILE = Path("oracle") / "oracle.parquet"
MANIFEST_FILE = "SYNTHETIC.json"
FIRST_SUBJECT_ID = 10_000_000
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. The same config always gives byte-identical files."""

    n_patients: int = 1000
    seed: int = 0
    modules: tuple[str, ...] = MODULES
    chunk_size: int = 1000  # patients per chunk: bounds memory; part of the output's identity

    def __post_init__(self) -> None:
        if isinstance(self.n_patients, bool) or not isinstance(self.n_patients, int) or self.n_patients <= 0:
            raise ConfigError(f"expected a positive number of patients, got {self.n_patients!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"expected a non-negative integer seed, got {self.seed!r}")
        unknown = [m for m in self.modules if m not in MODULES]
        if unknown:
            raise ConfigError(f"expected modules among {', '.join(MODULES)}, got {', '.join(unknown)}")
        if "hosp" not in self.modules:
            raise ConfigError(f"expected modules to include hosp (patients and admissions), got {self.modules}")
        if not 1 <= self.chunk_size <= 10_000:
            raise ConfigError(f"expected chunk_size between 1 and 10000, got {self.chunk_size}")
        object.__setattr__(self, "modules", tuple(m for m in MODULES if m in self.modules))


@dataclass(frozen=True)
class SynthResult:
    out_dir: Path
    n_patients: int
    tables: dict[str, int] = field(default_factory=dict)  # module/table -> rows written
    oracle_rows: int = 0

    @property
    def oracle_path(self) -> Path:
        return self.out_dir / ORACLE_FILE


def parse_modules(text: str) -> tuple[str, ...]:
    """``"hosp,icu"`` → ``("hosp", "icu")``; unknown names raise ConfigError (via SynthConfig)."""
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _check_writable(out_dir: Path) -> None:
    probe = out_dir.absolute()
    while not probe.exists():
        probe = probe.parent
    problem = "not a directory" if not probe.is_dir() else None
    if problem is None:
        # os.access says yes to root even on read-only mounts: try to create something instead.
        try:
            tempfile.TemporaryDirectory(dir=probe, prefix=".ehrpredict-probe-").cleanup()
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
    if problem is not None:
        raise ConfigError(f"expected a writable location for OUT_DIR, got {out_dir} ({probe}: {problem})")


def generate(out_dir: str | Path, config: SynthConfig, *, overwrite: bool = False,
             progress: Progress | None = None) -> SynthResult:
    """Write the synthetic hospital to ``out_dir`` (atomically: a staging directory, then a rename)."""
    out_dir = Path(out_dir).absolute()
    _check_writable(out_dir)
    n_chunks = -(-config.n_patients // config.chunk_size)
    children = np.random.SeedSequence(config.seed).spawn(n_chunks)
    with staged_output(out_dir, overwrite=overwrite) as staging:
        tables = TableSet(staging, config.modules)
        oracle = OracleWriter(staging / ORACLE_FILE)
        try:
            for name, frame in dictionary_tables():
                tables.append(name, frame)
            for index, child in enumerate(children):
                size = min(config.chunk_size, config.n_patients - index * config.chunk_size)
                _write_chunk(tables, oracle, index, child, size, config)
                if progress:
                    progress("generating patients", index * config.chunk_size + size, config.n_patients)
        finally:
            rows = tables.close()
            oracle.close()
        manifest = {"generator": "ehrpredict.ingest.synth", "generator_version": GENERATOR_VERSION,
                    "ehrpredict_version": __version__, "seed": config.seed, "n_patients": config.n_patients,
                    "modules": list(config.modules), "chunk_size": config.chunk_size, "tables": rows,
                    "oracle": {"path": str(ORACLE_FILE), "rows": oracle.rows}}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return SynthResult(out_dir=out_dir, n_patients=config.n_patients, tables=rows, oracle_rows=oracle.rows)


def _write_chunk(tables: TableSet, oracle: OracleWriter, index: int, seed: np.random.SeedSequence, size: int,
                 config: SynthConfig) -> None:
    # One generator per part, so leaving out a module never changes the others' draws.
    world, hosp, labs, icu, ed, note = (np.random.default_rng(s) for s in seed.spawn(6))
    patients = draw_patients(world, FIRST_SUBJECT_ID + index * config.chunk_size, size)
    chunk = Chunk.build(index, patients, draw_encounters(world, patients))
    for name, frame in hosp_tables(hosp, chunk):
        tables.append(name, frame)
    tables.append("hosp/labevents", lab_table(labs, chunk))
    tables.append("hosp/omr", omr_table(labs, chunk))
    parts = {"icu": (icu_tables, icu), "ed": (ed_tables, ed), "note": (note_tables, note)}
    for module, (build, rng) in parts.items():
        if module in config.modules:
            for name, frame in build(rng, chunk):
                tables.append(name, frame)
    oracle.write(oracle_frame(chunk, with_ed="ed" in config.modules))


__all__: Sequence[str] = ("MODULES", "SynthConfig", "SynthResult", "generate", "parse_modules")
