import polars as pl

from ehrpredict.vocab.codes import build_code_metadata, describe
from ehrpredict.vocab.dictionaries import Dictionaries

DICTS = Dictionaries(
    icd={"ICD10CM": {"I50.9": "Heart failure (from d_icd)"}},
    labitems={"50912": "Creatinine (Blood, Chemistry)"},
    items={"220045": "Heart Rate"},
    drg={"HCFA//864": "FEVER"},
)


def test_source_dictionary_comes_before_packages() -> None:
    assert describe("ICD10CM//I50.9", DICTS) == ("Heart failure (from d_icd)", ["ICD10CM//I50"])
    # Not in the source dictionary: the ICD-10-CM package list names it.
    assert describe("ICD10CM//I50.1", DICTS)[0] == "Left ventricular failure, unspecified"
    # A non-billable category is named by simple-icd-10-cm.
    assert describe("ICD10CM//I50", DICTS)[0] == "Heart failure"


def test_item_codes_use_labels_units_and_roll_up_to_the_item() -> None:
    assert describe("LAB//50912//mg/dL", DICTS) == ("Creatinine (Blood, Chemistry) [mg/dL]", ["LAB//50912"])
    assert describe("LAB_FLAG//50912//abnormal", DICTS) == (
        "Creatinine (Blood, Chemistry): flagged abnormal", ["LAB//50912"],
    )
    assert describe("CHART//220045//bpm", DICTS) == ("Heart Rate [bpm]", ["CHART//220045"])
    assert describe("DRG//HCFA//864", DICTS) == ("DRG: FEVER", [])


def test_codes_without_dictionary_read_as_words() -> None:
    assert describe("HOSPITAL_DISCHARGE//HOME", DICTS)[0] == "Hospital discharge: HOME"
    assert describe("LAB//99999//mg/dL", DICTS)[0] == "Lab test: 99999, mg/dL"
    assert describe("SOMETHING_NEW//x", DICTS)[0] == "Something new: x"


def test_metadata_adds_icd_ancestors_with_zero_count() -> None:
    counts = pl.DataFrame({"code": ["ICD10CM//I50.91", "GENDER//F"], "n_events": [3, 1]})
    meta = build_code_metadata(counts, DICTS)
    assert meta.get_column("code").to_list() == ["GENDER//F", "ICD10CM//I50", "ICD10CM//I50.9", "ICD10CM//I50.91"]
    assert meta.get_column("n_events").to_list() == [1, 0, 0, 3]
    assert meta.filter(pl.col("code") == "ICD10CM//I50.91").get_column("parent_codes").to_list() == [["ICD10CM//I50.9"]]
