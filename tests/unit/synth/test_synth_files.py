"""Layout, determinism and dictionaries of the synthetic hospital's files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl

from ehrpredict.ingest.mimic4_columns import HEADERS
from ehrpredict.ingest.synth import SynthConfig, generate


def test_headers_are_mimic_iv_2_2(synth_dir: Path) -> None:
    files = sorted(synth_dir.glob("*/*.csv.gz"))
    assert {p.parent.name for p in files} == {"hosp", "icu", "ed", "note"}
    for path in files:
        table = f"{path.parent.name}/{path.name.removesuffix('.csv.gz')}"
        with gzip.open(path, "rt") as f:
            assert tuple(f.readline().rstrip("\n").split(",")) == HEADERS[table], table


def test_gzip_header_is_fixed(synth_dir: Path) -> None:
    raw = (synth_dir / "hosp" / "patients.csv.gz").read_bytes()
    assert raw[4:8] == b"\0\0\0\0"  # mtime 0
    assert raw[10:].startswith(b"patients.csv\0")  # the file's own name, not the staging path


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    config = SynthConfig(n_patients=120, seed=3, chunk_size=50)
    a, b = generate(tmp_path / "a", config), generate(tmp_path / "b", config)
    files = sorted(p.relative_to(a.out_dir) for p in a.out_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b.out_dir) for p in b.out_dir.rglob("*") if p.is_file())
    for rel in files:
        assert (a.out_dir / rel).read_bytes() == (b.out_dir / rel).read_bytes(), rel
    other = generate(tmp_path / "c", SynthConfig(n_patients=120, seed=4, chunk_size=50))
    assert (other.out_dir / "hosp/labevents.csv.gz").read_bytes() != (a.out_dir / "hosp/labevents.csv.gz").read_bytes()


def test_leaving_out_a_module_does_not_change_the_others(tmp_path: Path) -> None:
    full = generate(tmp_path / "full", SynthConfig(n_patients=60, seed=1))
    hosp = generate(tmp_path / "hosp", SynthConfig(n_patients=60, seed=1, modules=("hosp",)))
    assert not (hosp.out_dir / "icu").exists()
    for name in ("patients", "admissions", "labevents"):
        path = f"hosp/{name}.csv.gz"
        assert (full.out_dir / path).read_bytes() == (hosp.out_dir / path).read_bytes()


def test_manifest(synth_dir: Path) -> None:
    manifest = json.loads((synth_dir / "SYNTHETIC.json").read_text())
    assert manifest["seed"] == 7 and manifest["n_patients"] == 400
    assert manifest["modules"] == ["hosp", "icu", "ed", "note"]
    assert manifest["tables"]["hosp/patients"] == 400
    assert manifest["generator_version"]


def test_dictionaries_cover_every_emitted_code(tables: dict[str, pl.DataFrame]) -> None:
    def keys(frame: pl.DataFrame) -> set[tuple[str, str]]:
        return set(frame.select("icd_code", "icd_version").iter_rows())

    for table in ("hosp/diagnoses_icd", "ed/diagnosis"):
        assert keys(tables[table]) <= keys(tables["hosp/d_icd_diagnoses"]), table
    assert keys(tables["hosp/procedures_icd"]) <= keys(tables["hosp/d_icd_procedures"])
    assert set(tables["hosp/labevents"]["itemid"]) <= set(tables["hosp/d_labitems"]["itemid"])
    items = set(tables["icu/d_items"]["itemid"])
    for table in ("icu/chartevents", "icu/inputevents", "icu/outputevents", "icu/procedureevents"):
        assert set(tables[table]["itemid"]) <= items, table


def test_ids_are_unique(tables: dict[str, pl.DataFrame]) -> None:
    assert tables["hosp/patients"]["subject_id"].is_unique().all()
    assert tables["hosp/admissions"]["hadm_id"].is_unique().all()
    icu, ed = set(tables["icu/icustays"]["stay_id"]), set(tables["ed/edstays"]["stay_id"])
    assert len(icu) == tables["icu/icustays"].height and not icu & ed
    assert tables["hosp/labevents"]["labevent_id"].is_unique().all()
    assert tables["note/discharge"]["note_id"].is_unique().all()
