"""hosp/ tables: patients, admissions, transfers, services, billing codes and medications."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from ehrpredict.ingest.synth import world as W
from ehrpredict.ingest.synth.catalog import (
    CONDITIONS,
    DNR_CODE,
    DRUGS,
    ICU_CODE,
    ICU_UNITS,
    LAB_CODES,
    PROCEDURES,
    REASON,
    REASONS,
    SECONDARY,
    SHOCK_CODE,
    Drug,
    Icd,
)
from ehrpredict.ingest.synth.encounters import DIRECT, ED_ADMIT, ELECTIVE, OUT, Chunk
from ehrpredict.ingest.synth.writer import or_null, table_frame

Tables = Iterator[tuple[str, pl.DataFrame]]
ADMISSION_TYPES = {
    ED_ADMIT: (("EW EMER.", 0.6), ("OBSERVATION ADMIT", 0.25), ("EU OBSERVATION", 0.15)),
    DIRECT: (("URGENT", 0.6), ("DIRECT EMER.", 0.25), ("DIRECT OBSERVATION", 0.15)),
    ELECTIVE: (("ELECTIVE", 0.5), ("SURGICAL SAME DAY ADMISSION", 0.5)),
}
LOCATIONS = {ED_ADMIT: ("EMERGENCY ROOM",), DIRECT: ("PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL",
                                                     "CLINIC REFERRAL"), ELECTIVE: ("PHYSICIAN REFERRAL",)}
DISCHARGE_LOCATIONS = ("HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB", "HOSPICE")


def hosp_tables(rng: np.random.Generator, c: Chunk) -> Tables:
    yield "hosp/patients", _patients(c)
    adm = np.flatnonzero(c.enc.admitted)
    yield "hosp/admissions", _admissions(rng, c, adm)
    yield "hosp/transfers", _transfers(rng, c, adm)
    yield "hosp/services", table_frame("hosp/services", {
        "subject_id": c.subject[adm], "hadm_id": c.hadm_id[adm], "transfertime": c.enc.admit[adm],
        "curr_service": [REASONS[r].service for r in c.enc.reason[adm]]}, times=("transfertime",))
    yield "hosp/diagnoses_icd", _diagnoses(rng, c, adm)
    yield "hosp/procedures_icd", _procedures(rng, c, adm)
    yield "hosp/drgcodes", table_frame("hosp/drgcodes", {
        "subject_id": c.subject[adm], "hadm_id": c.hadm_id[adm], "drg_type": ["HCFA"] * len(adm),
        "drg_code": [REASONS[r].drg for r in c.enc.reason[adm]],
        "description": [REASONS[r].drg_text for r in c.enc.reason[adm]]})
    yield from _medications(rng, c, adm)


def _patients(c: Chunk) -> pl.DataFrame:
    p = c.patients
    death = c.enc.death_time
    return table_frame("hosp/patients", {
        "subject_id": p.subject_id, "gender": np.where(p.female, "F", "M"), "anchor_age": p.anchor_age,
        "anchor_year": p.anchor_year, "anchor_year_group": np.array(W.YEAR_GROUPS)[p.year_group],
        "dod": death}, dates=("dod",))


def _pick(rng: np.random.Generator, options: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    p = np.array([w for _, w in options])
    return np.array([o for o, _ in options])[rng.choice(len(options), n, p=p / p.sum())]


def _admissions(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> pl.DataFrame:
    e, p = c.enc, c.patients
    n = len(adm)
    kind = e.kind[adm]
    adm_type = np.empty(n, dtype=object)
    location = np.empty(n, dtype=object)
    for k, options in ADMISSION_TYPES.items():
        sel = kind == k
        adm_type[sel] = _pick(rng, options, int(sel.sum()))
        location[sel] = np.array(LOCATIONS[k])[rng.integers(0, len(LOCATIONS[k]), int(sel.sum()))]
    pid = e.pid[adm]
    age = (e.admit[adm] - p.birth[pid]) / W.YEAR
    frail = p.frailty[pid] + (age - 60) / 20
    # Sicker, older, frailer patients go to nursing facilities more often than home.
    weights = np.stack([np.full(n, 1.0), np.full(n, 0.8), np.exp(frail - 1.0), np.full(n, 0.15),
                        0.05 * np.exp(frail)], axis=1)
    dest = (np.cumsum(weights, 1) < rng.random(n)[:, None] * weights.sum(1)[:, None]).sum(1)
    discharge = np.where(e.died[adm], "DIED", np.array(DISCHARGE_LOCATIONS)[dest])
    insurance = np.where(age >= 65, "Medicare", np.where(rng.random(n) < 0.25, "Medicaid", "Other"))
    marital = p.marital[pid]
    via_ed = e.has_ed[adm]
    return table_frame("hosp/admissions", {
        "subject_id": c.subject[adm], "hadm_id": c.hadm_id[adm], "admittime": e.admit[adm],
        "dischtime": e.disch[adm], "deathtime": np.where(e.died[adm], e.disch[adm], -1),
        "admission_type": adm_type, "admission_location": location, "discharge_location": discharge,
        "insurance": insurance, "language": np.where(p.english[pid], "ENGLISH", "?"),
        "marital_status": or_null(marital >= 0, np.array(W.MARITAL)[np.maximum(marital, 0)]),
        "race": np.array([r for r, _ in W.RACES])[p.race[pid]],
        "edregtime": np.where(via_ed, e.ed_in[adm], -1), "edouttime": np.where(via_ed, e.ed_out[adm], -1),
        "hospital_expire_flag": e.died[adm].astype(np.int64),
    }, times=("admittime", "dischtime", "deathtime", "edregtime", "edouttime"))


def _transfers(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> pl.DataFrame:
    """ED → ward → ICU → ward → discharge, as consecutive transfer rows."""
    e = c.enc
    rows: dict[str, list[object]] = {k: [] for k in ("subject_id", "hadm_id", "transfer_id", "eventtype",
                                                     "careunit", "intime", "outtime")}
    unit_of = rng.integers(0, 5, len(adm))

    def add(i: int, event: str, unit: str | None, start: int, end: int, admitted: bool = True) -> None:
        rows["subject_id"].append(int(c.subject[i]))
        rows["hadm_id"].append(int(c.hadm_id[i]) if admitted else None)
        rows["transfer_id"].append(30_000_000 + c.index * 1_000_000 + len(rows["eventtype"]))
        rows["eventtype"].append(event)
        rows["careunit"].append(unit)
        rows["intime"].append(start)
        rows["outtime"].append(end)

    for j, i in enumerate(adm):
        ward = REASONS[e.reason[i]].ward
        if e.has_ed[i]:
            add(i, "ED", "Emergency Department", int(e.ed_in[i]), int(e.ed_out[i]))
        first = "admit"
        if e.icu[i]:
            if e.icu_in[i] - e.admit[i] > 2 * W.HOUR:
                add(i, first, ward, int(e.admit[i]), int(e.icu_in[i]))
                first = "transfer"
            add(i, first, ICU_UNITS[unit_of[j]], int(e.icu_in[i]), int(e.icu_out[i]))
            if e.icu_out[i] < e.disch[i]:
                add(i, "transfer", ward, int(e.icu_out[i]), int(e.disch[i]))
        else:
            add(i, first, ward, int(e.admit[i]), int(e.disch[i]))
        add(i, "discharge", None, int(e.disch[i]), -1)
    # As in MIMIC-IV, ED visits that end without admission have an ED transfer row too (no hadm_id):
    # writing ED rows for admitted patients only would tell an ED-triage model who gets admitted.
    for i in np.flatnonzero(e.has_ed & ~e.admitted):
        add(int(i), "ED", "Emergency Department", int(e.ed_in[i]), int(e.ed_out[i]), admitted=False)
    return table_frame("hosp/transfers", rows, times=("intime", "outtime"))


def _code_matrix(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> tuple[np.ndarray, list[Icd]]:
    """Which secondary diagnosis codes each admission gets (columns: conditions, events, long tail)."""
    e = c.enc
    n = len(adm)
    sev = np.clip(e.severity[adm], 0, None)
    real = e.real[adm]
    cols: list[tuple[Icd, np.ndarray]] = [(cond.icd, e.cond[adm, i]) for i, cond in enumerate(CONDITIONS)]
    cols += [(LAB_CODES[name], real[:, OUT[f"{name}_48h"]] & (rng.random(n) < 0.8)) for name in LAB_CODES]
    cols += [
        (ICU_CODE, e.icu[adm] & (rng.random(n) < 0.6)),
        (SHOCK_CODE, (e.reason[adm] == REASON["sepsis"]) & (e.severity[adm] > 1.0)),
        (DNR_CODE, e.died[adm] & (rng.random(n) < 0.6)),
    ]
    scale = 1.0 + 0.5 * sev + 0.6 * e.icu[adm]
    cols += [(icd, rng.random(n) < np.minimum(share * 2.2 * scale, 0.9)) for icd, share in SECONDARY]
    return np.stack([m for _, m in cols], axis=1), [icd for icd, _ in cols]


def _billing_frame(table: str, c: Chunk, adm: np.ndarray, which: np.ndarray, codes: list[Icd],
                   principal: list[Icd] | None, extra: dict[str, object] | None = None) -> pl.DataFrame:
    e = c.enc
    rows, cols = np.nonzero(which)
    icd10 = e.icd10[adm]
    all_codes = [*(principal or []), *codes]
    offset = 0
    if principal is not None:
        rows = np.concatenate([np.arange(len(adm)), rows])
        cols = np.concatenate([np.arange(len(adm)), cols + len(adm)])
        offset = 0
    order = np.lexsort((np.arange(len(rows)), rows))
    rows, cols = rows[order], cols[order]
    seq = np.arange(len(rows)) - np.searchsorted(rows, rows) + 1
    ten = icd10[rows]
    code = [all_codes[k].icd10 if t else all_codes[k].icd9 for k, t in zip(cols + offset, ten, strict=True)]
    data: dict[str, object] = {"subject_id": c.subject[adm][rows], "hadm_id": c.hadm_id[adm][rows],
                               "seq_num": seq, "icd_code": code, "icd_version": np.where(ten, 10, 9)}
    for k, v in (extra or {}).items():
        data[k] = np.asarray(v)[rows]
    return table_frame(table, data, dates=("chartdate",) if "chartdate" in data else ())  # type: ignore[arg-type]


def _diagnoses(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> pl.DataFrame:
    which, codes = _code_matrix(rng, c, adm)
    principal = [REASONS[r].icd for r in c.enc.reason[adm]]
    return _billing_frame("hosp/diagnoses_icd", c, adm, which, codes, principal)


def _procedures(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> pl.DataFrame:
    e = c.enc
    n = len(adm)
    real = e.real[adm]
    names = list(PROCEDURES)
    which = np.stack([
        e.icu[adm] & (e.severity[adm] > 0.8) & (rng.random(n) < 0.6),
        e.icu[adm] & (rng.random(n) < 0.5),
        real[:, OUT["aki_48h"]] & e.cond[adm, 3] & (rng.random(n) < 0.4),
        real[:, OUT["anemia_48h"]] & (rng.random(n) < 0.5),
        e.reason[adm] == REASON["knee osteoarthritis"],
        (e.reason[adm] == REASON["chest pain"]) & e.cond[adm, 7] & (rng.random(n) < 0.5),
    ], axis=1)
    chartdate = e.admit[adm] + ((e.disch[adm] - e.admit[adm]) * rng.random(n) * 0.5).astype(np.int64)
    return _billing_frame("hosp/procedures_icd", c, adm, which, [PROCEDURES[k] for k in names], None,
                          {"chartdate": chartdate})


OUTCOME_TRIGGERS = ("hyperkalemia", "hypoglycemia")


def _medications(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> Tables:
    """prescriptions, pharmacy, poe (one order per drug) and emar (daily administrations, first 5 days)."""
    e = c.enc
    n = len(adm)
    cond_col = {cond.name: i for i, cond in enumerate(CONDITIONS)}
    infection = np.isin(e.reason[adm], [REASON[r] for r in ("sepsis", "pneumonia", "urinary tract infection",
                                                             "cellulitis")])
    real = e.real[adm]
    triggers = {"all": np.ones(n, dtype=bool), "infection": infection,
                "hyperkalemia": real[:, OUT["hyperkalemia_48h"]], "hypoglycemia": real[:, OUT["hypoglycemia_48h"]]}
    which = np.stack([
        triggers[d.trigger] if d.trigger in triggers else e.cond[adm, cond_col[d.trigger]] for d in DRUGS
    ], axis=1) & (rng.random((n, len(DRUGS))) < 0.85)
    rows, cols = np.nonzero(which)
    a = adm[rows]
    start = e.admit[a] + rng.integers(W.HOUR, 6 * W.HOUR, len(rows))
    start = np.minimum(start, e.admit[a] + (e.disch[a] - e.admit[a]) // 2)
    # A drug that treats a drawn lab outcome (kayexalate for hyperkalemia, dextrose for hypoglycemia)
    # is given after that outcome's window (admission + 24 h, + 72 h], never before it: treatment
    # before the abnormal value would leak the outcome into features at admission + 24 h.
    treats_outcome = np.array([DRUGS[k].trigger in OUTCOME_TRIGGERS for k in cols], dtype=bool)
    after_window = e.admit[a] + 3 * W.DAY + W.HOUR
    start = np.where(treats_outcome, after_window, start)
    keep = ~treats_outcome | (after_window < e.disch[a])
    rows, cols, a, start = rows[keep], cols[keep], a[keep], start[keep]
    drug = [DRUGS[k] for k in cols]
    pharmacy_id = 1_000_000_000 + c.index * 10_000_000 + np.arange(len(rows))
    poe_id = [f"{s}-{k + 1}" for s, k in zip(c.subject[a], np.arange(len(rows)), strict=True)]
    common = {"subject_id": c.subject[a], "hadm_id": c.hadm_id[a], "pharmacy_id": pharmacy_id}
    yield "hosp/prescriptions", table_frame("hosp/prescriptions", {
        **common, "poe_id": poe_id, "starttime": start, "stoptime": e.disch[a], "drug_type": ["MAIN"] * len(rows),
        "drug": [d.name for d in drug], "dose_val_rx": [d.dose for d in drug],
        "dose_unit_rx": [d.unit for d in drug], "route": [d.route for d in drug]},
        times=("starttime", "stoptime"))
    yield "hosp/pharmacy", table_frame("hosp/pharmacy", {
        **common, "poe_id": poe_id, "starttime": start, "stoptime": e.disch[a], "medication": [d.name for d in drug],
        "status": ["Discontinued"] * len(rows), "entertime": start - 600, "route": [d.route for d in drug],
        "frequency": [d.frequency for d in drug]}, times=("starttime", "stoptime", "entertime"))
    yield "hosp/poe", table_frame("hosp/poe", {
        "poe_id": poe_id, "poe_seq": np.arange(len(rows)) + 1, "subject_id": c.subject[a], "hadm_id": c.hadm_id[a],
        "ordertime": start - 600, "order_type": ["Medications"] * len(rows), "transaction_type": ["New"] * len(rows),
        "order_status": ["Inactive"] * len(rows)}, times=("ordertime",))
    yield "hosp/emar", _emar(c, a, start, drug, pharmacy_id, poe_id)


def _emar(c: Chunk, a: np.ndarray, start: np.ndarray, drug: list[Drug], pharmacy_id: np.ndarray,
          poe_id: list[str]) -> pl.DataFrame:
    e = c.enc
    days = np.clip((e.disch[a] - start) // W.DAY, 0, 4) + 1
    days = np.where([d.frequency == "ONCE" for d in drug], 1, days)
    r = np.repeat(np.arange(len(a)), days)
    k = np.arange(len(r)) - np.repeat(np.cumsum(days) - days, days)
    when = start[r] + k * W.DAY
    ok = when < e.disch[a][r]
    r, k, when = r[ok], k[ok], when[ok]
    seq = np.arange(len(r)) + 1
    return table_frame("hosp/emar", {
        "subject_id": c.subject[a][r], "hadm_id": c.hadm_id[a][r],
        "emar_id": [f"{s}-{q + c.index * 10_000_000}" for s, q in zip(c.subject[a][r], seq, strict=True)],
        "emar_seq": seq, "poe_id": np.asarray(poe_id, dtype=object)[r], "pharmacy_id": pharmacy_id[r],
        "charttime": when, "medication": [drug[i].name for i in r], "event_txt": ["Administered"] * len(r),
        "scheduletime": when, "storetime": when + 300}, times=("charttime", "scheduletime", "storetime"))
