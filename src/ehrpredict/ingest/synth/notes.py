"""note/ tables (MIMIC-IV-Note layout): discharge summaries and radiology reports from templates.

Two latent facts reach the data only through notes: frailty (social history and functional status in
discharge summaries, which are stored after discharge, so they inform *later* stays) and pneumonia (the
chest radiograph report, stored within hours of admission; the ED codes only a cough). Negated findings
("No evidence of pneumonia") are as common as positive ones, so bag-of-words models have to cope.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import polars as pl

from ehrpredict.ingest.synth import world as W
from ehrpredict.ingest.synth.catalog import CONDITIONS, REASON, REASONS
from ehrpredict.ingest.synth.encounters import OUT, Chunk
from ehrpredict.ingest.synth.writer import table_frame

SOCIAL = (
    (1.0, ("Lives alone. Uses a walker; needs assistance with ADLs. Two falls in the past six months.",
           "Lives alone, homebound, dependent for bathing and dressing. Poor oral intake per family.")),
    (0.0, ("Lives with daughter. Ambulates with a cane. Independent in most ADLs.",
           "Lives with spouse, needs some help with IADLs. Ambulates slowly.")),
    (-99.0, ("Lives with spouse. Independent in all ADLs, still working.",
             "Lives with family, fully independent, walks daily.")),
)
LAB_PHRASES = {
    "hyperkalemia_48h": "Course complicated by hyperkalemia, treated with kayexalate and calcium gluconate.",
    "hypoglycemia_48h": "Had an episode of hypoglycemia requiring D50; insulin regimen reduced.",
    "hyponatremia_48h": "Hyponatremia noted, managed with fluid restriction.",
    "thrombocytopenia_48h": "Thrombocytopenia developed; heparin held, HIT antibody sent.",
    "anemia_48h": "Hemoglobin drifted below 10; transfused as needed, no active bleeding.",
    "aki_48h": "Creatinine rose on hospital day 2-3 consistent with acute kidney injury; improved with fluids.",
}


def note_tables(rng: np.random.Generator, c: Chunk) -> Iterator[tuple[str, pl.DataFrame]]:
    e = c.enc
    adm = np.flatnonzero(e.admitted)
    seq = np.arange(len(adm)) - np.searchsorted(e.pid[adm], e.pid[adm]) + 1
    texts = [_discharge_text(rng, c, int(i)) for i in adm]
    charttime = (e.disch[adm] // W.DAY) * W.DAY  # the discharge date, as in MIMIC-IV-Note
    storetime = e.disch[adm] + rng.integers(2 * W.HOUR, 36 * W.HOUR, len(adm))
    yield "note/discharge", table_frame("note/discharge", {
        "note_id": [f"{s}-DS-{q}" for s, q in zip(c.subject[adm], seq, strict=True)],
        "subject_id": c.subject[adm], "hadm_id": c.hadm_id[adm], "note_type": ["DS"] * len(adm),
        "note_seq": seq, "charttime": charttime, "storetime": storetime, "text": texts},
        times=("charttime", "storetime"))
    yield "note/radiology", _radiology(rng, c, adm)


def _discharge_text(rng: np.random.Generator, c: Chunk, i: int) -> str:
    e, p = c.enc, c.patients
    pid = e.pid[i]
    reason = REASONS[e.reason[i]]
    age = int((e.admit[i] - p.birth[pid]) / W.YEAR)
    sex = "woman" if p.female[pid] else "man"
    history = [cond.words for j, cond in enumerate(CONDITIONS) if e.cond[i, j]]
    social = next(options for cut, options in SOCIAL if p.frailty[pid] > cut)[int(rng.integers(0, 2))]
    lines = [
        "Name:  ___                     Unit No:   ___",
        "Admission Date:  ___              Discharge Date:   ___",
        f"Sex:   {'F' if p.female[pid] else 'M'}",
        f"Service: {reason.service}",
        "",
        f"Chief Complaint:\n{reason.complaint}",
        "",
        "History of Present Illness:",
        f"{age} year old {sex} with {', '.join(history) if history else 'no significant past medical history'} "
        f"who presents with {reason.complaint.lower()}.",
        "",
        "Past Medical History:",
        *(f"- {h}" for h in history or ["none"]),
        "",
        f"Social History:\n{social}",
        "",
        "Brief Hospital Course:",
        f"Admitted for {reason.name}.",
    ]
    if e.pneumonia[i]:
        lines.append("Chest radiograph showed a lobar consolidation; treated for pneumonia with antibiotics.")
    else:
        lines.append("Chest imaging without evidence of pneumonia.")
    if e.icu[i]:
        lines.append("Transferred to the ICU for hemodynamic monitoring.")
    lines += [phrase for name, phrase in LAB_PHRASES.items() if e.real[i, OUT[name]]]
    if e.died[i]:
        lines += ["", "Patient expired. Family at bedside.", "", "Discharge Disposition:\nExpired"]
    else:
        lines += ["", "Discharge Condition:", "Mental Status: Clear and coherent.",
                  "Activity Status: Ambulatory - requires assistance or aid (walker or cane)." if p.frailty[pid] > 0
                  else "Activity Status: Ambulatory - Independent.",
                  "", "Followup Instructions:\n___"]
    lines += ["", f"Discharge Diagnosis:\n{reason.name}"]
    return "\n".join(lines)


def _radiology(rng: np.random.Generator, c: Chunk, adm: np.ndarray) -> pl.DataFrame:
    e = c.enc
    respiratory = np.isin(e.reason[adm], [REASON[r] for r in ("pneumonia", "COPD exacerbation", "sepsis",
                                                                  "heart failure exacerbation")])
    p = 0.3 + 0.6 * (respiratory | e.pneumonia[adm] | e.icu[adm])
    a = adm[rng.random(len(adm)) < p]
    stay = e.disch[a] - e.admit[a]
    chart = e.admit[a] + np.minimum(rng.integers(W.HOUR, 6 * W.HOUR, len(a)), stay // 2)
    store = chart + rng.integers(30 * 60, 3 * W.HOUR, len(a))
    hf_col = next(j for j, cond in enumerate(CONDITIONS) if cond.name == "heart_failure")
    texts = [_cxr(rng, bool(e.pneumonia[i]), bool(e.cond[i, hf_col])) for i in a]
    seq = np.arange(len(a)) - np.searchsorted(e.pid[a], e.pid[a]) + 1
    return table_frame("note/radiology", {
        "note_id": [f"{s}-RR-{q}" for s, q in zip(c.subject[a], seq, strict=True)],
        "subject_id": c.subject[a], "hadm_id": c.hadm_id[a], "note_type": ["RR"] * len(a), "note_seq": seq,
        "charttime": chart, "storetime": store, "text": texts}, times=("charttime", "storetime"))


def _cxr(rng: np.random.Generator, pneumonia: bool, heart_failure: bool) -> str:
    findings = []
    if pneumonia:
        side = ("right lower", "left lower", "right middle")[int(rng.integers(0, 3))]
        findings.append(f"Focal consolidation in the {side} lobe, concerning for pneumonia.")
        impression = f"{side.capitalize()} lobe pneumonia."
    else:
        findings.append("No focal consolidation.")
        impression = "No evidence of pneumonia."
    if heart_failure:
        findings.append("Mild pulmonary vascular congestion. Moderate cardiomegaly.")
    else:
        findings.append("Heart size is normal. No pulmonary edema.")
    findings.append("No pleural effusion or pneumothorax." if rng.random() < 0.7 else "Small left pleural effusion.")
    return ("EXAMINATION:  CHEST (PA AND LAT)\n\nINDICATION:  ___ with cough and shortness of breath, eval for "
            f"pneumonia.\n\nFINDINGS:\n{' '.join(findings)}\n\nIMPRESSION:\n{impression}")
