"""Episodes (hospital admissions, ICU stays, ED stays) and per-subject facts, from MEDS events.

An episode has a start and an end; a task's anchor picks one of them and adds an offset to get
the prediction time. ED and ICU stays are linked to the hospital admission they belong to (via
``hadm_id``), whose end is ``linked_end``.
"""

from __future__ import annotations

import polars as pl

from ehrpredict import schema as S

EPISODE = "episode"
START = "start"
END = "end"
LINKED_END = "linked_end"
DIED_IN_EPISODE = "died_in_episode"
BIRTH = "birth"
DEATH = "death"
LAST_EVENT = "last_event"
LAST_DISCHARGE = "last_discharge"

# (start code prefix, end code prefix, id column) per kind of episode
KINDS = {
    "hospital": ("HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE", S.HADM_ID),
    "icu": ("ICU_ADMISSION", "ICU_DISCHARGE", S.STAY_ID),
    "ed": ("ED_ARRIVAL", "ED_DISPOSITION", S.STAY_ID),
}
ANCHOR_KIND = {
    "admission": ("hospital", START),
    "discharge": ("hospital", END),
    "icu_admission": ("icu", START),
    "ed_triage": ("ed", START),  # triage happens at ED arrival
    "ed_departure": ("ed", END),
}
EPISODE_CODES = (
    "HOSPITAL_ADMISSION",
    "HOSPITAL_DISCHARGE",
    "ICU_ADMISSION",
    "ICU_DISCHARGE",
    "ED_ARRIVAL",
    "ED_DISPOSITION",
)


def _prefix(code: str) -> pl.Expr:
    return (pl.col(S.CODE) == code) | pl.col(S.CODE).str.starts_with(code + S.CODE_SEPARATOR)


def _episodes_of(events: pl.DataFrame, kind: str) -> pl.DataFrame:
    start_code, end_code, id_col = KINDS[kind]
    starts = (
        events.filter(_prefix(start_code))
        .group_by(S.SUBJECT_ID, id_col)
        .agg(pl.col(S.TIME).min().alias(START), pl.col(S.HADM_ID).drop_nulls().first().alias("_hadm"))
    )
    ends = (
        events.filter(_prefix(end_code))
        .group_by(S.SUBJECT_ID, id_col)
        .agg(
            pl.col(S.TIME).max().alias(END),
            (pl.col(S.CODE) == f"{end_code}//DIED").any().alias("_discharged_dead"),
        )
    )
    out = starts.join(ends, on=[S.SUBJECT_ID, id_col], how="left")
    out = out.rename({"_hadm": S.HADM_ID}) if id_col != S.HADM_ID else out.drop("_hadm")
    # Start events without an id cannot be paired with their end; they are counted, not labeled
    # (see missing_ids), e.g. in MEDS data from ETLs that keep no hadm_id/stay_id provenance.
    return out.filter(pl.col(id_col).is_not_null())


def missing_ids(events: pl.DataFrame, anchor: str) -> int:
    """How many anchor-kind episode start events have no episode id (and so get no label)."""
    start_code, _, id_col = KINDS[ANCHOR_KIND[anchor][0]]
    return events.filter(_prefix(start_code) & pl.col(id_col).is_null()).height


def episodes(events: pl.DataFrame, anchor: str) -> pl.DataFrame:
    """Episodes for ``anchor`` with ``subject_id, episode, hadm_id, start, end, linked_end,
    anchor_time, died_in_episode`` (death itself is joined later from the subject facts)."""
    kind, anchor_at = ANCHOR_KIND[anchor]
    hospital = _episodes_of(events, "hospital")
    if kind == "hospital":
        out = hospital.with_columns(pl.col(END).alias(LINKED_END), pl.col(S.HADM_ID).alias(EPISODE))
    else:
        own = _episodes_of(events, kind)
        linked = hospital.select(
            S.SUBJECT_ID, S.HADM_ID, pl.col(END).alias(LINKED_END), pl.col("_discharged_dead").alias("_linked_dead")
        )
        out = (
            own.join(linked, on=[S.SUBJECT_ID, S.HADM_ID], how="left")
            .with_columns(
                pl.col(LINKED_END).fill_null(pl.col(END)),
                pl.col("_discharged_dead") | pl.col("_linked_dead").fill_null(False),
                pl.col(S.STAY_ID).alias(EPISODE),
            )
            .drop("_linked_dead")
        )
    return out.with_columns(pl.col(anchor_at).alias("anchor_time")).sort(S.SUBJECT_ID, START, EPISODE)


def subject_facts(events: pl.DataFrame, last_event: pl.DataFrame) -> pl.DataFrame:
    """``subject_id, birth, death, last_event, last_discharge`` (death null when none is recorded,
    last_discharge null when the subject was never discharged from hospital)."""
    birth = events.filter(pl.col(S.CODE) == S.BIRTH_CODE).group_by(S.SUBJECT_ID).agg(pl.col(S.TIME).min().alias(BIRTH))
    death = events.filter(pl.col(S.CODE) == S.DEATH_CODE).group_by(S.SUBJECT_ID).agg(pl.col(S.TIME).min().alias(DEATH))
    discharge = (
        events.filter(_prefix(KINDS["hospital"][1]))
        .group_by(S.SUBJECT_ID)
        .agg(pl.col(S.TIME).max().alias(LAST_DISCHARGE))
    )
    return (
        last_event.join(birth, on=S.SUBJECT_ID, how="left")
        .join(death, on=S.SUBJECT_ID, how="left")
        .join(discharge, on=S.SUBJECT_ID, how="left")
    )


def stays(events: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Every stay of ``kind`` (hospital, icu, ed) as ``subject_id, start, end`` (end null while open)."""
    return _episodes_of(events, kind).select(S.SUBJECT_ID, START, END)
