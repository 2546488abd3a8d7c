"""`ehrpredict benchmark` end to end on a small synthetic hospital, including two leakage alarms:
no model may beat the generator's own probabilities, and a model trained on shuffled labels must
not rank better than chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehrpredict.cli import main
from ehrpredict.experiments.results import BenchmarkReport
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate
from ehrpredict.reporting.html import render_report


def run_cli_benchmark(args: list[str]) -> None:
    assert main(["benchmark", *args, "--quiet"]) == 0


def assert_report_files_agree(run: Path) -> None:
    """report.json reads back into a typed report that writes the same bytes, and report.html is that
    typed report rendered: the file, the page and the CLI read one type."""
    text = (run / "report.json").read_text()
    typed = BenchmarkReport.from_json(json.loads(text))
    assert json.dumps(typed.to_json(), indent=2) + "\n" == text
    assert (run / "report.html").read_text() == render_report(typed)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("bench")
    generate(root / "raw", SynthConfig(n_patients=1500, seed=5))
    ingest_mimic4(root / "raw", root / "meds")
    tasks = "mortality_in_hospital_24h,ed_hospitalization,discharge_diagnoses_icd10,length_of_stay_days"
    run_cli_benchmark([str(root / "meds"), "--tasks", tasks, "--heads", "lr", "--bootstrap", "100",
                       "--out", str(root / "run")])
    return json.loads((root / "run" / "report.json").read_text()), root / "run"


def test_report_json_and_html_read_the_same_typed_report(report: tuple[dict, Path]) -> None:
    payload, run = report
    assert_report_files_agree(run)
    kinds = {key for t in payload["tasks"] for m in t["models"]
             for key in m.keys() & {"metrics", "regression_metrics", "multilabel_metrics"}}
    assert kinds == {"metrics", "regression_metrics", "multilabel_metrics"}  # every kind of model was compared
    assert any((t["oracle"] or {}).get("status") == "done" for t in payload["tasks"])


def test_report_files_and_reproducibility_fields(report: tuple[dict, Path]) -> None:
    payload, run = report
    html = (run / "report.html").read_text()
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")  # opens offline
    assert "mortality_in_hospital_24h" in html
    assert payload["config"]["seed"] == 0 and payload["dataset"]["fingerprint"]
    assert payload["environment"]["scikit-learn"] == "1.9.1"
    multilabel = next(t for t in payload["tasks"] if t["task"] == "discharge_diagnoses_icd10")
    metrics = multilabel["models"][0]["multilabel_metrics"]
    assert 0 < metrics["labels_present"] <= multilabel["models"][0]["categories"]
    assert 0.0 < metrics["micro_f1"] <= 1.0 and 0.0 < metrics["mean_average_precision"] <= 1.0
    assert "micro-F1" in html


def test_models_do_not_beat_the_oracle_and_shuffled_labels_give_chance(report: tuple[dict, Path]) -> None:
    payload, _ = report
    for task in (t for t in payload["tasks"] if t["status"] == "done" and t.get("oracle")):
        oracle = task["oracle"]["metrics"]["auroc"]["value"]
        for model in task["models"]:
            auroc = model["metrics"]["auroc"]
            assert auroc["value"] > 0.6, task["task"]  # there is signal to find
            assert auroc["ci_low"] <= oracle, f"{task['task']}: {auroc} above the oracle's {oracle:.3f}: leakage?"
            control = model["label_shuffle_control"]
            assert control["permutations"] == 5 and len(control["auroc"]["replicates"]) == 5
            # the mean over permutations is near chance (a z-style bound: one permutation alone swings widely)
            spread = 3 * control["auroc"]["sd"] / 5**0.5
            assert abs(control["auroc"]["value"] - 0.5) <= max(0.1, spread), (task["task"], control["auroc"])
        assert task["splits"]["held_out"]["n"] > 0


def test_regression_task_beats_the_mean_and_its_control_does_not(report: tuple[dict, Path]) -> None:
    payload, run = report
    task = next(t for t in payload["tasks"] if t["task"] == "length_of_stay_days")
    assert task["status"] == "done" and task["splits"]["held_out"]["mean"] > 2.0  # stays last > 48 h
    model = task["models"][0]
    metrics = model["regression_metrics"]
    assert metrics["r2"]["value"] > 0.05 and metrics["mae"]["ci_low"] <= metrics["mae"]["value"]
    assert model["label_shuffle_control"]["r2"]["value"] < metrics["r2"]["ci_low"]
    assert "length_of_stay_days" in (run / "report.html").read_text()


def test_subgroup_tables_by_sex_age_race_and_insurance(report: tuple[dict, Path]) -> None:
    payload, _ = report
    task = next(t for t in payload["tasks"] if t["task"] == "mortality_in_hospital_24h")
    tables = task["models"][0]["subgroups"]
    assert set(tables) == {"sex", "age_band", "race", "insurance"}
    held_out = task["splits"]["held_out"]["n"]
    for attribute, values in tables.items():
        assert sum(v["n"] for v in values.values()) == held_out, attribute  # every row in exactly one group
    assert set(tables["sex"]) <= {"F", "M", "unknown"}
    evaluated = [v for v in tables["sex"].values() if v["status"] == "done"]
    assert evaluated and all(v["metrics"]["auroc"]["ci_low"] <= v["metrics"]["auroc"]["value"] for v in evaluated)


def test_few_shot_curve_follows_the_ehrshot_protocol(tmp_path: Path) -> None:
    generate(tmp_path / "raw", SynthConfig(n_patients=600, seed=9))
    ingest_mimic4(tmp_path / "raw", tmp_path / "meds")
    run_cli_benchmark([str(tmp_path / "meds"), "--tasks", "long_los_7d", "--heads", "lr", "--bootstrap",
                                  "20", "--few-shot", "--out", str(tmp_path / "run")])
    assert_report_files_agree(tmp_path / "run")
    task = json.loads((tmp_path / "run" / "report.json").read_text())["tasks"][0]
    curve = task["models"][0]["few_shot"]
    done = [int(k) for k, v in curve.items() if v["status"] == "done"]
    assert done[:3] == [1, 2, 4]  # k doubles from 1
    for k in done:
        assert len(curve[str(k)]["auroc_replicates"]) == 5
        assert all(0.0 <= a <= 1.0 for a in curve[str(k)]["auroc_replicates"])
    positives = task["splits"]["train"]["positives"]
    assert max(done) <= positives  # stops where the train split runs out of positives
    assert "Few-shot" in (tmp_path / "run" / "report.html").read_text()
