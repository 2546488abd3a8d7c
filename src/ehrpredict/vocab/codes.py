"""Build ``metadata/codes.parquet``: every code with a human-readable description and its parents.

The text serializer reads descriptions from here, never from a source table. A code with no
dictionary entry still gets a readable description composed from its parts ("Hospital discharge:
HOME"); a raw id appears only where no dictionary knows it.
"""

from __future__ import annotations

import polars as pl

from ehrpredict import schema as S
from ehrpredict.vocab.dictionaries import Dictionaries, package_icd_title
from ehrpredict.vocab.icd import ICD9CM, ICD9PROC, ICD10CM, ICD10PCS, parent

ICD_VOCABS = (ICD9CM, ICD10CM, ICD9PROC, ICD10PCS)

# Prefix → readable name; codes like PREFIX//a//b read as "Name: a, b".
PREFIX_NAMES = {
    S.BIRTH_CODE: "Birth",
    S.DEATH_CODE: "Death",
    "GENDER": "Sex",
    "HOSPITAL_ADMISSION": "Hospital admission",
    "HOSPITAL_DISCHARGE": "Hospital discharge",
    "ED_REGISTRATION": "Emergency department registration",
    "ED_OUT": "Left the emergency department",
    "INSURANCE": "Insurance",
    "LANGUAGE": "Language",
    "MARITAL_STATUS": "Marital status",
    "RACE": "Race",
    "TRANSFER": "Transfer",
    "SERVICE": "Hospital service",
    "DRG": "Diagnosis-related group",
    "HCPCS": "HCPCS procedure",
    "LAB": "Lab test",
    "LAB_FLAG": "Lab result flagged",
    "MICROBIOLOGY": "Microbiology test",
    "MEDICATION": "Medication ordered",
    "PHARMACY": "Pharmacy dispensed",
    "EMAR": "Medication administration",
    "ORDER": "Order",
    "OMR": "Outpatient measurement",
    "ICU_ADMISSION": "ICU admission",
    "ICU_DISCHARGE": "ICU discharge",
    "CHART": "Charted",
    "OUTPUT": "Output",
    "DATETIME": "Charted date",
    "INPUT": "Infusion or input",
    "INPUT_START": "Infusion started",
    "INGREDIENT": "Input ingredient",
    "ICU_PROCEDURE": "ICU procedure",
    "ICU_PROCEDURE_START": "ICU procedure started",
    "ED_ARRIVAL": "Emergency department arrival",
    "ED_DISPOSITION": "Emergency department disposition",
    "ED_TRIAGE": "ED triage",
    "ED_VITAL": "ED vital signs",
    "ED_MEDRECON": "Home medication (ED reconciliation)",
    "ED_PYXIS": "ED medication dispensed",
    "NOTE": "Clinical note",
    ICD9CM: "ICD-9-CM diagnosis",
    ICD10CM: "ICD-10-CM diagnosis",
    ICD9PROC: "ICD-9-CM procedure",
    ICD10PCS: "ICD-10-PCS procedure",
}
ITEM_PREFIXES = {"CHART", "OUTPUT", "DATETIME", "INPUT", "INPUT_START", "INGREDIENT",
                 "ICU_PROCEDURE", "ICU_PROCEDURE_START"}


def _generic(prefix: str, parts: list[str]) -> str:
    name = PREFIX_NAMES.get(prefix, prefix.replace("_", " ").capitalize())
    return f"{name}: {', '.join(parts)}" if parts else name


def describe(code: str, dictionaries: Dictionaries) -> tuple[str, list[str]]:
    """Description and parent codes of one code.

    >>> describe("ICD10CM//I50.9", Dictionaries())[0]
    'Heart failure, unspecified'
    """
    prefix, *parts = code.split(S.CODE_SEPARATOR)
    if prefix in ICD_VOCABS and parts:
        body = parts[0]
        up = parent(prefix, body)
        title = dictionaries.icd.get(prefix, {}).get(body) or package_icd_title(prefix, body)
        return title or _generic(prefix, parts), [f"{prefix}//{up}"] if up else []
    if prefix in ("LAB", "LAB_FLAG") and parts:
        label = dictionaries.labitems.get(parts[0])
        rest = parts[1:]
        parents = [f"LAB//{parts[0]}"] if len(parts) > 1 and prefix == "LAB" else []
        if label is None:
            return _generic(prefix, parts), parents
        if prefix == "LAB_FLAG":
            return f"{label}: flagged {' '.join(rest)}".strip(), [f"LAB//{parts[0]}"]
        return (f"{label} [{rest[0]}]" if rest else label), parents
    if prefix in ITEM_PREFIXES and parts:
        label = dictionaries.items.get(parts[0])
        parents = [f"{prefix}//{parts[0]}"] if len(parts) > 1 else []
        if label is None:
            return _generic(prefix, parts), parents
        head = PREFIX_NAMES[prefix] if prefix != "CHART" else ""
        text = f"{head}: {label}" if head else label
        return (f"{text} [{parts[1]}]" if len(parts) > 1 else text), parents
    if prefix == "HCPCS" and parts and parts[0] in dictionaries.hcpcs:
        return dictionaries.hcpcs[parts[0]], []
    if prefix == "DRG" and len(parts) == 2 and f"{parts[0]}//{parts[1]}" in dictionaries.drg:
        return f"DRG: {dictionaries.drg[f'{parts[0]}//{parts[1]}']}", []
    return _generic(prefix, parts), []


def build_code_metadata(code_counts: pl.DataFrame, dictionaries: Dictionaries) -> pl.DataFrame:
    """``code, description, parent_codes, n_events`` for every code in the data and every ICD ancestor
    of one (with ``n_events`` 0), sorted by code."""
    counts = dict(code_counts.select(S.CODE, S.CODE_COUNT).iter_rows())
    rows: dict[str, tuple[str, list[str]]] = {}
    pending = sorted(counts)
    while pending:
        code = pending.pop()
        if code in rows:
            continue
        rows[code] = describe(code, dictionaries)
        pending.extend(p for p in rows[code][1] if p not in rows and p.split("//")[0] in ICD_VOCABS)
    codes = sorted(rows)
    return pl.DataFrame(
        {
            S.CODE: codes,
            S.DESCRIPTION: [rows[c][0] for c in codes],
            S.PARENT_CODES: [rows[c][1] for c in codes],
            S.CODE_COUNT: [counts.get(c, 0) for c in codes],
        },
        schema={S.CODE: pl.String, S.DESCRIPTION: pl.String, S.PARENT_CODES: pl.List(pl.String),
                S.CODE_COUNT: pl.Int64},
    )
