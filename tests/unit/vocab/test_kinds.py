"""The code kinds: one config, written by ingestion into dataset.json and read back by every later stage."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import meds
import polars as pl
import pyarrow.parquet as pq
import pytest

from ehrpredict import schema as S
from ehrpredict.dataset import dataset_code_kinds
from ehrpredict.errors import ConfigError, DataError
from ehrpredict.events.cutoff import coding_delay
from ehrpredict.ingest.meds_input import normalize_meds
from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS, CodeKinds, code_kinds

LOINC = CodeKinds(vitals=("VITALS",), labs=("LOINC",), lab_flags=("LOINC_FLAG",), conditions=("SNOMED",),
                  medications=("RX",), procedures=(), visits=("ENCOUNTER",), notes=(),
                  coded_after_discharge=("SNOMED",), sex="SEX", race=None, insurance="PAYER")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"labs": ("LAB//",)}, "labs: expected code prefixes without '//', got 'LAB//'"),
    ({"notes": ("",)}, "notes: expected code prefixes, got ''"),
    ({"medications": ["RX"]}, "medications: expected a tuple of code prefixes, got list"),
    ({"visits": ("ENC", "ENC")}, "visits: expected each prefix once, got 'ENC' repeated"),
    ({"procedures": ("LAB",)}, "procedures: expected each prefix under one kind, got 'LAB' also under labs"),
    ({"coded_after_discharge": (1,)}, "coded_after_discharge: expected code prefixes, got 1"),
    ({"sex": "GENDER//"}, "sex: expected None or a code prefix without '//', got 'GENDER//'"),
    ({"insurance": 3}, "insurance: expected None or a code prefix, got 3"),
])
def test_config_errors_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="invalid CodeKinds: .*" + re.escape(message)):
        CodeKinds(**kwargs)  # type: ignore[arg-type]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        CodeKinds(labs=("A//",), sex="", conditions=("LAB_FLAG",))
    assert [p.split(":")[0] for p in str(error.value).removeprefix("invalid CodeKinds: ").split("; ")] == [
        "labs", "conditions", "sex"]


def test_a_vital_prefix_may_also_name_another_kind() -> None:
    # ED_TRIAGE//heart_rate is a vital sign, the bare ED_TRIAGE code the chief complaint (a visit).
    assert "ED_TRIAGE" in DEFAULT_CODE_KINDS.vitals and "ED_TRIAGE" in DEFAULT_CODE_KINDS.visits
    assert DEFAULT_CODE_KINDS.attributes() == {"sex": "GENDER//", "race": "RACE//", "insurance": "INSURANCE//"}
    assert LOINC.attributes() == {"sex": "SEX//", "insurance": "PAYER//"}


def test_what_ingestion_writes_reads_back_the_same() -> None:
    written = json.loads(json.dumps({"ehrpredict": {"code_kinds": LOINC.to_json()}}))
    assert code_kinds(written) == LOINC
    assert code_kinds({}) == code_kinds({"ehrpredict": {"source": "meds"}}) == DEFAULT_CODE_KINDS
    partial = code_kinds({"ehrpredict": {"code_kinds": {"labs": ["LOINC"], "race": None}}})
    assert (partial.labs, partial.race, partial.vitals) == (("LOINC",), None, DEFAULT_CODE_KINDS.vitals)


def test_datasets_ingested_before_visit_starts_existed_get_the_default() -> None:
    # dataset.json written before CodeKinds had visit_starts: every other key, but not that one
    older = {k: v for k, v in DEFAULT_CODE_KINDS.to_json().items() if k != "visit_starts"}
    assert code_kinds({"ehrpredict": {"code_kinds": older}}).visit_starts == (
        "HOSPITAL_ADMISSION", "ICU_ADMISSION", "ED_ARRIVAL")
    assert code_kinds({"ehrpredict": {"code_kinds": {"visit_starts": ["ENCOUNTER"]}}}).visit_starts == ("ENCOUNTER",)


def test_datasets_ingested_before_code_kinds_keep_their_coded_after_discharge_list() -> None:
    legacy = code_kinds({"ehrpredict": {"coded_after_discharge": ["ICD10CM"]}})
    assert legacy.coded_after_discharge == ("ICD10CM",)
    assert legacy == CodeKinds(coded_after_discharge=("ICD10CM",))
    both = {"code_kinds": {"coded_after_discharge": ["DRG", "ICD10CM"]}, "coded_after_discharge": ["ICD10CM", "DRG"]}
    assert code_kinds({"ehrpredict": both}).coded_after_discharge == ("DRG", "ICD10CM")
    with pytest.raises(DataError, match=r"ehrpredict.coded_after_discharge in x.json to agree with .*\['DRG'\]"):
        code_kinds({"ehrpredict": {"code_kinds": {"coded_after_discharge": ["DRG"]}, "coded_after_discharge": []}},
                   source="x.json")


@pytest.mark.parametrize(("ours", "message"), [
    ([], "expected ehrpredict in m/dataset.json to be an object, got list"),
    ({"code_kinds": ["LOINC"]}, "expected ehrpredict.code_kinds in m/dataset.json to be an object, got list"),
    ({"code_kinds": {"lab": [], "sexe": "SEX"}}, "got unknown keys 'lab', 'sexe'"),
    ({"code_kinds": {"labs": "LOINC"}}, "labs: expected a tuple of code prefixes, got str"),
])
def test_bad_metadata_fails_naming_the_file_and_key(ours: object, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        code_kinds({"ehrpredict": ours}, source="m/dataset.json")


def test_the_coding_delay_holds_back_the_vocabularies_the_dataset_declares(tmp_path: Path) -> None:
    (tmp_path / "metadata").mkdir()
    assert coding_delay(tmp_path, timedelta(days=7)).vocabularies == DEFAULT_CODE_KINDS.coded_after_discharge
    (tmp_path / S.DATASET_FILE).write_text(json.dumps({"ehrpredict": {"code_kinds": LOINC.to_json()}}))
    assert coding_delay(tmp_path, timedelta(days=7)).vocabularies == ("SNOMED",)
    assert dataset_code_kinds(tmp_path) == LOINC
    (tmp_path / S.DATASET_FILE).write_text("{")
    with pytest.raises(DataError, match=r"expected JSON in .*dataset\.json, got invalid JSON at line 1"):
        dataset_code_kinds(tmp_path)


def test_ingesting_a_meds_dataset_keeps_the_kinds_it_declares(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {S.SUBJECT_ID: [1, 1], S.TIME: [None, datetime(2150, 1, 1)], S.CODE: ["SEX//F", "LOINC//2160-0//mg/dL"],
         S.NUMERIC_VALUE: [None, 1.0], S.TEXT_VALUE: [None, None]},
        schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"), S.CODE: pl.String, S.NUMERIC_VALUE: pl.Float32,
                S.TEXT_VALUE: pl.String},
    )
    source = tmp_path / "in"
    (source / "data").mkdir(parents=True)
    (source / "metadata").mkdir()
    pq.write_table(frame.to_arrow().cast(meds.DataSchema.schema()), source / "data" / "0.parquet")
    (source / S.DATASET_FILE).write_text(json.dumps({"ehrpredict": {"code_kinds": LOINC.to_json()}}))
    normalize_meds(source, tmp_path / "out")
    assert dataset_code_kinds(tmp_path / "out") == LOINC
    (source / S.DATASET_FILE).unlink()  # declaring nothing: ehrpredict's own kinds, stated in the output
    normalize_meds(source, tmp_path / "out", overwrite=True)
    written = json.loads((tmp_path / "out" / S.DATASET_FILE).read_text())["ehrpredict"]["code_kinds"]
    assert written == DEFAULT_CODE_KINDS.to_json()
