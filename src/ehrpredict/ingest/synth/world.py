"""The latent model of the synthetic hospital: who the patients are and how risks are computed.

Every risk is a documented logistic model (or, for time to death, an exponential hazard) over named
features; ``docs/synthetic.md`` prints the same coefficients. A feature is an array with one value per
patient or per encounter, so each model is evaluated for a whole chunk at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ehrpredict.ingest.synth.catalog import COND, CONDITIONS

DAY = 86_400
HOUR = 3_600
YEAR = int(365.25 * DAY)
EPOCH_YEAR = 1970

Features = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Logistic:
    """p = sigmoid(intercept + sum(coef * feature))."""

    intercept: float
    terms: tuple[tuple[str, float], ...]

    def logit(self, x: Features) -> np.ndarray:
        n = len(next(iter(x.values())))
        out = np.full(n, self.intercept)
        for name, coef in self.terms:
            out = out + coef * x[name]
        return out

    def prob(self, x: Features) -> np.ndarray:
        return sigmoid(self.logit(x))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


# Prevalence of chronic conditions at the first encounter. `age10` = (age - 60) / 10.
PREVALENCE: dict[str, Logistic] = {
    "obesity": Logistic(-0.9, (("age10", -0.1),)),
    "smoker": Logistic(-0.8, (("male", 0.4),)),
    "hypertension": Logistic(0.1, (("age10", 0.6), ("obesity", 0.8))),
    "hyperlipidemia": Logistic(-0.4, (("age10", 0.5), ("obesity", 0.5))),
    "diabetes": Logistic(-1.5, (("age10", 0.3), ("obesity", 1.2))),
    "ckd": Logistic(-2.4, (("age10", 0.6), ("hypertension", 0.8), ("diabetes", 0.8))),
    "heart_failure": Logistic(-3.0, (("age10", 0.7), ("hypertension", 0.7), ("diabetes", 0.4), ("ckd", 0.6))),
    "copd": Logistic(-2.6, (("age10", 0.4), ("smoker", 1.5))),
    "afib": Logistic(-3.0, (("age10", 0.8), ("heart_failure", 0.8))),
    "cad": Logistic(-2.4, (("age10", 0.6), ("hypertension", 0.5), ("hyperlipidemia", 0.5), ("diabetes", 0.4),
                           ("smoker", 0.5), ("male", 0.4))),
    "cancer": Logistic(-2.6, (("age10", 0.4), ("smoker", 0.6))),
    "depression": Logistic(-1.8, (("female", 0.4),)),
}
# Conditions drawn in this order, so each may depend on earlier ones.
PREVALENCE_ORDER = ("obesity", "smoker", "hypertension", "hyperlipidemia", "diabetes", "ckd", "heart_failure",
                    "copd", "afib", "cad", "cancer", "depression")

# Per-encounter models. Features: severity (acute latent, N(mean, 1)), age10, conditions (0/1),
# frailty (patient latent, written only in notes), pneumonia (seen only on chest imaging),
# n_chronic (count of the eight major conditions), prior (log1p of earlier admissions), female, icu.
SEVERITY_MEAN = Logistic(-0.6, (("n_chronic", 0.2), ("age10", 0.15), ("frailty", 0.2)))  # used as a linear mean
ED_ADMIT = Logistic(-0.4, (("severity", 1.1), ("age10", 0.35), ("n_chronic", 0.15)))
ED_REVISIT_72H = Logistic(-3.2, (("frailty", 0.6), ("severity", 0.3), ("prior", 0.3)))
ICU = Logistic(-1.8, (("severity", 1.0), ("heart_failure", 0.3), ("pneumonia", 0.4)))
ICU_EARLY = 0.6  # of ICU stays, the share that start within hours of admission (else after 24 h)
IN_HOSPITAL_DEATH = Logistic(-4.9, (("severity", 1.0), ("age10", 0.35), ("cancer", 0.6), ("heart_failure", 0.3),
                                    ("pneumonia", 0.7), ("frailty", 0.4)))
# log(LOS days) ~ Normal(mean, LOS_SIGMA); mean is linear (Logistic.logit used as a linear predictor).
LOG_LOS = Logistic(1.3, (("severity", 0.3), ("age10", 0.05), ("pneumonia", 0.25), ("icu", 0.45),
                         ("frailty", 0.12)))
LOS_SIGMA = 0.75
READMISSION_30D = Logistic(-2.4, (("severity", 0.25), ("n_chronic", 0.15), ("frailty", 0.6), ("prior", 0.35),
                                  ("heart_failure", 0.3), ("ckd", 0.3), ("cancer", 0.3)))
# Daily hazard of death after discharge: exp(linear predictor).
DEATH_HAZARD = Logistic(-9.6, (("age10", 0.45), ("cancer", 1.0), ("heart_failure", 0.5), ("frailty", 0.6),
                               ("severity", 0.3), ("copd", 0.3)))
RETURN = Logistic(-0.1, (("frailty", 0.5), ("n_chronic", 0.25), ("age10", 0.1)))  # another encounter later
RETURN_GAP_DAYS = 420.0  # mean of the exponential gap (after the first 30 days) to a later encounter
LAB_48H: dict[str, Logistic] = {
    "hyperkalemia": Logistic(-4.0, (("ckd", 1.6), ("severity", 0.6), ("diabetes", 0.4), ("heart_failure", 0.4))),
    "hypoglycemia": Logistic(-4.6, (("diabetes", 1.4), ("severity", 0.5), ("ckd", 0.6))),
    "hyponatremia": Logistic(-2.2, (("heart_failure", 0.9), ("severity", 0.5), ("age10", 0.3))),
    "thrombocytopenia": Logistic(-2.3, (("severity", 0.7), ("cancer", 1.0), ("pneumonia", 0.3))),
    "anemia": Logistic(-1.6, (("ckd", 1.0), ("cancer", 1.0), ("severity", 0.4), ("female", 0.3))),
    "aki": Logistic(-2.8, (("severity", 0.7), ("ckd", 0.8), ("heart_failure", 0.4), ("age10", 0.3))),
}
NEW_DX_1Y: dict[str, Logistic] = {
    "hypertension": Logistic(-2.6, (("age10", 0.4), ("obesity", 0.6))),
    "hyperlipidemia": Logistic(-2.9, (("age10", 0.3), ("obesity", 0.5), ("diabetes", 0.4))),
    "ckd": Logistic(-3.4, (("age10", 0.4), ("hypertension", 0.7), ("diabetes", 0.7), ("aki", 0.9))),
    "heart_failure": Logistic(-3.8, (("age10", 0.5), ("hypertension", 0.6), ("cad", 0.6), ("afib", 0.5))),
    "diabetes": Logistic(-3.4, (("age10", 0.3), ("obesity", 1.0))),
}
MAJOR = ("hypertension", "diabetes", "ckd", "heart_failure", "copd", "afib", "cad", "cancer")

RACES = (("WHITE", 0.64), ("BLACK/AFRICAN AMERICAN", 0.15), ("HISPANIC/LATINO - PUERTO RICAN", 0.04),
         ("HISPANIC OR LATINO", 0.03), ("ASIAN", 0.03), ("ASIAN - CHINESE", 0.02), ("OTHER", 0.03),
         ("UNKNOWN", 0.04), ("WHITE - OTHER EUROPEAN", 0.02))
MARITAL = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED")
YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019")
ICD10_SWITCH_REAL = (2015, 10)  # US switch to ICD-10: 1 October 2015 (real calendar)


@dataclass(frozen=True)
class Patients:
    """One chunk of patients (arrays indexed by local patient number)."""

    subject_id: np.ndarray
    female: np.ndarray  # bool
    age0: np.ndarray  # true age (years, float) at the first encounter
    birth: np.ndarray  # seconds since 1970 (true birth time)
    anchor_year: np.ndarray
    anchor_age: np.ndarray  # grouped: 91 for 89+
    year_group: np.ndarray  # index into YEAR_GROUPS
    switch: np.ndarray  # seconds: the ICD-10 switch date in this patient's shifted calendar
    first_time: np.ndarray  # seconds: first encounter
    race: np.ndarray  # index into RACES
    english: np.ndarray  # bool
    marital: np.ndarray  # index into MARITAL, -1 unknown
    frailty: np.ndarray
    cond: np.ndarray  # (n, len(CONDITIONS)) bool at the first encounter

    @property
    def n(self) -> int:
        return len(self.subject_id)


def year_start(years: np.ndarray) -> np.ndarray:
    """Seconds since 1970 of 1 January of each year."""
    return (years - EPOCH_YEAR).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def month_start(years: np.ndarray, month: int) -> np.ndarray:
    months = (years - EPOCH_YEAR) * 12 + (month - 1)
    return months.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)


def year_of(seconds: np.ndarray) -> np.ndarray:
    return seconds.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + EPOCH_YEAR


def draw_patients(rng: np.random.Generator, first_subject: int, n: int) -> Patients:
    """Demographics, the shifted calendar and chronic conditions of ``n`` patients."""
    female = rng.random(n) < 0.52
    age0 = 18.0 + rng.beta(2.2, 1.6, n) * 77.0
    real_anchor = rng.integers(2008, 2020, n)
    anchor_year = rng.integers(2110, 2186, n)
    shift = anchor_year - real_anchor
    first_time = year_start(anchor_year) + rng.integers(0, 364 * DAY, n)
    birth = first_time - (age0 * 365.25 * DAY).astype(np.int64)
    # MIMIC's rule: age at t = anchor_age + year(t) - anchor_year, so anchor_age is the age in years
    # counted from 1 January of the birth year (ages of 89 and above are written as 91).
    true_anchor_age = anchor_year - year_of(birth)
    anchor_age = np.where(true_anchor_age >= 89, 91, true_anchor_age)
    race_p = np.array([p for _, p in RACES])
    x: dict[str, np.ndarray] = {"age10": (age0 - 60) / 10, "male": (~female).astype(float),
                                "female": female.astype(float)}
    cond = np.zeros((n, len(CONDITIONS)), dtype=bool)
    for name in PREVALENCE_ORDER:
        drawn = rng.random(n) < PREVALENCE[name].prob(x)
        cond[:, COND[name]] = drawn
        x[name] = drawn.astype(float)
    older = age0 > 70
    marital = rng.choice(4, n, p=[0.45, 0.33, 0.12, 0.10])
    marital = np.where(older & (rng.random(n) < 0.35), 2, marital)
    marital = np.where(rng.random(n) < 0.04, -1, marital)
    return Patients(
        subject_id=np.arange(first_subject, first_subject + n, dtype=np.int64),
        female=female, age0=age0, birth=birth, anchor_year=anchor_year, anchor_age=anchor_age,
        year_group=(real_anchor - 2008) // 3,
        switch=month_start(ICD10_SWITCH_REAL[0] + shift, ICD10_SWITCH_REAL[1]),
        first_time=first_time, race=rng.choice(len(RACES), n, p=race_p / race_p.sum()),
        english=rng.random(n) < 0.92, marital=marital, frailty=rng.standard_normal(n), cond=cond,
    )


def condition_features(cond: np.ndarray) -> dict[str, np.ndarray]:
    """One 0/1 feature per condition plus ``n_chronic`` (count of the major ones)."""
    x = {c.name: cond[:, i].astype(float) for i, c in enumerate(CONDITIONS)}
    x["n_chronic"] = sum((x[m] for m in MAJOR), np.zeros(len(cond)))
    return x
