"""Timeline serialization on tiny hand-built MEDS datasets whose expected text is written out below.

Subject 1 (prediction time 2150-03-10 12:00):

    static         GENDER//F
    2080-06-15     MEDS_BIRTH                               → 69 years old at prediction time
    2149-12-01     ICD10CM//I50.9                           → 99 days before: "3 months before"
    2150-03-01     ICD10CM//ZZZ (no description)            → raw code, "9 days before"
    2150-03-08 08  HOSPITAL_ADMISSION//EW EMER. "ER"        → 52 hours: "2 days before"
    2150-03-09 07  creatinine 1.0                           → "29 hours before", item carries flags: normal
    2150-03-09 10  MEDICATION//Furosemide "20 mg PO"
    2150-03-09 12  NOTE//RADIOLOGY                          → "24 hours before"
    2150-03-10 07  creatinine 2.5 + LAB_FLAG abnormal       → "5 hours before, abnormal"
    2150-03-10 10  MEDICATION//Furosemide "40 mg IV"        → "2 hours before, 2 times", latest dose
    2150-03-10 11:30 heart rate 88                          → "30 minutes before"
    2150-03-10 13  creatinine 9.9, NOTE//DISCHARGE          → after the prediction time: never shown
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.dataset import shard_files
from ehrpredict.errors import ConfigError, DataError, SchemaError
from ehrpredict.events.source import InMemoryEvents
from ehrpredict.text.serialize import (
    FORMATS,
    SERIALIZER_VERSION,
    ItemSelection,
    Section,
    SerializedTimeline,
    SerializerConfig,
    TimelineSerializer,
    approx_tokens,
)

T = datetime.fromisoformat
PRED = T("2150-03-10 12:00")
Row = tuple[int, str | None, str, float | None, str | None]

DESCRIPTIONS = {
    "GENDER//F": "Sex: F",
    "MEDS_BIRTH": "Birth",
    "ICD10CM//I50.9": "Heart failure, unspecified",
    "HOSPITAL_ADMISSION//EW EMER.": "Hospital admission: EW EMER.",
    "HOSPITAL_DISCHARGE//HOME": "Hospital discharge: HOME",
    "LAB//50912//mg/dL": "Creatinine [mg/dL]",
    "LAB_FLAG//50912//abnormal": "Creatinine: flagged abnormal",
    "MEDICATION//Furosemide": "Medication ordered: Furosemide",
    "CHART//220045//bpm": "Heart Rate [bpm]",
    "NOTE//RADIOLOGY": "Clinical note: RADIOLOGY",
    "NOTE//DISCHARGE": "Clinical note: DISCHARGE",
}

SUBJECT_1: list[Row] = [
    (1, None, "GENDER//F", None, None),
    (1, "2080-06-15 00:00", "MEDS_BIRTH", None, None),
    (1, "2149-12-01 12:00", "ICD10CM//I50.9", None, None),
    (1, "2150-03-01 12:00", "ICD10CM//ZZZ", None, None),
    (1, "2150-03-08 08:00", "HOSPITAL_ADMISSION//EW EMER.", None, "ER"),
    (1, "2150-03-09 07:00", "LAB//50912//mg/dL", 1.0, None),
    (1, "2150-03-09 10:00", "MEDICATION//Furosemide", None, "20 mg PO"),
    (1, "2150-03-09 12:00", "NOTE//RADIOLOGY", None, "CHEST X-RAY:\n\n  No   acute process."),
    (1, "2150-03-10 07:00", "LAB//50912//mg/dL", 2.5, None),
    (1, "2150-03-10 07:00", "LAB_FLAG//50912//abnormal", None, None),
    (1, "2150-03-10 10:00", "MEDICATION//Furosemide", None, "40 mg IV"),
    (1, "2150-03-10 11:30", "CHART//220045//bpm", 88.0, None),
    (1, "2150-03-10 13:00", "LAB//50912//mg/dL", 9.9, None),
    (1, "2150-03-10 13:00", "NOTE//DISCHARGE", None, "Discharge summary: patient died."),
]

MARKDOWN_1 = """\
## Demographics
- Age: 69 years
- Sex: F

## Vital signs and body metrics
- Heart Rate [bpm]: 88 (30 minutes before)

## Lab results
- Creatinine [mg/dL]: 2.5 (5 hours before, abnormal); 1 (29 hours before, normal)

## Conditions
- ICD10CM//ZZZ (9 days before)
- Heart failure, unspecified (3 months before)

## Medications
- Medication ordered: Furosemide, 40 mg IV (2 hours before, 2 times)

## Visits
- Hospital admission: EW EMER., ER (2 days before)

## Notes
- Clinical note: RADIOLOGY (24 hours before): CHEST X-RAY: No acute process."""

RECENT_CODES_1 = """\
## Demographics
Age: 69 years
Sex: F

## Recent codes
Heart Rate [bpm]
Medication ordered: Furosemide
Creatinine [mg/dL]
Creatinine: flagged abnormal
Clinical note: RADIOLOGY
Hospital admission: EW EMER.
ICD10CM//ZZZ
Heart failure, unspecified"""


def write_dataset(root: Path, rows: list[Row], shards: int = 1, codes: dict[str, str] | None = None) -> Path:
    """A MEDS dataset: ``rows`` split by subject over ``shards`` shards, plus metadata/codes.parquet."""
    frame = pl.DataFrame(
        [(s, None if t is None else T(t), c, v, x) for s, t, c, v, x in rows],
        schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String, S.NUMERIC_VALUE: pl.Float32,
                S.TEXT_VALUE: pl.String}, orient="row",
    ).sort(S.SUBJECT_ID, S.TIME, nulls_last=False, maintain_order=True)
    (root / "data" / "train").mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        part = frame.filter(pl.col(S.SUBJECT_ID) % shards == shard)
        pq.write_table(part.to_arrow(), root / "data" / "train" / f"{shard}.parquet")
    (root / "metadata").mkdir(exist_ok=True)
    descriptions = DESCRIPTIONS if codes is None else codes
    pl.DataFrame({S.CODE: list(descriptions), S.DESCRIPTION: list(descriptions.values())}).write_parquet(
        root / S.CODES_FILE)
    return root


def labels(*rows: tuple[int, datetime]) -> pl.DataFrame:
    return pl.DataFrame({S.SUBJECT_ID: [s for s, _ in rows], "prediction_time": [t for _, t in rows]},
                        schema={S.SUBJECT_ID: pl.Int64, "prediction_time": pl.Datetime("us")})


class Fitted:
    """A fitted serializer and the dataset it serializes rows of."""

    def __init__(self, serializer: TimelineSerializer, root: Path) -> None:
        self.serializer, self.root = serializer, root
        self.selection_ = serializer.selection_

    def serialize(self, rows: pl.DataFrame, progress: Callable[[int], None] | None = None
                  ) -> list[SerializedTimeline]:
        return self.serializer.serialize(rows, source=self.root, progress=progress)

    def texts(self, rows: pl.DataFrame) -> list[str]:
        return self.serializer.texts(rows, source=self.root)


def fitted(root: Path, config: SerializerConfig | None = None, count_tokens: Callable[[str], int] | None = None,
           train: pl.DataFrame | None = None) -> Fitted:
    """A serializer fitted on ``train``; by default on subject 1 at PRED, the row most tests serialize."""
    serializer = TimelineSerializer(config or SerializerConfig(), count_tokens)
    return Fitted(serializer.fit(labels((1, PRED)) if train is None else train, source=root), root)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "meds", SUBJECT_1)


def test_markdown_text_of_one_patient(dataset: Path) -> None:
    [timeline] = fitted(dataset, SerializerConfig(max_tokens=4096)).serialize(labels((1, PRED)))
    assert timeline.text == MARKDOWN_1
    assert (timeline.subject_id, timeline.prediction_time, timeline.format) == (1, PRED, "markdown")
    assert timeline.truncated == ()
    assert "2150" not in timeline.text and "2149" not in timeline.text  # relative times only, never a date


def test_recent_codes_newest_first_one_line_per_code(dataset: Path) -> None:
    config = SerializerConfig(format="recent_codes", max_tokens=4096)
    [timeline] = fitted(dataset, config).serialize(labels((1, PRED)))
    assert timeline.text == RECENT_CODES_1  # ties (creatinine and its flag at 07:00) by code


@pytest.mark.parametrize(("before", "expected"), [
    (timedelta(0), "at prediction time"),
    (timedelta(seconds=30), "under a minute before"),
    (timedelta(minutes=1), "1 minute before"),
    (timedelta(minutes=59), "59 minutes before"),
    (timedelta(hours=1), "1 hour before"),
    (timedelta(hours=47, minutes=59), "47 hours before"),
    (timedelta(days=2), "2 days before"),
    (timedelta(days=59), "59 days before"),
    (timedelta(days=60), "2 months before"),
    (timedelta(days=729), "24 months before"),
    (timedelta(days=730), "1 year before"),
    (timedelta(days=3653), "10 years before"),
])
def test_relative_times(tmp_path: Path, before: timedelta, expected: str) -> None:
    when = (PRED - before).isoformat(sep=" ")
    root = write_dataset(tmp_path, [(1, when, "ICD10CM//I50.9", None, None)])
    # no coding delay: this is about how times read, for a code of any age
    [text] = fitted(root, SerializerConfig(coding_delay="0")).texts(labels((1, PRED)))
    assert f"- Heart failure, unspecified ({expected})" in text


def test_lab_values_newest_first_capped_per_item_and_items_by_frequency(tmp_path: Path) -> None:
    rows: list[Row] = [(1, f"2150-03-0{d} 08:00", "LAB//50912//mg/dL", float(d), None) for d in range(1, 6)]
    rows += [(1, "2150-03-01 08:00", "LAB//51006//mg/dL", 30.0, None), (1, "2150-03-09 08:00", "LAB//1//x", 7.0, None)]
    rows += [(2, "2150-03-01 08:00", "LAB//50912//mg/dL", 1.0, None),
             (2, "2150-03-01 08:00", "LAB//51006//mg/dL", 9.0, None)]
    # The dataset-wide counts in codes.parquet call LAB//1//x the most frequent: the fitted rows decide.
    codes = pl.DataFrame({S.CODE: ["LAB//50912//mg/dL", "LAB//51006//mg/dL", "LAB//1//x"],
                          S.DESCRIPTION: ["Creatinine", "Urea", None], S.CODE_COUNT: [6, 2, 9000]})
    root = write_dataset(tmp_path, rows, codes={})
    codes.write_parquet(root / S.CODES_FILE)
    config = SerializerConfig(values_per_item=2, max_items=2, max_tokens=4096)
    serializer = fitted(root, config, train=labels((1, PRED), (2, PRED)))
    # values in the fitted rows' histories: creatinine 5 + 1, urea 1 + 1, LAB//1//x 1
    assert serializer.selection_.labs == (("LAB//50912//mg/dL", 6), ("LAB//51006//mg/dL", 2), ("LAB//1//x", 1))
    [text] = serializer.texts(labels((1, PRED)))
    # LAB//1//x is the newest but the least frequent item: not among the 2 shown; no flags known anywhere
    assert text.split("## Lab results\n")[1] == (
        "- Creatinine: 5 (5 days before); 4 (6 days before)\n"
        "- Urea: 30 (9 days before)"
    )


# Subjects 1-2 (train) have creatinine; 3-6 (held out) have urea, so urea is the more frequent lab of
# the whole dataset (and of codes.parquet), and only held-out subject 4 has a creatinine flag.
SPLIT_ROWS: list[Row] = [
    (1, "2150-03-09 08:00", "LAB//50912//mg/dL", 1.0, None),
    (2, "2150-03-08 08:00", "LAB//50912//mg/dL", 1.2, None),
    *[(s, "2150-03-09 08:00", "LAB//51006//mg/dL", 20.0 + s, None) for s in (3, 4, 5, 6)],
    (4, "2150-03-09 08:00", "LAB_FLAG//50912//abnormal", None, None),
    (6, "2150-03-10 10:00", "LAB//50912//mg/dL", 1.1, None),
]
SPLIT_CODES = {"LAB//50912//mg/dL": "Creatinine [mg/dL]", "LAB//51006//mg/dL": "Urea Nitrogen [mg/dL]",
               "LAB_FLAG//50912//abnormal": "Creatinine: flagged abnormal"}


def test_labs_are_chosen_on_the_fitted_rows_not_on_held_out_subjects(tmp_path: Path) -> None:
    root = write_dataset(tmp_path, SPLIT_ROWS, codes=SPLIT_CODES)
    pl.DataFrame({S.CODE: list(SPLIT_CODES), S.CODE_COUNT: [4, 4, 1]}).join(
        pl.read_parquet(root / S.CODES_FILE), on=S.CODE).write_parquet(root / S.CODES_FILE)
    config = SerializerConfig(max_items=1, max_tokens=4096)
    train, held_out = labels((1, PRED), (2, PRED)), labels((6, PRED))
    serializer = fitted(root, config, train=train)
    assert serializer.selection_ == ItemSelection(vitals=(), labs=(("LAB//50912//mg/dL", 2),), flagged_labs=(),
                                                  n_rows=2)
    # Subject 6 has both labs: creatinine, the train split's lab, is shown; no flag was seen in train,
    # so the value carries no "normal".
    [text] = serializer.texts(held_out)
    assert text == "## Demographics\n- Age: unknown\n\n## Lab results\n- Creatinine [mg/dL]: 1.1 (2 hours before)"
    # Fitted on every subject, urea (4 rows) outranks creatinine (3), and creatinine carries flags.
    everyone = fitted(root, config, train=labels(*[(s, PRED) for s in range(1, 7)]))
    assert everyone.selection_.labs == (("LAB//51006//mg/dL", 4), ("LAB//50912//mg/dL", 3))
    assert everyone.selection_.flagged_labs == ("50912",)
    assert everyone.texts(held_out)[0].endswith("## Lab results\n- Urea Nitrogen [mg/dL]: 26 (28 hours before)")


def test_a_value_counts_once_however_many_fitted_rows_see_it(tmp_path: Path) -> None:
    rows: list[Row] = [
        (1, "2150-03-01 08:00", "LAB//50912//mg/dL", 1.0, None),  # in all three of subject 1's histories
        (1, "2150-03-05 08:00", "LAB//50912//mg/dL", 1.1, None),  # in two
        (1, "2150-03-20 08:00", "LAB//50912//mg/dL", 9.9, None),  # after every prediction time: in none
        *[(2, f"2150-03-0{d} 08:00", "LAB//51006//mg/dL", 20.0 + d, None) for d in (1, 2, 3)],
    ]
    root = write_dataset(tmp_path, rows, codes=SPLIT_CODES)
    train = labels((1, T("2150-03-02")), (1, T("2150-03-06")), (1, PRED), (2, PRED))
    selection = fitted(root, train=train).selection_
    # urea 3 values, creatinine 2 (counted per label row it would be 3 + 2 = 5)
    assert selection.labs == (("LAB//51006//mg/dL", 3), ("LAB//50912//mg/dL", 2))
    assert selection.n_rows == 4


def test_serializing_needs_a_fit_on_some_rows(dataset: Path) -> None:
    with pytest.raises(ConfigError, match="expected a fitted TimelineSerializer"):
        TimelineSerializer().serialize(labels((1, PRED)), source=dataset)
    with pytest.raises(DataError, match="expected label rows to learn which labs and vitals to show"):
        TimelineSerializer().fit(labels(), source=dataset)
    # what it learned is kept: the fitted serializer writes the same text from events held in memory,
    # with no code dictionary of their own (the descriptions are the fitted ones)
    serializer = fitted(dataset, SerializerConfig(max_tokens=4096)).serializer
    events = InMemoryEvents(pl.read_parquet(shard_files(dataset)))
    assert serializer.texts(labels((1, PRED)), source=events) == [MARKDOWN_1]


def test_without_code_metadata_every_code_is_raw(tmp_path: Path) -> None:
    root = write_dataset(tmp_path, SUBJECT_1)
    (root / S.CODES_FILE).unlink()
    [text] = fitted(root, SerializerConfig(max_tokens=4096)).texts(labels((1, PRED)))
    assert "- GENDER//F" in text
    assert "- ICD10CM//I50.9 (3 months before)" in text


# A dataset from another ETL: its dataset.json says which prefixes are labs, vitals, ... (vocab/kinds.py).
OTHER_ETL: list[Row] = [
    (1, None, "SEX//F", None, None),
    (1, "2080-06-15 00:00", "MEDS_BIRTH", None, None),
    (1, "2150-03-01 12:00", "SNOMED//42343007", None, None),
    (1, "2150-03-08 08:00", "ENCOUNTER//inpatient", None, None),
    (1, "2150-03-09 07:00", "LOINC//2160-0//mg/dL", 1.0, None),
    (1, "2150-03-09 07:00", "LAB//51006//mg/dL", 30.0, None),  # not a lab in this dataset's vocabulary
    (1, "2150-03-10 07:00", "LOINC//2160-0//mg/dL", 2.5, None),
    (1, "2150-03-10 07:00", "LOINC_FLAG//2160-0//H", None, None),
    (1, "2150-03-10 10:00", "RX//furosemide", None, "40 mg IV"),
    (1, "2150-03-10 11:30", "VITALS//8867-4//bpm", 88.0, None),
]
OTHER_ETL_KINDS = {"vitals": ["VITALS"], "labs": ["LOINC"], "lab_flags": ["LOINC_FLAG"], "conditions": ["SNOMED"],
                   "medications": ["RX"], "procedures": [], "visits": ["ENCOUNTER"], "notes": [],
                   "coded_after_discharge": [], "sex": "SEX", "race": None, "insurance": None}


def test_sections_follow_the_code_kinds_the_dataset_declares(tmp_path: Path) -> None:
    codes = {"SEX//F": "Sex: F", "SNOMED//42343007": "Congestive heart failure",
             "ENCOUNTER//inpatient": "Inpatient encounter", "LOINC//2160-0//mg/dL": "Creatinine [mg/dL]",
             "LAB//51006//mg/dL": "Urea Nitrogen [mg/dL]", "RX//furosemide": "Furosemide",
             "VITALS//8867-4//bpm": "Heart rate [bpm]"}
    root = write_dataset(tmp_path / "declared", OTHER_ETL, codes=codes)
    (root / S.DATASET_FILE).write_text(json.dumps({"ehrpredict": {"code_kinds": OTHER_ETL_KINDS}}))
    [text] = fitted(root, SerializerConfig(max_tokens=4096)).texts(labels((1, PRED)))
    assert text == """\
## Demographics
- Age: 69 years
- Sex: F

## Vital signs and body metrics
- Heart rate [bpm]: 88 (30 minutes before)

## Lab results
- Creatinine [mg/dL]: 2.5 (5 hours before, H); 1 (29 hours before, normal)

## Conditions
- Congestive heart failure (9 days before)

## Medications
- Furosemide, 40 mg IV (2 hours before)

## Visits
- Inpatient encounter (2 days before)"""
    # Undeclared, the dataset gets ehrpredict's own kinds: of its codes only the LAB one is a lab.
    undeclared = write_dataset(tmp_path / "undeclared", OTHER_ETL, codes=codes)
    [text] = fitted(undeclared, SerializerConfig(max_tokens=4096)).texts(labels((1, PRED)))
    assert text.split("\n\n") == ["## Demographics\n- Age: 69 years\n- Sex: F",
                                  "## Lab results\n- Urea Nitrogen [mg/dL]: 30 (29 hours before)"]


def test_budget_cuts_the_oldest_lines_first_and_records_them(dataset: Path) -> None:
    full = fitted(dataset, SerializerConfig(max_tokens=4096)).serialize(labels((1, PRED)))[0]
    budget = approx_tokens(full.text) - 30  # about 120 characters too long
    [cut] = fitted(dataset, SerializerConfig(max_tokens=budget)).serialize(labels((1, PRED)))
    assert approx_tokens(cut.text) <= budget
    # Oldest first: heart failure (3 months), ZZZ (9 days), then the admission (2 days): whole
    # sections go when their last line does.
    assert cut.truncated == (("Conditions", 2), ("Visits", 1))
    assert [s.title for s in cut.sections] == ["Demographics", "Vital signs and body metrics", "Lab results",
                                               "Medications", "Notes"]
    assert cut.text == "\n\n".join(b for b in MARKDOWN_1.split("\n\n")
                                   if not b.startswith(("## Conditions", "## Visits")))


def test_tiny_budget_keeps_only_demographics(dataset: Path) -> None:
    [cut] = fitted(dataset, SerializerConfig(max_tokens=1)).serialize(labels((1, PRED)))
    assert cut.text == "## Demographics\n- Age: 69 years\n- Sex: F"  # never cut, even over budget
    assert dict(cut.truncated) == {"Vital signs and body metrics": 1, "Lab results": 1, "Conditions": 2,
                                   "Medications": 1, "Visits": 1, "Notes": 1}


def test_any_tokenizer_gives_the_same_cut_as_the_character_estimate(dataset: Path) -> None:
    for budget in (20, 60, 90, 120, 150, 4096):
        config = SerializerConfig(max_tokens=budget)
        fast = fitted(dataset, config).serialize(labels((1, PRED)))
        slow = fitted(dataset, config, count_tokens=lambda t: math.ceil(len(t) / 4)).serialize(
            labels((1, PRED)))
        assert fast == slow


def test_tokenizer_is_used_for_the_budget(dataset: Path) -> None:
    def words(text: str) -> int:
        return len(text.split())

    [timeline] = fitted(dataset, SerializerConfig(max_tokens=40), count_tokens=words).serialize(
        labels((1, PRED)))
    assert words(timeline.text) <= 40 < words(MARKDOWN_1)
    assert timeline.truncated


def test_occlusion_renders_without_a_section_or_a_line() -> None:
    timeline = SerializedTimeline(1, PRED, "markdown", (
        Section("Demographics", ("- Age: 69 years",)),
        Section("Conditions", ("- A (1 day before)", "- B (2 days before)")),
        Section("Visits", ("- V (3 days before)",)),
    ), ())
    assert timeline.render(omit_section="Conditions") == (
        "## Demographics\n- Age: 69 years\n\n## Visits\n- V (3 days before)")
    assert timeline.render(omit_line=("Conditions", 1)) == (
        "## Demographics\n- Age: 69 years\n\n## Conditions\n- A (1 day before)\n\n## Visits\n- V (3 days before)")
    assert timeline.render(omit_line=("Visits", 0)) == (
        "## Demographics\n- Age: 69 years\n\n## Conditions\n- A (1 day before)\n- B (2 days before)")
    assert timeline.render() == timeline.text
    with pytest.raises(ConfigError, match="expected a section of this timeline"):
        timeline.render(omit_section="Labs")
    with pytest.raises(ConfigError, match=r"expected a line index in 0\.\.0 of section 'Visits', got 1"):
        timeline.render(omit_line=("Visits", 1))


def test_notes_only_from_the_past_and_only_when_included(dataset: Path) -> None:
    early = T("2150-03-09 11:00")  # before the radiology note was stored
    on = fitted(dataset, SerializerConfig(max_tokens=4096)).serialize(labels((1, PRED)))[0]
    off = fitted(dataset, SerializerConfig(max_tokens=4096, include_notes=False)).serialize(
        labels((1, PRED)))[0]
    before = fitted(dataset, SerializerConfig(max_tokens=4096)).serialize(labels((1, early)))[0]
    assert "## Notes" in on.text and "patient died" not in on.text
    assert off.text == MARKDOWN_1.split("\n\n## Notes")[0]
    assert "## Notes" not in before.text and "9.9" not in before.text
    short = fitted(dataset, SerializerConfig(max_tokens=4096, note_chars=12)).texts(labels((1, PRED)))[0]
    assert short.endswith("- Clinical note: RADIOLOGY (24 hours before): CHEST X-RAY: …")


def test_rows_keep_the_labels_order_across_shards_and_report_progress(tmp_path: Path) -> None:
    rows = [*SUBJECT_1, (2, "2150-01-01 00:00", "ICD10CM//I50.9", None, None), (2, None, "GENDER//F", None, None)]
    root = write_dataset(tmp_path, rows, shards=2)
    seen: list[int] = []
    timelines = fitted(root, SerializerConfig(max_tokens=4096)).serialize(
        labels((2, PRED), (1, PRED), (3, PRED), (1, T("2100-01-01"))), progress=seen.append)
    assert [(t.subject_id, t.prediction_time) for t in timelines] == [(2, PRED), (1, PRED), (3, PRED),
                                                                       (1, T("2100-01-01"))]
    assert timelines[0].text == "## Demographics\n- Age: unknown\n- Sex: F\n\n## Conditions\n" \
                                "- Heart failure, unspecified (2 months before)"
    assert timelines[1].text == MARKDOWN_1
    assert timelines[2].text == "## Demographics\n- Age: unknown"  # subject 3 has no events at all
    assert timelines[3].text == "## Demographics\n- Age: 19 years\n- Sex: F"
    assert seen[-1] == 4 and seen == sorted(seen)


def test_same_input_gives_byte_identical_text(tmp_path: Path) -> None:
    ties: list[Row] = [(1, "2150-03-10 07:00", "LAB//50912//mg/dL", v, None) for v in (3.0, 1.0, 2.0)]
    ties += [(1, "2150-03-10 08:00", "HOSPITAL_ADMISSION//EW EMER.", None, x) for x in ("B", "A")]
    a = write_dataset(tmp_path / "a", [*SUBJECT_1, *ties])
    b = write_dataset(tmp_path / "b", [*reversed(ties), *reversed(SUBJECT_1)])  # same events, other file order
    texts = [fitted(root, SerializerConfig(max_tokens=4096, format=f)).texts(labels((1, PRED)))
             for root in (a, b, a) for f in FORMATS]
    assert texts[:2] == texts[2:4] == texts[4:]
    # ties by value; a flag belongs to every value of its item at its time (MEDS has no link between them)
    assert "1 (5 hours before, abnormal); 2 (5 hours before, abnormal); 2.5 (5 hours before, abnormal)" in texts[0][0]
    assert "- Hospital admission: EW EMER., A (4 hours before)\n- Hospital admission: EW EMER., B" in texts[0][0]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"format": "json"}, "expected format one of markdown, recent_codes, got 'json'"),
    ({"max_tokens": 0}, "expected max_tokens a whole number >= 1, got 0"),
    ({"values_per_item": 1.5}, "expected values_per_item a whole number >= 1, got 1.5"),
    ({"max_items": True}, "expected max_items a whole number >= 1, got True"),
    ({"note_chars": -1}, "expected note_chars a whole number >= 1, got -1"),
    ({"include_notes": "yes"}, "expected include_notes true or false, got 'yes'"),
])
def test_config_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SerializerConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_labels_and_datasets_fail_clearly(dataset: Path, tmp_path: Path) -> None:
    serializer = fitted(dataset)
    with pytest.raises(SchemaError, match="missing prediction_time"):
        serializer.serialize(pl.DataFrame({S.SUBJECT_ID: [1]}))
    with pytest.raises(SchemaError, match="expected prediction_time of type Datetime, got String"):
        serializer.serialize(pl.DataFrame({S.SUBJECT_ID: [1], "prediction_time": ["2150-01-01"]}))
    with pytest.raises(DataError, match="expected no nulls"):
        serializer.serialize(labels((1, PRED)).with_columns(pl.lit(None, pl.Datetime("us")).alias("prediction_time")))
    with pytest.raises(DataError, match="got no shards"):
        serializer.serializer.serialize(labels((1, PRED)), source=tmp_path / "nothing")
    assert serializer.serialize(labels()) == []
    assert SERIALIZER_VERSION == "1.1"


# --- leakage: events after the prediction time never change the text ------------------------------

CODES = ["LAB//50912//mg/dL", "LAB_FLAG//50912//abnormal", "ICD10CM//I50.9", "MEDICATION//Furosemide",
         "CHART//220045//bpm", "HOSPITAL_ADMISSION//EW EMER.", "NOTE//RADIOLOGY", "ICD10CM//ZZZ"]
Drawn = tuple[int, int, str, float | None, str | None]
event = st.tuples(
    st.integers(1, 2),                      # subject
    st.integers(0, 10 * 24 * 60),           # minutes before the prediction time (past) or after it (future)
    st.sampled_from(CODES),
    st.one_of(st.none(), st.sampled_from([0.5, 1.0, 7.5])),
    st.one_of(st.none(), st.sampled_from(["a", "b c"])),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(past=st.lists(event, max_size=25), future=st.lists(event, min_size=1, max_size=25),
       fmt=st.sampled_from(FORMATS), budget=st.sampled_from([40, 4096]))
def test_events_after_prediction_time_never_change_the_text(tmp_path_factory: pytest.TempPathFactory,
                                                            past: list[Drawn], future: list[Drawn],
                                                            fmt: str, budget: int) -> None:
    static: list[Row] = [(1, None, "GENDER//F", None, None), (2, "2100-01-01 00:00", "MEDS_BIRTH", None, None)]
    before: list[Row] = [(s, (PRED - timedelta(minutes=m)).isoformat(sep=" "), c, v, x) for s, m, c, v, x in past]
    after: list[Row] = [(s, (PRED + timedelta(minutes=m + 1)).isoformat(sep=" "), c, v, x) for s, m, c, v, x in future]
    root = tmp_path_factory.mktemp("leak")
    config = SerializerConfig(format=fmt, max_tokens=budget)
    rows = labels((1, PRED), (2, PRED), (1, PRED - timedelta(days=1)))
    base = fitted(write_dataset(root / "a", static + before), config, train=rows).serialize(rows)
    more = fitted(write_dataset(root / "b", static + before + after), config, train=rows).serialize(rows)
    assert base == more


def test_an_event_exactly_at_prediction_time_is_shown(tmp_path: Path) -> None:
    root = write_dataset(tmp_path, [(1, "2150-03-10 12:00", "LAB//50912//mg/dL", 2.0, None),
                                    (1, "2150-03-10 12:00:01", "LAB//50912//mg/dL", 9.0, None)])
    [text] = fitted(root).texts(labels((1, PRED)))
    # no "normal": codes.parquet lists a creatinine flag, but no fitted row's history has one
    assert "- Creatinine [mg/dL]: 2 (at prediction time)" in text and "9" not in text


# --- the CLI ------------------------------------------------------------------------------------------


def cli_dataset(root: Path, held_out: bool = False) -> Path:
    """Subject 1: an 11-day stay (long_los_7d labels it at admission + 48 h); subject 2: no stay; with
    ``held_out``, subject 3 in the held-out split: an 11-day stay with a creatinine and a urea."""
    rows: list[Row] = [
        *SUBJECT_1[:4],
        (1, "2150-03-08 10:00", "HOSPITAL_ADMISSION//EW EMER.", None, None),
        (1, "2150-03-19 10:00", "HOSPITAL_DISCHARGE//HOME", None, None),
        (1, "2150-03-09 07:00", "LAB//50912//mg/dL", 1.0, None),
        (2, "2090-01-01 00:00", "MEDS_BIRTH", None, None),
    ]
    if held_out:
        rows += [
            (3, "2090-01-01 00:00", "MEDS_BIRTH", None, None),
            (3, "2150-05-01 10:00", "HOSPITAL_ADMISSION//EW EMER.", None, None),
            (3, "2150-05-12 10:00", "HOSPITAL_DISCHARGE//HOME", None, None),
            (3, "2150-05-02 08:00", "LAB//51006//mg/dL", 30.0, None),
            (3, "2150-05-02 09:00", "LAB//50912//mg/dL", 1.4, None),
        ]
    write_dataset(root, rows)
    data = pl.read_parquet(root / "data" / "train" / "0.parquet")  # the labeler needs hadm_id and stay_id
    hadm = pl.when(pl.col(S.CODE).str.starts_with("HOSPITAL_")).then(pl.lit(100, pl.Int64)).alias(S.HADM_ID)
    shard = root / "data" / "train" / "0.parquet"
    data.with_columns(hadm, pl.lit(None, pl.Int64).alias(S.STAY_ID)).write_parquet(shard)
    splits = [(1, S.TRAIN), (2, S.TRAIN)] + ([(3, S.HELD_OUT)] if held_out else [])
    pl.DataFrame(splits, schema=[S.SUBJECT_ID, S.SPLIT], orient="row").write_parquet(root / S.SPLITS_FILE)
    return root


def test_cli_prints_the_subjects_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = cli_dataset(tmp_path)
    assert main(["serialize", str(root), "long_los_7d", "--subject", "1", "--max-tokens", "4096"]) == 0
    out = capsys.readouterr().out
    assert "subject 1, prediction time 2150-03-10 10:00:00" in out
    assert "- Creatinine [mg/dL]: 1 (27 hours before)" in out
    assert "- Hospital discharge" not in out  # after the prediction time
    assert "truncated: nothing" in out
    assert main(["serialize", str(root), "long_los_7d", "--subject", "1", "--max-tokens", "10",
                 "--format", "recent_codes", "--no-notes"]) == 0
    out = capsys.readouterr().out
    assert "Age: 69 years" in out and "truncated: Recent codes 4 lines" in out


def test_cli_shows_the_labs_of_the_train_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = cli_dataset(tmp_path, held_out=True)
    assert main(["serialize", str(root), "long_los_7d", "--subject", "3", "--max-tokens", "4096"]) == 0
    out = capsys.readouterr().out
    assert "subject 3, prediction time 2150-05-03 10:00:00" in out
    # No train subject has a urea, so the held-out subject's urea is not among the labs shown.
    assert "## Lab results\n- Creatinine [mg/dL]: 1.4 (25 hours before)\n\n" in out
    assert "LAB//51006" not in out


def test_cli_says_when_the_subject_has_no_label_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = cli_dataset(tmp_path)
    assert main(["serialize", str(root), "long_los_7d", "--subject", "2"]) == 1
    err = capsys.readouterr().err
    assert "subject 2 has no label rows for task long_los_7d (the task has 1 label row" in err
    with pytest.raises(SystemExit):  # --subject is required
        main(["serialize", str(root), "long_los_7d"])


# --- a small synthetic hospital, ingested like real MIMIC-IV ---------------------------------------


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ehrpredict.ingest.mimic4 import ingest_mimic4
    from ehrpredict.ingest.synth import SynthConfig, generate

    root = tmp_path_factory.mktemp("hospital")
    generate(root / "raw", SynthConfig(n_patients=12, seed=3))
    ingest_mimic4(root / "raw", root / "meds")
    return root / "meds"


def test_synthetic_hospital_reads_like_a_record(hospital: Path) -> None:
    from ehrpredict.tasks.labeler import label_many
    from ehrpredict.tasks.spec import load_task

    rows = label_many(hospital, [load_task("long_los_7d")])["long_los_7d"].labels
    assert rows.height > 0
    timelines = fitted(hospital, train=rows).serialize(rows)
    texts = [t.text for t in timelines]
    assert all(approx_tokens(text) <= 512 for text in texts)
    assert all(text.startswith("## Demographics\n- Age: ") and "\n- Sex: " in text for text in texts)
    joined = "\n".join(texts)
    assert "## Lab results" in joined and "## Medications" in joined and "## Visits" in joined
    assert " before" in joined and "abnormal" in joined
    # descriptions, never raw codes (every code of the synthetic hospital has one); no shifted dates
    assert "LAB//" not in joined and "MEDICATION//" not in joined
    assert not any(str(year) in joined for year in range(2100, 2200))
    again = fitted(hospital, train=rows).serialize(rows)
    assert again == timelines
    codes = fitted(hospital, SerializerConfig(format="recent_codes"), train=rows).texts(rows)
    assert all(approx_tokens(text) <= 512 for text in codes)


def test_billing_codes_of_the_stay_ending_at_prediction_time_are_not_in_the_text(tmp_path: Path) -> None:
    # A prediction at discharge: the stay's heart-failure code is timed at discharge (= PRED) but coded
    # afterwards, so by default (a 7-day coding delay) the text does not show it; a code from a stay
    # discharged 9 days before does show. "0" is the optimistic setting that shows both.
    rows: list[Row] = [
        (1, "2080-06-15 00:00", "MEDS_BIRTH", None, None),
        (1, "2150-03-01 12:00", "ICD10CM//ZZZ", None, None),
        (1, "2150-03-10 12:00", "ICD10CM//I50.9", None, None),
        (1, "2150-03-10 12:00", "HOSPITAL_DISCHARGE//HOME", None, None),
    ]
    root = write_dataset(tmp_path, rows, codes=DESCRIPTIONS)
    texts = {delay: fitted(root, SerializerConfig(coding_delay=delay)).texts(labels((1, PRED)))[0]
             for delay in ("7d", "0")}
    assert "ICD10CM//ZZZ (9 days before)" in texts["7d"] and "Heart failure" not in texts["7d"]
    assert "Hospital discharge: HOME" in texts["7d"]  # not a billing code: known at discharge
    assert "Heart failure, unspecified (at prediction time)" in texts["0"]
