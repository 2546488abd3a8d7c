"""icu/ tables: ICU stays with charted vital-sign trajectories, fluids, vasopressors, urine output, ventilation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from ehrpredict.ingest.synth import world as W
from ehrpredict.ingest.synth.catalog import COND, ICU_UNITS, REASON
from ehrpredict.ingest.synth.encounters import Chunk
from ehrpredict.ingest.synth.writer import table_frame

MAX_POINTS = 120
GCS_TEXT = {
    220739: ("No Response", "To Pain", "To Speech", "Spontaneously"),
    223900: ("No Response-ETT", "Incomprehensible sounds", "Inappropriate Words", "Confused", "Oriented"),
    223901: ("No response", "Abnormal extension", "Abnormal Flexion", "Flex-withdraws", "Localizes Pain",
             "Obeys Commands"),
}


def icu_tables(rng: np.random.Generator, c: Chunk) -> Iterator[tuple[str, pl.DataFrame]]:
    e = c.enc
    s = np.flatnonzero(e.icu)
    ids = {"subject_id": c.subject[s], "hadm_id": c.hadm_id[s], "stay_id": c.icu_stay_id[s]}
    unit = np.array(ICU_UNITS)[rng.integers(0, len(ICU_UNITS), len(s))]
    yield "icu/icustays", table_frame("icu/icustays", {
        **ids, "first_careunit": unit, "last_careunit": unit, "intime": e.icu_in[s], "outtime": e.icu_out[s],
        "los": np.round((e.icu_out[s] - e.icu_in[s]) / W.DAY, 6)}, times=("intime", "outtime"))
    yield "icu/chartevents", _chartevents(rng, c, s)
    yield from _fluids(rng, c, s)


def _timepoints(rng: np.random.Generator, c: Chunk, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hourly for the first 12 h of a stay, then every 2 h: (stay row, point number, charttime)."""
    e = c.enc
    length_h = (e.icu_out[s] - e.icu_in[s]) / W.HOUR
    count = np.clip(np.where(length_h <= 12, length_h, 12 + (length_h - 12) / 2).astype(np.int64), 1, MAX_POINTS)
    r = np.repeat(np.arange(len(s)), count)
    k = np.arange(len(r)) - np.repeat(np.cumsum(count) - count, count)
    hours = np.where(k < 12, k, 12 + 2 * (k - 12)).astype(np.int64)
    t = e.icu_in[s][r] + hours * W.HOUR + rng.integers(0, 20 * 60, len(r))
    return r, k, np.minimum(t, e.icu_out[s][r])


def _chartevents(rng: np.random.Generator, c: Chunk, s: np.ndarray) -> pl.DataFrame:
    e = c.enc
    r, k, t = _timepoints(rng, c, s)
    n = len(r)
    sev = e.severity[s][r]
    # How far into the stay: patients who die drift towards shock over their stay.
    frac = (t - e.icu_in[s][r]) / np.maximum(e.icu_out[s][r] - e.icu_in[s][r], 1)
    dying = e.died[s][r] * frac
    infected = np.isin(e.reason[s][r], [REASON["sepsis"], REASON["pneumonia"]])
    afib = e.cond[s][r, COND["afib"]]
    hr = 82 + 7 * sev + 12 * afib + 25 * dying + 9 * rng.standard_normal(n)
    sbp = 124 - 6 * np.clip(sev, 0, None) - 35 * dying + 14 * rng.standard_normal(n)
    dbp = 0.55 * sbp + 6 * rng.standard_normal(n)
    rr = 18 + 2 * sev + 8 * dying + 3 * rng.standard_normal(n)
    spo2 = np.minimum(100, 97 - 1.2 * np.clip(sev, 0, None) - 8 * dying + 1.5 * rng.standard_normal(n))
    temp = 98.4 + 1.2 * infected * np.exp(-frac * 2) + 0.6 * rng.standard_normal(n)
    values = {220045: hr, 220179: sbp, 220180: dbp, 220181: (sbp + 2 * dbp) / 3, 220210: rr, 220277: spo2}
    every4 = k % 4 == 0
    frames = []
    for itemid, v in values.items():
        frames.append((itemid, np.arange(n), np.round(np.clip(v, 1, None)).astype(np.int64).astype(float), None))
    four = np.flatnonzero(every4)
    frames.append((223761, four, np.round(temp[four], 1), None))
    gcs_loss = np.clip(sev[four] - 0.5 + 2.5 * dying[four] + 0.7 * rng.standard_normal(len(four)), 0, None)
    for itemid, words in GCS_TEXT.items():
        score = np.clip(len(words) - np.round(gcs_loss * len(words) / 6), 1, len(words)).astype(np.int64)
        frames.append((itemid, four, score.astype(float), np.array(words)[score - 1]))
    first = np.flatnonzero(k == 0)
    weight = 72 + 12 * ~c.patients.female[e.pid[s][r[first]]] + 18 * e.cond[s][r[first], COND["obesity"]]
    frames.append((226512, first, np.round(weight + 8 * rng.standard_normal(len(first)), 1), None))
    units = {220045: "bpm", 220179: "mmHg", 220180: "mmHg", 220181: "mmHg", 220210: "insp/min", 220277: "%",
             223761: "°F", 226512: "kg"}
    parts = []
    for itemid, at, v, text in frames:
        parts.append(pl.DataFrame({
            "row": at, "itemid": np.full(len(at), itemid),
            "value": text if text is not None else np.char.mod("%g", v), "valuenum": v,
            "valueuom": [units.get(itemid)] * len(at)}, schema_overrides={"valueuom": pl.String}))
    long = pl.concat(parts).sort("row", "itemid", maintain_order=True)
    row = long["row"].to_numpy()
    return table_frame("icu/chartevents", {
        "subject_id": c.subject[s][r][row], "hadm_id": c.hadm_id[s][r][row], "stay_id": c.icu_stay_id[s][r][row],
        "charttime": t[row], "storetime": t[row] + rng.integers(60, 30 * 60, len(row)),
        "itemid": long["itemid"], "value": long["value"], "valuenum": long["valuenum"],
        "valueuom": long["valueuom"], "warning": np.zeros(len(row), dtype=np.int64)}, times=("charttime", "storetime"))


def _fluids(rng: np.random.Generator, c: Chunk, s: np.ndarray) -> Iterator[tuple[str, pl.DataFrame]]:
    """Saline boluses (all), norepinephrine (shock), hourly-ish urine output, invasive ventilation."""
    e = c.enc
    n = len(s)
    start, end = e.icu_in[s], e.icu_out[s]
    span = np.maximum(end - start, W.HOUR)
    bolus = np.repeat(np.arange(n), 2)
    b_start = start[bolus] + (rng.random(len(bolus)) * 0.5 * span[bolus]).astype(np.int64)
    b_end = np.minimum(b_start + W.HOUR, end[bolus])
    shock = np.flatnonzero(e.severity[s] > 1.2)
    p_end = np.minimum(start[shock] + rng.integers(6, 48, len(shock)) * W.HOUR, end[shock])
    p_start = np.minimum(start[shock] + W.HOUR, p_end)
    rows = np.concatenate([bolus, shock])
    starts, ends = np.concatenate([b_start, p_start]), np.concatenate([b_end, p_end])
    amounts = np.concatenate([rng.choice([500.0, 1000.0], len(bolus)),
                              np.round((p_end - p_start) / W.HOUR * 0.5 * rng.uniform(0.5, 2, len(shock)), 3)])
    items = np.concatenate([np.full(len(bolus), 225158), np.full(len(shock), 221906)])
    order = np.lexsort((starts, rows))
    rows, starts, ends, amounts, items = rows[order], starts[order], ends[order], amounts[order], items[order]
    yield "icu/inputevents", table_frame("icu/inputevents", {
        "subject_id": c.subject[s][rows], "hadm_id": c.hadm_id[s][rows], "stay_id": c.icu_stay_id[s][rows],
        "starttime": starts, "endtime": ends, "storetime": ends, "itemid": items, "amount": amounts,
        "amountuom": np.where(items == 225158, "ml", "mg"), "statusdescription": ["FinishedRunning"] * len(rows)},
        times=("starttime", "endtime", "storetime"))
    count = np.clip(span // (4 * W.HOUR), 1, 30)
    o = np.repeat(np.arange(n), count)
    k = np.arange(len(o)) - np.repeat(np.cumsum(count) - count, count)
    when = start[o] + (k + 1) * 4 * W.HOUR
    when = np.minimum(when, end[o])
    ckd = e.cond[s][o, COND["ckd"]]
    volume = np.round(np.clip(np.exp(np.log(220) - 0.5 * ckd + 0.5 * rng.standard_normal(len(o))), 5, 2000))
    yield "icu/outputevents", table_frame("icu/outputevents", {
        "subject_id": c.subject[s][o], "hadm_id": c.hadm_id[s][o], "stay_id": c.icu_stay_id[s][o],
        "charttime": when, "storetime": when + 600, "itemid": np.full(len(o), 226559), "value": volume,
        "valueuom": ["ml"] * len(o)}, times=("charttime", "storetime"))
    vent = np.flatnonzero(e.severity[s] > 1.0)
    v_start = start[vent] + 30 * 60
    v_end = np.maximum(np.minimum(v_start + rng.integers(12, 120, len(vent)) * W.HOUR, end[vent]), v_start + 60)
    yield "icu/procedureevents", table_frame("icu/procedureevents", {
        "subject_id": c.subject[s][vent], "hadm_id": c.hadm_id[s][vent], "stay_id": c.icu_stay_id[s][vent],
        "starttime": v_start, "endtime": v_end, "storetime": v_end, "itemid": np.full(len(vent), 225792),
        "value": (v_end - v_start) // 60, "valueuom": ["min"] * len(vent),
        "ordercategoryname": ["Ventilation"] * len(vent), "statusdescription": ["FinishedRunning"] * len(vent)},
        times=("starttime", "endtime", "storetime"))
