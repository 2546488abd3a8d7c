"""The d_* dictionary tables for exactly the codes the generator can emit, and the oracle file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.ingest.synth import catalog as K
from ehrpredict.ingest.synth.encounters import OUTCOMES, Chunk
from ehrpredict.ingest.synth.world import DAY
from ehrpredict.ingest.synth.writer import table_frame


def _diagnosis_codes() -> list[K.Icd]:
    codes = [c.icd for c in K.CONDITIONS] + [r.icd for r in K.REASONS] + [r.icd for r in K.ED_ONLY_REASONS]
    codes += [icd for icd, _ in K.SECONDARY] + [K.ICU_CODE, K.SHOCK_CODE, K.DNR_CODE, *K.LAB_CODES.values()]
    return codes


def _icd_frame(table: str, codes: list[K.Icd]) -> pl.DataFrame:
    rows = {(x.icd9, 9, x.title9) for x in codes} | {(x.icd10, 10, x.title10) for x in codes}
    ordered = sorted(rows, key=lambda r: (r[1], r[0]))
    return table_frame(table, {"icd_code": [r[0] for r in ordered], "icd_version": [r[1] for r in ordered],
                               "long_title": [r[2] for r in ordered]})


def dictionary_tables() -> list[tuple[str, pl.DataFrame]]:
    items = (*K.CHART_ITEMS, *K.INPUT_ITEMS, *K.OUTPUT_ITEMS, *K.PROCEDURE_ITEMS)
    return [
        ("hosp/d_icd_diagnoses", _icd_frame("hosp/d_icd_diagnoses", _diagnosis_codes())),
        ("hosp/d_icd_procedures", _icd_frame("hosp/d_icd_procedures", list(K.PROCEDURES.values()))),
        ("hosp/d_labitems", table_frame("hosp/d_labitems", {
            "itemid": [x.itemid for x in K.LABS], "label": [x.label for x in K.LABS],
            "fluid": ["Blood"] * len(K.LABS), "category": [x.category for x in K.LABS]})),
        ("icu/d_items", table_frame("icu/d_items", {
            "itemid": [x.itemid for x in items], "label": [x.label for x in items],
            "abbreviation": [x.abbreviation for x in items], "linksto": [x.linksto for x in items],
            "category": [x.category for x in items], "unitname": [x.unit or None for x in items],
            "param_type": [x.param_type for x in items]})),
    ]


ORACLE_SCHEMA = pa.schema([
    ("subject_id", pa.int64()), ("hadm_id", pa.int64()), ("stay_id", pa.int64()), ("outcome", pa.string()),
    ("probability", pa.float64()), ("realized", pa.bool_()), (S.PREDICTION_TIME, pa.timestamp("us")),
    ("anchor", pa.string()),
])
ED = {"ed_hospitalization", "ed_critical_outcome", "ed_revisit_72h"}


def _anchor(name: str) -> str:
    if name in ("in_hospital_death", "long_los_7d", "icu_transfer"):
        return "admission"
    if name.endswith("_48h"):
        return "admission+24h"
    if name == "ed_revisit_72h":
        return "ed_departure"
    if name in ED:
        return "ed_triage"
    return "discharge"


def oracle_frame(c: Chunk, with_ed: bool) -> pa.Table:
    """One row per (encounter, outcome) the model drew a probability for."""
    e = c.enc
    times = {"admission": e.admit, "admission+24h": e.admit + DAY, "discharge": e.disch, "ed_triage": e.ed_in,
             "ed_departure": e.ed_out}
    parts = []
    for j, name in enumerate(OUTCOMES):
        if name in ED and not with_ed:
            continue
        rows = np.flatnonzero(~np.isnan(e.prob[:, j]))
        anchor = _anchor(name)
        hadm = pa.array(c.hadm_id[rows], pa.int64(), mask=c.hadm_id[rows] < 0)
        stay = pa.array(c.ed_stay_id[rows] if name in ED else np.zeros(len(rows), np.int64), pa.int64(),
                        mask=np.full(len(rows), name not in ED))
        parts.append(pa.table({
            "subject_id": c.subject[rows], "hadm_id": hadm, "stay_id": stay, "outcome": [name] * len(rows),
            "probability": e.prob[rows, j], "realized": e.real[rows, j],
            S.PREDICTION_TIME: pa.array(times[anchor][rows] * 1_000_000, pa.int64()).cast(pa.timestamp("us")),
            "anchor": [anchor] * len(rows),
        }, schema=ORACLE_SCHEMA))
    return pa.concat_tables(parts)


class OracleWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, ORACLE_SCHEMA)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
