"""ed/ tables (MIMIC-IV-ED layout): stays, triage, vital signs, home medications, dispensing, diagnoses."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from ehrpredict.ingest.synth import world as W
from ehrpredict.ingest.synth.catalog import CONDITIONS, DRUGS, ED_ONLY_REASONS, REASON, REASONS, Icd
from ehrpredict.ingest.synth.encounters import Chunk
from ehrpredict.ingest.synth.writer import or_null, table_frame

COUGH = ED_ONLY_REASONS[4].icd


def _reason_icd(c: Chunk, s: np.ndarray) -> list[Icd]:
    """The ED's working diagnosis. Pneumonia is only a cough at the ED: the chest film tells (radiology notes)."""
    e = c.enc
    out = []
    for i in s:
        if not e.admitted[i]:
            out.append(ED_ONLY_REASONS[e.reason[i]].icd)
        elif e.reason[i] == REASON["pneumonia"]:
            out.append(COUGH)
        else:
            out.append(REASONS[e.reason[i]].icd)
    return out


def acuity(severity: np.ndarray) -> np.ndarray:
    """ESI level 1 (most urgent) to 5 from acute severity."""
    return np.asarray(5 - np.digitize(severity, [-1.6, -0.6, 0.8, 2.2]))


def ed_tables(rng: np.random.Generator, c: Chunk) -> Iterator[tuple[str, pl.DataFrame]]:
    e, p = c.enc, c.patients
    s = np.flatnonzero(e.has_ed)
    n = len(s)
    ids = {"subject_id": c.subject[s], "stay_id": c.ed_stay_id[s]}
    sev = e.severity[s]
    transport = np.where(sev + 0.5 * rng.standard_normal(n) > 0.5, "AMBULANCE", "WALK IN")
    home = np.where(rng.random(n) < 0.95, "HOME", "LEFT AGAINST MEDICAL ADVICE")
    disposition = np.where(e.admitted[s], "ADMITTED", home)
    yield "ed/edstays", table_frame("ed/edstays", {
        "subject_id": c.subject[s], "hadm_id": or_null(e.admitted[s], c.hadm_id[s]),
        "stay_id": c.ed_stay_id[s], "intime": e.ed_in[s], "outtime": e.ed_out[s],
        "gender": np.where(p.female[e.pid[s]], "F", "M"),
        "race": np.array([r for r, _ in W.RACES])[p.race[e.pid[s]]],
        "arrival_transport": transport, "disposition": disposition}, times=("intime", "outtime"))
    complaint = [REASONS[e.reason[i]].complaint if e.admitted[i] else ED_ONLY_REASONS[e.reason[i]].complaint
                 for i in s]
    vit = _vitals(rng, sev, e.pneumonia[s] | np.isin(e.reason[s], [REASON["sepsis"]]) & e.admitted[s])
    yield "ed/triage", table_frame("ed/triage", {
        **ids, **{k: v[0] for k, v in vit.items()}, "pain": rng.integers(0, 11, n).astype(str),
        "acuity": acuity(sev), "chiefcomplaint": complaint})
    sets = rng.integers(1, 4, n)
    r = np.repeat(np.arange(n), sets)
    k = np.arange(len(r)) - np.repeat(np.cumsum(sets) - sets, sets)
    dur = e.ed_out[s] - e.ed_in[s]
    when = e.ed_in[s][r] + ((k + 1) * dur[r] / (sets[r] + 1)).astype(np.int64)
    vit2 = _vitals(rng, sev[r], np.zeros(len(r), dtype=bool))
    yield "ed/vitalsign", table_frame("ed/vitalsign", {
        "subject_id": c.subject[s][r], "stay_id": c.ed_stay_id[s][r], "charttime": when,
        **{name: v[0] for name, v in vit2.items()}, "pain": rng.integers(0, 11, len(r)).astype(str)},
        times=("charttime",))
    yield from _medications(rng, c, s)
    icd = _reason_icd(c, s)
    ten = e.icd10[s]
    yield "ed/diagnosis", table_frame("ed/diagnosis", {
        **ids, "seq_num": np.ones(n, dtype=np.int64),
        "icd_code": [x.icd10 if t else x.icd9 for x, t in zip(icd, ten, strict=True)],
        "icd_version": np.where(ten, 10, 9),
        "icd_title": [x.title10 if t else x.title9 for x, t in zip(icd, ten, strict=True)]})


def _vitals(rng: np.random.Generator, sev: np.ndarray, febrile: np.ndarray) -> dict[str, tuple[np.ndarray]]:
    n = len(sev)
    sbp = np.round(130 - 8 * np.clip(sev, 0, None) + 18 * rng.standard_normal(n))
    return {
        "temperature": (np.round(98.2 + 1.8 * febrile + 0.5 * rng.standard_normal(n), 1),),
        "heartrate": (np.round(84 + 8 * sev + 12 * rng.standard_normal(n)),),
        "resprate": (np.round(17 + 1.5 * np.clip(sev, 0, None) + 2 * rng.standard_normal(n)),),
        "o2sat": (np.round(np.minimum(100, 97.5 - 1.2 * np.clip(sev, 0, None) + 1.5 * rng.standard_normal(n))),),
        "sbp": (sbp,), "dbp": (np.round(0.58 * sbp + 8 * rng.standard_normal(n)),),
    }


def _medications(rng: np.random.Generator, c: Chunk, s: np.ndarray) -> Iterator[tuple[str, pl.DataFrame]]:
    """Home medications reconciled at arrival (from chronic conditions) and medications dispensed in the ED."""
    e = c.enc
    cond_col = {cond.name: i for i, cond in enumerate(CONDITIONS)}
    home = [j for j, d in enumerate(DRUGS) if d.trigger in cond_col]
    which = np.stack([e.cond[s, cond_col[DRUGS[j].trigger]] for j in home], axis=1)
    r, col = np.nonzero(which & (rng.random(which.shape) < 0.9))
    when = e.ed_in[s][r] + rng.integers(15 * 60, 60 * 60, len(r))
    drugs = [DRUGS[home[j]] for j in col]
    yield "ed/medrecon", table_frame("ed/medrecon", {
        "subject_id": c.subject[s][r], "stay_id": c.ed_stay_id[s][r], "charttime": when,
        "name": [d.name for d in drugs], "etcdescription": [d.etc for d in drugs]}, times=("charttime",))
    given = np.where(np.isin(e.reason[s], [REASON["sepsis"], REASON["pneumonia"]]) & e.admitted[s],
                     "CefTRIAXone", "Acetaminophen")
    dur = e.ed_out[s] - e.ed_in[s]
    yield "ed/pyxis", table_frame("ed/pyxis", {
        "subject_id": c.subject[s], "stay_id": c.ed_stay_id[s],
        "charttime": e.ed_in[s] + (dur * rng.uniform(0.2, 0.8, len(s))).astype(np.int64),
        "med_rn": np.ones(len(s), dtype=np.int64),
        "name": given}, times=("charttime",))
