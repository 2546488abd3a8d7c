"""labevents and omr: lab values from chronic conditions, acute severity and the drawn lab outcomes.

Panels are drawn on admission (STAT) and each morning (ROUTINE). The first morning panel always falls in
the outcome window (admission + 24 h, + 72 h] when the stay lasts past 24 h. Inside that window the values
obey the drawn outcome: a drawn hyperkalemia puts one potassium above 5.5 mEq/L; no hyperkalemia keeps every
potassium stored in the window at or below 5.5 (likewise for the other five lab outcomes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from ehrpredict.ingest.synth import world as W
from ehrpredict.ingest.synth.catalog import COND, LAB, LABS
from ehrpredict.ingest.synth.encounters import OUT, Chunk
from ehrpredict.ingest.synth.writer import or_null, table_frame

MAX_PANELS = 12


def _panels(rng: np.random.Generator, c: Chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(admission row, panel number, charttime, storetime) of every lab panel."""
    e = c.enc
    adm = np.flatnonzero(e.admitted)
    los = e.disch[adm] - e.admit[adm]
    n_morning = np.clip((los - 7 * W.HOUR) // W.DAY, 0, MAX_PANELS)
    n_morning = np.where(los > W.DAY, np.maximum(n_morning, 1), 0)
    count = n_morning + 1
    a = np.repeat(adm, count)
    k = np.arange(len(a)) - np.repeat(np.cumsum(count) - count, count)
    admit, disch = e.admit[a], e.disch[a]
    # Panel 1 is squeezed between admission + 24 h and discharge, so short stays still get one.
    room = np.maximum(disch - admit - W.DAY, 0)
    offset = np.where(k == 1, np.minimum(rng.integers(W.HOUR, 6 * W.HOUR, len(a)), 0.45 * room),
                      rng.integers(W.HOUR, 6 * W.HOUR, len(a))).astype(np.int64)
    delay = np.where(k == 1, np.minimum(rng.integers(W.HOUR // 2, 2 * W.HOUR, len(a)), 0.45 * room),
                     rng.integers(W.HOUR // 2, 2 * W.HOUR, len(a))).astype(np.int64)
    chart = np.where(k == 0, admit + rng.integers(W.HOUR // 4, W.HOUR, len(a)), admit + k * W.DAY + offset + 1)
    # Later panels stay inside the stay; panel 1 already does by construction.
    chart = np.where(k == 1, chart, np.minimum(chart, np.maximum(disch - W.HOUR, admit + 60)))
    store = np.where(k == 1, chart + delay + 1, np.minimum(chart + delay + 1, np.maximum(disch, chart + 60)))
    return a, k, chart, store


def _values(rng: np.random.Generator, c: Chunk, a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(panels, labs) values before the outcome constraints."""
    e, p = c.enc, c.patients
    n = len(a)
    cond = e.cond[a].astype(float)
    sev = e.severity[a]
    acute = np.clip(sev, 0, None) * np.exp(-k / 3.0)  # the acute illness fades over the stay
    female = p.female[e.pid[a]].astype(float)

    def noise(sd: float) -> np.ndarray:
        return sd * rng.standard_normal(n)

    ckd, hf, dm, ca = (cond[:, COND[x]] for x in ("ckd", "heart_failure", "diabetes", "cancer"))
    v = np.zeros((n, len(LABS)))  # hematocrit is filled in from hemoglobin later
    creat = np.exp(np.log(0.85) + 0.7 * ckd + 0.15 * (1 - female) + 0.2 * acute + noise(0.15))
    v[:, LAB["Creatinine"]] = creat
    v[:, LAB["Potassium"]] = 4.1 + 0.3 * ckd + 0.1 * acute + noise(0.35)
    sodium = 139.0 - 1.5 * hf - 0.8 * acute + noise(2.5)
    v[:, LAB["Sodium"]] = sodium
    v[:, LAB["Chloride"]] = sodium - 37.0 + noise(2.5)
    v[:, LAB["Bicarbonate"]] = 25.5 - 1.2 * acute - 1.5 * ckd + noise(2.3)
    v[:, LAB["Urea Nitrogen"]] = 15.0 * creat**0.8 * np.exp(noise(0.25))
    v[:, LAB["Glucose"]] = np.exp(np.log(105) + 0.35 * dm + 0.08 * acute + noise(0.2))
    hb = 12.9 - 1.0 * female - 1.1 * ckd - 1.1 * ca - 0.3 * acute + noise(1.1)
    v[:, LAB["Hemoglobin"]] = hb
    v[:, LAB["Platelet Count"]] = np.exp(np.log(235) - 0.15 * acute - 0.25 * ca + noise(0.3))
    v[:, LAB["White Blood Cells"]] = np.exp(np.log(8.0) + 0.2 * acute + noise(0.3))
    v[:, LAB["INR(PT)"]] = 1.1 * np.exp(noise(0.08)) + 1.1 * cond[:, COND["afib"]] * rng.random(n)
    v[:, LAB["Bilirubin, Total"]] = np.exp(np.log(0.6) + 0.2 * acute + noise(0.45))
    v[:, LAB["Lactate"]] = np.exp(np.log(1.4) + 0.3 * acute + noise(0.35))
    return v


def _round(v: np.ndarray) -> np.ndarray:
    out = v.copy()
    for j, lab in enumerate(LABS):
        out[:, j] = np.round(np.maximum(v[:, j], 0.1), lab.decimals)
    return out


def _impose_outcomes(rng: np.random.Generator, c: Chunk, a: np.ndarray, k: np.ndarray, store: np.ndarray,
                     v: np.ndarray) -> None:
    """Make the values stored in (admission + 24 h, + 72 h] agree with the drawn lab outcomes."""
    e = c.enc
    admit = e.admit[a]
    window = (store > admit + W.DAY) & (store <= admit + 3 * W.DAY)
    first = window & (k == 1)  # always exists when the outcome applies
    n = len(a)
    # (outcome, lab, threshold test for an event, value on the safe side, value on the event side)
    rules: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray], ...] = (
        ("hyperkalemia", "Potassium", lambda x: x > 5.5, rng.uniform(4.6, 5.5, n), 5.6 + rng.exponential(0.3, n)),
        ("hypoglycemia", "Glucose", lambda x: x < 70, rng.uniform(70, 95, n), rng.uniform(40, 69.4, n)),
        ("hyponatremia", "Sodium", lambda x: x < 135, rng.uniform(135, 138, n), rng.uniform(125, 134.4, n)),
        ("thrombocytopenia", "Platelet Count", lambda x: x < 150, rng.uniform(150, 200, n),
         rng.uniform(40, 149.4, n)),
        ("anemia", "Hemoglobin", lambda x: x < 10, rng.uniform(10.0, 11.5, n), rng.uniform(6.5, 9.9, n)),
    )
    for outcome, lab, is_event, safe, event in rules:
        j = LAB[lab]
        drawn = e.real[a, OUT[f"{outcome}_48h"]]
        fix = window & ~drawn & is_event(v[:, j])
        v[fix, j] = np.round(safe[fix], LABS[j].decimals)
        v[first & drawn, j] = np.round(np.minimum(event, 7.5 if lab == "Potassium" else event)[first & drawn],
                                       LABS[j].decimals)
    v[:, LAB["Hematocrit"]] = np.round(3.0 * v[:, LAB["Hemoglobin"]] + 1.2 * rng.standard_normal(n), 1)
    _impose_aki(rng, e.real[a, OUT["aki_48h"]], a, k, window, first, v)


def _impose_aki(rng: np.random.Generator, drawn: np.ndarray, a: np.ndarray, k: np.ndarray, window: np.ndarray,
                first: np.ndarray, v: np.ndarray) -> None:
    """AKI: a creatinine in the window >= baseline + 0.3 or >= 1.5 x baseline; baseline = the admission panel."""
    j = LAB["Creatinine"]
    base = np.where(k == 0, v[:, j], np.nan)
    # Panels are grouped by admission in order, so forward-filling carries each baseline to its panels.
    idx = np.where(k == 0, np.arange(len(a)), 0)
    np.maximum.accumulate(idx, out=idx)
    base = base[idx]
    ceiling = np.floor(np.minimum(base + 0.2, 1.45 * base) * 10) / 10
    calm = window & ~drawn
    v[calm, j] = np.minimum(v[calm, j], np.maximum(ceiling[calm], 0.1))
    rise = np.maximum(base + 0.3, 1.5 * base) + rng.uniform(0.1, 0.8, len(a))
    hit = first & drawn
    v[hit, j] = np.ceil(rise[hit] * 10) / 10


def lab_table(rng: np.random.Generator, c: Chunk) -> pl.DataFrame:
    a, k, chart, store = _panels(rng, c)
    v = _round(_values(rng, c, a, k))
    _impose_outcomes(rng, c, a, k, store, v)
    e = c.enc
    # Lactate is drawn on admission and, for the sickest, on later mornings.
    drawn = np.ones((len(a), len(LABS)), dtype=bool)
    drawn[:, LAB["Lactate"]] = (k == 0) | (e.severity[a] > 1.0)
    rows, cols = np.nonzero(drawn)
    value = v[rows, cols]
    low = np.array([lab.low for lab in LABS])[cols]
    high = np.array([lab.high for lab in LABS])[cols]
    decimals = np.array([lab.decimals for lab in LABS])[cols]
    text = np.where(decimals == 0, value.astype(np.int64).astype(str), np.char.mod("%.1f", value))
    unit = np.array([lab.unit for lab in LABS])[cols]
    return table_frame("hosp/labevents", {
        "labevent_id": c.index * 10_000_000 + np.arange(len(rows)) + 1, "subject_id": c.subject[a][rows],
        "hadm_id": c.hadm_id[a][rows], "specimen_id": c.index * 1_000_000 + rows + 1,
        "itemid": np.array([lab.itemid for lab in LABS])[cols], "charttime": chart[rows], "storetime": store[rows],
        "value": text, "valuenum": value,
        "valueuom": or_null(unit != "", unit), "ref_range_lower": low, "ref_range_upper": high,
        "flag": or_null((value < low) | (value > high), "abnormal"),
        "priority": np.where(k[rows] == 0, "STAT", "ROUTINE"),
    }, times=("charttime", "storetime"))


def omr_table(rng: np.random.Generator, c: Chunk) -> pl.DataFrame:
    """Outpatient blood pressure, weight and BMI at a clinic follow-up 1-13 weeks after most encounters.

    Visits follow past encounters, never precede future ones: an outpatient visit placed before an
    admission because that admission happens would tell a model about the admission in advance.
    Follow-ups the patient does not live to see are not written."""
    e, p = c.enc, c.patients
    after = np.where(e.admitted, e.disch, e.ed_out)
    date_all = after + rng.integers(7, 90, len(e)) * W.DAY
    death = e.death_time[e.pid]
    alive = (death < 0) | (date_all + W.DAY < death)
    adm = np.flatnonzero((rng.random(len(e)) < 0.6) & ~e.died & alive & (after > 0))
    n = len(adm)
    date = date_all[adm]
    male = ~p.female[e.pid[adm]]
    height_in = 64.0 + 5.0 * male
    weight_kg = 72 + 12 * male + 18 * e.cond[adm, COND["obesity"]] + 8 * rng.standard_normal(n)
    bmi = weight_kg / (height_in * 0.0254) ** 2
    sbp = np.round(122 + 14 * e.cond[adm, COND["hypertension"]] + 12 * rng.standard_normal(n)).astype(np.int64)
    dbp = np.round(sbp * 0.6 + 6 * rng.standard_normal(n)).astype(np.int64)
    names = np.array(["Blood Pressure", "Weight (Lbs)", "BMI (kg/m2)"])
    values = np.stack([np.char.add(np.char.add(sbp.astype(str), "/"), dbp.astype(str)),
                       np.char.mod("%.1f", weight_kg * 2.2046), np.char.mod("%.1f", bmi)], axis=1)
    return table_frame("hosp/omr", {
        "subject_id": np.repeat(c.subject[adm], 3), "chartdate": np.repeat(date, 3),
        "seq_num": np.ones(3 * n, dtype=np.int64), "result_name": np.tile(names, n),
        "result_value": values.reshape(-1)}, dates=("chartdate",))
