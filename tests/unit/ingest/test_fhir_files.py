"""``ehrpredict ingest fhir`` / ``export fhir`` on small files: NDJSON (plain and gzip) and Bundles in one
directory, every resource accounted for in the data-quality report, bad ones quarantined with their file,
line and field path."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_fhir import ADMISSION, CONDITION, ED_STAY, HEART_RATE, ICU_STAY, OUTPUT, PATIENT, SICU, TRIAGE, canonical

from ehrpredict import schema as S
from ehrpredict.cli import main
from ehrpredict.ingest.fhir import FhirInputError, events_from_resources, export_fhir, ingest_fhir
from ehrpredict.ingest.fhir.validate import validate_resource


def ndjson(path: Path, lines: list[Any]) -> None:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.fixture
def fhir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "fhir"
    root.mkdir()
    ndjson(root / "Patient.ndjson", [PATIENT])
    ndjson(root / "Encounter.ndjson.gz", [ADMISSION, ICU_STAY, ED_STAY])
    ndjson(root / "Observation.ndjson", [
        OUTPUT,
        "{not json",  # line 2
        {**OUTPUT, "id": "obs-2", "valueQuantity": {"value": "abc"}},  # line 3: fails R4B validation
        {**OUTPUT, "id": "obs-3", "subject": {"reference": "Patient/nobody"}},  # line 4: unknown patient
        {**{k: v for k, v in HEART_RATE.items() if k != "valueQuantity"}, "id": "obs-4",
         "dataAbsentReason": {"text": "not taken"}},  # line 5: no value
    ])
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": r} for r in (SICU, CONDITION, TRIAGE, HEART_RATE)]}
    (root / "more.json").write_text(json.dumps(bundle))
    (root / "README.txt").write_text("not FHIR")
    return root


def test_every_resource_is_used_or_quarantined_with_file_line_and_field(fhir_dir: Path, tmp_path: Path) -> None:
    result = ingest_fhir(fhir_dir, tmp_path / "meds")
    tables = result.report["tables"]
    assert tables["fhir/Observation"]["rows_read"] == 5
    assert tables["fhir/Observation"]["quarantined_by_reason"] == {
        "cannot map: expected a Patient present in the input": 1,
        "invalid FHIR R4 resource (R4B validation)": 1,
    }
    # a line that is not JSON has no resource type it could be counted under
    assert tables["fhir/unknown"]["quarantined_by_reason"] == {"malformed JSON line": 1}
    assert tables["fhir/Observation"]["flagged_by_reason"] == {"no value (dataAbsentReason): no event": 1}
    assert result.report["unrecognized_files"] == ["README.txt"]
    quarantine = pl.read_parquet(tmp_path / "meds" / S.QUARANTINE_FILE).sort(S.Q_ROW)
    assert quarantine.select(S.Q_FILE, S.Q_ROW, S.Q_FIELD).rows() == [
        ("Observation.ndjson", 2, None),
        ("Observation.ndjson", 3, "valueQuantity.value"),
        ("Observation.ndjson", 4, "subject.reference"),
    ]
    totals = result.report["totals"]
    assert totals["rows_read"] == totals["rows_used"] + totals["rows_quarantined"] == 13  # 1 + 3 + 5 + 4 resources


def test_files_give_the_same_events_as_the_in_memory_route(fhir_dir: Path, tmp_path: Path) -> None:
    ingest_fhir(fhir_dir, tmp_path / "meds")
    written = pl.read_parquet(tmp_path / "meds" / S.DATA_DIR)
    expected = events_from_resources([PATIENT, ADMISSION, ICU_STAY, ED_STAY, SICU, CONDITION, OUTPUT, TRIAGE,
                                      HEART_RATE])
    assert canonical(written).equals(canonical(expected))


def test_export_then_ingest_through_the_cli(fhir_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ingest", "fhir", str(fhir_dir), str(tmp_path / "meds"), "--quiet"]) == 0
    assert main(["export", "fhir", str(tmp_path / "meds"), str(tmp_path / "out")]) == 0
    assert "Patient 1" in capsys.readouterr().out
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["Condition.ndjson", "Encounter.ndjson", "Observation.ndjson", "Patient.ndjson"]
    for path in (tmp_path / "out").iterdir():
        for line in path.read_text().splitlines():
            validate_resource(json.loads(line))
    assert main(["ingest", "fhir", str(tmp_path / "out"), str(tmp_path / "back"), "--quiet"]) == 0
    first = pl.read_parquet(tmp_path / "meds" / S.DATA_DIR)
    back = pl.read_parquet(tmp_path / "back" / S.DATA_DIR)
    assert canonical(back).equals(canonical(first))
    assert pl.read_parquet(tmp_path / "back" / S.SPLITS_FILE).equals(pl.read_parquet(tmp_path / "meds" / S.SPLITS_FILE))


def test_a_json_file_that_is_not_a_bundle_of_a_known_type_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "document", "entry": []}))
    with pytest.raises(FhirInputError, match=r"b.json: type"):
        ingest_fhir(tmp_path / "b.json", tmp_path / "meds")
    assert main(["ingest", "fhir", str(tmp_path / "missing"), str(tmp_path / "meds")]) == 1


def test_export_can_select_subjects(fhir_dir: Path, tmp_path: Path) -> None:
    ingest_fhir(fhir_dir, tmp_path / "meds")
    assert export_fhir(tmp_path / "meds", tmp_path / "none", subjects=[1]) == {}
    assert export_fhir(tmp_path / "meds", tmp_path / "one", subjects=[10007795])["Patient"] == 1
