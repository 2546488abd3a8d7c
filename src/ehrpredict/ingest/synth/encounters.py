"""Encounter timelines: ED visits, admissions, ICU stays, deaths and every outcome, drawn in rounds.

Each round gives every still-active patient one encounter, draws its outcomes from the latent models in
``world.py``, and schedules the next one. Outcomes are drawn first and the timeline follows them, so the
data always agree with the oracle: a drawn readmission *is* the next admission (within 30 days), a drawn
new diagnosis onset makes the patient come back (and be coded) before the year is out, a drawn ED revisit
is the next ED arrival within 72 h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ehrpredict.ingest.synth import world as W
from ehrpredict.ingest.synth.catalog import COND, CONDITIONS, ED_ONLY_REASONS, ELECTIVE_REASON, NEW_DX, REASON, REASONS

MAX_ROUNDS = 40
ED_ONLY, ED_ADMIT, DIRECT, ELECTIVE = 0, 1, 2, 3
LAB_OUTCOMES = tuple(f"{k}_48h" for k in W.LAB_48H)
NEW_DX_OUTCOMES = {
    "hypertension": "new_hypertension_1y", "hyperlipidemia": "new_hyperlipidemia_1y",
    "ckd": "new_chronic_kidney_disease_1y", "heart_failure": "new_heart_failure_1y",
    "diabetes": "new_type2_diabetes_1y",
}
ADMISSION_OUTCOMES = ("in_hospital_death", "long_los_7d", "icu_transfer", "readmission_30d",
                      "death_365d_after_discharge", *LAB_OUTCOMES, *(NEW_DX_OUTCOMES[k] for k in NEW_DX))
ED_OUTCOMES = ("ed_hospitalization", "ed_critical_outcome", "ed_revisit_72h")
OUTCOMES = ADMISSION_OUTCOMES + ED_OUTCOMES
OUT = {name: i for i, name in enumerate(OUTCOMES)}
PNEUMONIA = W.Logistic(-2.0, (("copd", 0.9), ("age10", 0.2), ("severity", 0.5)))


@dataclass(frozen=True)
class Encounters:
    """All encounters of one chunk, sorted by patient then time. Times are seconds since 1970; -1 = none."""

    pid: np.ndarray  # local patient index
    kind: np.ndarray  # ED_ONLY, ED_ADMIT, DIRECT, ELECTIVE
    reason: np.ndarray  # index into REASONS (admissions) or ED_ONLY_REASONS (ED-only visits)
    ed_in: np.ndarray
    ed_out: np.ndarray
    admit: np.ndarray
    disch: np.ndarray
    severity: np.ndarray
    pneumonia: np.ndarray  # bool
    icu: np.ndarray  # bool
    icu_in: np.ndarray
    icu_out: np.ndarray
    died: np.ndarray  # bool: died in hospital (at disch)
    icd10: np.ndarray  # bool: coded in ICD-10 (after the patient's switch date)
    cond: np.ndarray  # (E, n conditions) bool: conditions known at this encounter
    prob: np.ndarray  # (E, len(OUTCOMES)) float; NaN where the outcome does not apply
    real: np.ndarray  # (E, len(OUTCOMES)) bool
    death_time: np.ndarray  # per patient: seconds of death, -1 if alive at the end of follow-up

    @property
    def admitted(self) -> np.ndarray:
        return np.asarray(self.kind != ED_ONLY)

    @property
    def has_ed(self) -> np.ndarray:
        return self.ed_in >= 0

    def __len__(self) -> int:
        return len(self.pid)


_erfc = np.frompyfunc(math.erfc, 1, 1)


def prob_los_above(mean: np.ndarray, days: float) -> np.ndarray:
    """P(LOS > days) for log(LOS) ~ Normal(mean, LOS_SIGMA)."""
    z = (math.log(days) - mean) / (W.LOS_SIGMA * math.sqrt(2.0))
    return 0.5 * np.asarray(_erfc(z), dtype=float)


def _reason_weights(x: W.Features, n: int) -> np.ndarray:
    """Relative chance of each non-elective reason for admission, given the conditions."""
    w = np.full((n, len(REASONS)), 0.6)
    w[:, ELECTIVE_REASON] = 0.0
    w[:, REASON["heart failure exacerbation"]] = 0.1 + 2.5 * x["heart_failure"]
    w[:, REASON["COPD exacerbation"]] = 0.05 + 2.0 * x["copd"]
    w[:, REASON["acute kidney injury"]] = 0.2 + 1.0 * x["ckd"]
    w[:, REASON["sepsis"]] = 0.5 + 0.5 * np.clip(x["severity"], 0, None)
    w[:, REASON["pneumonia"]] = 0.1 + 3.0 * x["pneumonia"]
    w[:, REASON["chest pain"]] = 0.5 + 0.8 * x["cad"]
    w[:, REASON["stroke"]] = 0.3 + 0.5 * x["afib"]
    return w


def _categorical(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.asarray((cum < u[:, None]).sum(axis=1))


def _first_kind(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([ED_ADMIT, DIRECT, ELECTIVE]), n, p=[0.74, 0.16, 0.10])  # ED_ADMIT = via ED


class _State:
    """Per-patient state carried from round to round."""

    def __init__(self, rng: np.random.Generator, p: W.Patients) -> None:
        self.t_next = p.first_time.astype(np.float64)
        self.kind_next = _first_kind(rng, p.n)
        self.active = np.ones(p.n, dtype=bool)
        self.cond = p.cond.copy()
        self.pending = np.full((p.n, len(CONDITIONS)), np.inf)
        # End of the year after the last discharge at which an onset was drawn, per condition: no second
        # draw inside it, so "new diagnosis within a year" of that discharge is exactly the drawn onset.
        self.risk_until = np.full((p.n, len(CONDITIONS)), -np.inf)
        self.prior = np.zeros(p.n)
        self.death = np.full(p.n, -1, dtype=np.int64)


def _features(p: W.Patients, s: _State, idx: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    x = W.condition_features(s.cond[idx])
    x["age10"] = ((t - p.birth[idx]) / W.YEAR - 60) / 10
    x["frailty"] = p.frailty[idx]
    x["female"] = p.female[idx].astype(float)
    x["prior"] = np.log1p(s.prior[idx])
    return x


def draw_encounters(rng: np.random.Generator, p: W.Patients) -> Encounters:
    s = _State(rng, p)
    parts: list[dict[str, np.ndarray]] = []
    for _ in range(MAX_ROUNDS):
        idx = np.flatnonzero(s.active)
        if len(idx) == 0:
            break
        parts.append(_round(rng, p, s, idx))
    cat = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    order = np.lexsort((cat["start"], cat["pid"]))
    cat = {k: v[order] for k, v in cat.items()}
    _realize_late_deaths(cat, s.death)
    return Encounters(
        pid=cat["pid"], kind=cat["kind"], reason=cat["reason"], ed_in=cat["ed_in"], ed_out=cat["ed_out"],
        admit=cat["admit"], disch=cat["disch"], severity=cat["severity"], pneumonia=cat["pneumonia"],
        icu=cat["icu"], icu_in=cat["icu_in"], icu_out=cat["icu_out"], died=cat["died"], icd10=cat["icd10"],
        cond=cat["cond"], prob=cat["prob"], real=cat["real"], death_time=s.death,
    )


def _realize_late_deaths(cat: dict[str, np.ndarray], death: np.ndarray) -> None:
    """death_365d_after_discharge happened if the patient's death (any place) is within a year."""
    col = OUT["death_365d_after_discharge"]
    d = death[cat["pid"]]
    applies = ~np.isnan(cat["prob"][:, col])
    cat["real"][:, col] = applies & (d >= 0) & (d > cat["disch"]) & (d <= cat["disch"] + 365 * W.DAY)


def _round(rng: np.random.Generator, p: W.Patients, s: _State, idx: np.ndarray) -> dict[str, np.ndarray]:
    n = len(idx)
    t = s.t_next[idx].astype(np.int64)
    kind = s.kind_next[idx]
    onset = s.pending[idx] <= t[:, None]
    s.cond[idx] |= onset
    s.pending[idx] = np.where(onset, np.inf, s.pending[idx])
    x = _features(p, s, idx, t)
    elective = kind == ELECTIVE
    x["severity"] = W.SEVERITY_MEAN.logit(x) - 1.2 * elective + rng.standard_normal(n)
    x["pneumonia"] = (~elective & (rng.random(n) < PNEUMONIA.prob(x))).astype(float)
    prob = np.full((n, len(OUTCOMES)), np.nan)
    real = np.zeros((n, len(OUTCOMES)), dtype=bool)

    via_ed = kind == ED_ADMIT  # arrives through the ED; admission is then drawn
    p_admit = W.ED_ADMIT.prob(x)
    admitted = ~via_ed | (rng.random(n) < p_admit)
    kind = np.where(via_ed & ~admitted, ED_ONLY, kind)
    ed_in = np.where(via_ed, t, -1)
    ed_out = np.where(via_ed, t + rng.integers(2 * W.HOUR, 9 * W.HOUR, n), -1)
    admit = np.where(via_ed, ed_out, t)

    p_icu = np.where(elective, 0.3, 1.0) * W.ICU.prob(x)
    icu = admitted & (rng.random(n) < p_icu)
    early = rng.random(n) < W.ICU_EARLY
    p_death = W.IN_HOSPITAL_DEATH.prob(x)
    died = admitted & (rng.random(n) < p_death)
    los_mean = {flag: W.LOG_LOS.logit({**x, "icu": np.full(n, float(flag))}) for flag in (0, 1)}
    los_days = np.exp(np.where(icu, los_mean[1], los_mean[0]) + W.LOS_SIGMA * rng.standard_normal(n))
    # A later ICU transfer needs a stay long enough to happen in: at least 2 days (does not change P(LOS > 7)).
    los_days = np.clip(np.where(icu & ~early, np.maximum(los_days, 2.0), los_days), 0.15, 45.0)
    disch = np.where(admitted, admit + (los_days * W.DAY).astype(np.int64), -1)
    icu_in, icu_out = _icu_times(rng, icu, early, admit, disch, died)
    prob[:, OUT["ed_hospitalization"]] = np.where(via_ed, p_admit, np.nan)
    real[:, OUT["ed_hospitalization"]] = via_ed & admitted
    p_crit = p_admit * (1 - (1 - p_icu * W.ICU_EARLY) * (1 - p_death))
    prob[:, OUT["ed_critical_outcome"]] = np.where(via_ed, p_crit, np.nan)
    real[:, OUT["ed_critical_outcome"]] = via_ed & admitted & ((icu & early) | died)
    for name, value, happened in (
        ("in_hospital_death", p_death, died), ("icu_transfer", p_icu, icu),
        ("long_los_7d", p_icu * prob_los_above(los_mean[1], 7) + (1 - p_icu) * prob_los_above(los_mean[0], 7),
         los_days > 7),
    ):
        prob[:, OUT[name]] = np.where(admitted, value, np.nan)
        real[:, OUT[name]] = admitted & happened
    eligible = admitted & (los_days > 1.0)
    x["aki"] = np.zeros(n)
    for name, model in W.LAB_48H.items():
        p_lab = model.prob(x)
        happened = eligible & (rng.random(n) < p_lab)
        prob[:, OUT[f"{name}_48h"]] = np.where(eligible, p_lab, np.nan)
        real[:, OUT[f"{name}_48h"]] = happened
    x["aki"] = real[:, OUT["aki_48h"]].astype(float)

    reason = np.where(elective, ELECTIVE_REASON, _categorical(rng, _reason_weights(x, n)))
    reason = np.where(admitted, reason, rng.integers(0, len(ED_ONLY_REASONS), n))
    end = np.where(admitted, disch, ed_out)
    # Billing codes are assigned at discharge: an onset during the stay is coded in it.
    during = admitted[:, None] & (s.pending[idx] <= end[:, None])
    s.cond[idx] |= during
    s.pending[idx] = np.where(during, np.inf, s.pending[idx])
    _schedule_next(rng, p, s, idx, x, end, admitted, died, prob, real)
    s.prior[idx] += admitted
    return {
        "pid": idx, "start": t, "kind": kind, "reason": reason, "ed_in": ed_in, "ed_out": ed_out,
        "admit": np.where(admitted, admit, -1), "disch": disch, "severity": x["severity"],
        "pneumonia": x["pneumonia"] > 0, "icu": icu, "icu_in": icu_in, "icu_out": icu_out, "died": died,
        "icd10": np.where(admitted, disch, ed_out) >= p.switch[idx], "cond": s.cond[idx].copy(),
        "prob": prob, "real": real,
    }


def _icu_times(rng: np.random.Generator, icu: np.ndarray, early: np.ndarray, admit: np.ndarray,
               disch: np.ndarray, died: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Early ICU stays start within 1.5 h of admission (so within 12 h of ED arrival); later ones after 24 h."""
    n = len(icu)
    stay = disch - admit
    late_start = admit + W.DAY + (rng.random(n) * 0.4 * (stay - W.DAY)).astype(np.int64)
    start = np.where(early, admit + rng.integers(360, 90 * 60, n), late_start)
    length = (np.exp(np.log(2.0) + 0.6 * rng.standard_normal(n)) * W.DAY).astype(np.int64)
    # Leave the ICU at least an hour before discharge unless the patient dies there.
    out = np.minimum(start + length, np.maximum(disch - W.HOUR, start + W.HOUR))
    out = np.where(died & (start + length >= disch - W.HOUR), disch, np.minimum(out, disch))
    return np.where(icu, start, -1), np.where(icu, out, -1)


def _schedule_next(rng: np.random.Generator, p: W.Patients, s: _State, idx: np.ndarray, x: W.Features,
                   end: np.ndarray, admitted: np.ndarray, died: np.ndarray, prob: np.ndarray,
                   real: np.ndarray) -> None:
    """Draw what follows an encounter and set each patient's next encounter (or end of follow-up)."""
    n = len(idx)
    survived = admitted & ~died
    ed_only = ~admitted
    p_readmit = W.READMISSION_30D.prob(x)
    readmit = survived & (rng.random(n) < p_readmit)
    prob[:, OUT["readmission_30d"]] = np.where(survived, p_readmit, np.nan)
    real[:, OUT["readmission_30d"]] = readmit
    hazard = np.exp(W.DEATH_HAZARD.logit(x))
    prob[:, OUT["death_365d_after_discharge"]] = np.where(survived, 1 - np.exp(-365 * hazard), np.nan)
    death_at = end + (rng.exponential(1.0, n) / hazard * W.DAY).astype(np.int64)
    p_revisit = W.ED_REVISIT_72H.prob(x)
    revisit = ed_only & (rng.random(n) < p_revisit)
    prob[:, OUT["ed_revisit_72h"]] = np.where(ed_only, p_revisit, np.nan)
    real[:, OUT["ed_revisit_72h"]] = revisit
    _draw_new_diagnoses(rng, s, idx, x, end, survived, prob, real)

    candidates = np.full((n, 4), np.inf)
    candidates[:, 0] = np.where(readmit, end + rng.uniform(0.5, 29.5, n) * W.DAY, np.inf)
    candidates[:, 1] = np.where(revisit, end + rng.uniform(4, 70, n) * W.HOUR, np.inf)
    # A pending onset brings the patient back soon after it, but never within 30 days of this encounter,
    # where it would pass for a readmission that was not drawn.
    candidates[:, 2] = np.maximum(s.pending[idx].min(axis=1) + rng.uniform(1, 14, n) * W.DAY,
                                  end + 30.5 * W.DAY)
    returns = rng.random(n) < W.RETURN.prob(x)
    candidates[:, 3] = np.where(returns, end + (30 + rng.exponential(W.RETURN_GAP_DAYS, n)) * W.DAY, np.inf)
    which = candidates.argmin(axis=1)
    next_time = candidates[np.arange(n), which]
    forced = which < 3  # a drawn outcome: the patient lives to it
    dies_first = ~died & ~forced & (death_at < next_time)
    recorded = dies_first & (death_at <= end + 365 * W.DAY)  # MIMIC records deaths up to a year out
    s.death[idx] = np.where(died, end, np.where(recorded, death_at, s.death[idx]))
    stop = died | dies_first | ~np.isfinite(next_time)
    s.active[idx] = ~stop
    s.t_next[idx] = np.where(stop, s.t_next[idx], next_time)
    natural = _first_kind(rng, n)
    s.kind_next[idx] = np.select([which == 0, which == 1, which == 2], [DIRECT, ED_ADMIT, DIRECT], natural)


def _draw_new_diagnoses(rng: np.random.Generator, s: _State, idx: np.ndarray, x: W.Features, end: np.ndarray,
                        survived: np.ndarray, prob: np.ndarray, real: np.ndarray) -> None:
    """Onset of a new chronic condition 30-280 days after discharge; it is coded within the year."""
    n = len(idx)
    for name in NEW_DX:
        col = COND[name]
        at_risk = (survived & ~s.cond[idx, col] & ~np.isfinite(s.pending[idx, col])
                   & (end > s.risk_until[idx, col]))
        s.risk_until[idx, col] = np.where(at_risk, end + 365 * W.DAY, s.risk_until[idx, col])
        p_new = W.NEW_DX_1Y[name].prob(x)
        happened = at_risk & (rng.random(n) < p_new)
        prob[:, OUT[NEW_DX_OUTCOMES[name]]] = np.where(at_risk, p_new, np.nan)
        real[:, OUT[NEW_DX_OUTCOMES[name]]] = happened
        onset = end + rng.uniform(30, 280, n) * W.DAY
        s.pending[idx, col] = np.where(happened, onset, s.pending[idx, col])


ID_STRIDE = 100_000  # ids per chunk: a chunk of 1,000 patients has far fewer encounters than this


@dataclass(frozen=True)
class Chunk:
    """One chunk of the world with its MIMIC identifiers (-1 where an encounter has none)."""

    index: int
    patients: W.Patients
    enc: Encounters
    subject: np.ndarray  # per encounter
    hadm_id: np.ndarray
    ed_stay_id: np.ndarray
    icu_stay_id: np.ndarray

    @staticmethod
    def build(index: int, patients: W.Patients, enc: Encounters) -> Chunk:
        local = np.arange(len(enc), dtype=np.int64) + index * ID_STRIDE
        # ICU (icu module) and ED (ed module) stays share the stay_id column once ingested: odd/even.
        return Chunk(
            index=index, patients=patients, enc=enc, subject=patients.subject_id[enc.pid],
            hadm_id=np.where(enc.admitted, 20_000_000 + local, -1),
            ed_stay_id=np.where(enc.has_ed, 30_000_000 + 2 * local + 1, -1),
            icu_stay_id=np.where(enc.icu, 30_000_000 + 2 * local, -1),
        )
