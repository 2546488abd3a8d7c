"""The text representation end to end on a small synthetic hospital: `ehrpredict benchmark` with
counts, text and counts+text (few-shot included), the embedding cache on a rerun, a text bundle
(`ehrpredict fit`, `predict`, and `explain` by section occlusion) and `ehrpredict serialize`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.bundle import load_bundle
from ehrpredict.bundle.files import file_hashes
from ehrpredict.cli import main
from ehrpredict.errors import ConfigError
from ehrpredict.events.source import InMemoryEvents, ParquetEvents
from ehrpredict.explain.occlusion import explain_occlusion, fit_text_model
from ehrpredict.features.registry import RepresentationSettings
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate

TASK = "ed_hospitalization"  # balanced classes and a strong signal at triage: informative even on a small cohort
BUDGET = "128"  # one short window per text keeps the embedding cost of this test low on 2 CPU cores


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text")
    generate(root / "raw", SynthConfig(n_patients=300, seed=3))
    ingest_mimic4(root / "raw", root / "meds")
    return root / "meds"


def _run(dataset: Path, out: Path, cache: Path) -> dict:
    code = main(["benchmark", str(dataset), "--tasks", TASK, "--representations", "counts,text,counts+text",
                 "--heads", "lr", "--bootstrap", "50", "--shuffle-permutations", "2", "--few-shot",
                 "--text-max-tokens", BUDGET, "--out", str(out), "--cache-dir", str(cache), "--quiet"])
    assert code == 0
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def runs(dataset: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    root = tmp_path_factory.mktemp("runs")
    return _run(dataset, root / "first", cache), _run(dataset, root / "second", cache)


def test_three_representations_are_trained_and_evaluated(runs: tuple[dict, dict]) -> None:
    task = runs[0]["tasks"][0]
    assert task["status"] == "done"
    models = {m["representation"]: m for m in task["models"]}
    assert set(models) == {"counts", "text", "counts+text"}
    assert models["text"]["n_features"] == 384  # all-MiniLM-L6-v2
    assert models["counts+text"]["n_features"] == models["counts"]["n_features"] + 384
    for model in models.values():
        assert model["metrics"]["auroc"]["value"] > 0.6, model["representation"]  # there is signal to find
        assert model["few_shot"]["1"]["status"] == "done"
    n_labels = sum(split["n"] for split in task["splits"].values())
    text = models["text"]["text"]
    assert text["n_texts"] == n_labels and text["dimension"] == 384
    # the labs and vitals the texts show were chosen on the train split's label rows only
    assert text["selection"]["n_rows"] == task["splits"]["train"]["n"] < n_labels
    assert 0 < len(text["selection"]["labs"]) <= 48 and 0 < len(text["selection"]["vitals"]) <= 48
    comparisons = {(c["a"], c["b"]) for c in task["comparisons"]}
    assert ("counts+text/lr", "text/lr") in comparisons


def test_a_rerun_reads_every_embedding_from_the_cache_and_reproduces_the_numbers(runs: tuple[dict, dict]) -> None:
    first, second = (r["tasks"][0] for r in runs)
    text = next(m for m in second["models"] if m["representation"] == "text")["text"]
    assert text["cache_hits"] == text["unique_texts"] and text["embedded"] == 0
    for a, b in zip(first["models"], second["models"], strict=True):
        assert a["metrics"] == b["metrics"], a["representation"]  # same seed, same report numbers


def test_section_occlusion_explains_a_held_out_prediction(dataset: Path, cache: Path, runs: tuple) -> None:
    settings = RepresentationSettings(text_max_tokens=int(BUDGET), cache_dir=cache)
    model = fit_text_model(dataset, TASK, "counts+text", "lr", settings)
    assert model.text.selection_.n_rows == model.labels.filter(pl.col(S.SPLIT) == S.TRAIN).height
    subject = model.labels.filter(pl.col(S.SPLIT) == S.HELD_OUT).item(0, S.SUBJECT_ID)
    result = explain_occlusion(model, subject, by="section")
    titles = [s.title for s in result.timeline.sections]
    assert sorted(i.section for i in result.items) == sorted(titles)
    assert 0.0 < result.risk < 1.0
    for item in result.items:
        assert item.delta == pytest.approx(result.risk - item.risk_without)
    assert [abs(i.delta) for i in result.items] == sorted((abs(i.delta) for i in result.items), reverse=True)
    lines = explain_occlusion(model, subject, by="line")
    assert len(lines.items) == sum(len(s.lines) for s in result.timeline.sections)


def test_a_text_pipeline_scores_events_in_memory_as_on_disk(dataset: Path, cache: Path, runs: tuple) -> None:
    settings = RepresentationSettings(text_max_tokens=int(BUDGET), cache_dir=cache)
    model = fit_text_model(dataset, TASK, "counts+text", "lr", settings)
    held_out = model.labels.filter(pl.col(S.SPLIT) == S.HELD_OUT).head(4).select(S.SUBJECT_ID, S.PREDICTION_TIME)
    source = ParquetEvents(dataset)
    subjects = held_out.get_column(S.SUBJECT_ID).unique()
    events = pl.concat([source.read(shard, list(S.EVENT_COLUMNS), subjects) for shard in source.shards()])
    # no code dictionary: the descriptions the text shows are the ones the featurizer learned
    in_memory = InMemoryEvents(events)
    np.testing.assert_array_equal(model.pipeline.predict_proba(source, held_out),
                                  model.pipeline.predict_proba(in_memory, held_out))


def test_explain_and_serialize_commands(dataset: Path, cache: Path, runs: tuple, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    labels = pl.read_parquet(dataset / S.SPLITS_FILE)
    assert main(["label", str(dataset), TASK, str(tmp_path / "labels.parquet")]) == 0
    subject = pl.read_parquet(tmp_path / "labels.parquet").item(0, S.SUBJECT_ID)
    assert subject in labels.get_column(S.SUBJECT_ID).to_list()
    capsys.readouterr()
    assert main(["serialize", str(dataset), TASK, "--subject", str(subject)]) == 0
    printed = capsys.readouterr().out
    header, text = printed.split("===\n", 1)
    assert "## Demographics" in text and "at prediction time" in text
    year = header.split("prediction time ")[1][:4]
    assert year not in text  # times in the text are relative; dataset dates never appear
    bundle = tmp_path / "text-model"
    assert main(["fit", str(dataset), TASK, "--representation", "text", "--head", "lr", "--out", str(bundle),
                 "--text-max-tokens", BUDGET, "--cache-dir", str(cache), "--bootstrap", "20",
                 "--shuffle-permutations", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["explain", str(bundle), str(dataset), "--subject", str(subject), "--cache-dir", str(cache)]) == 0
    assert "predicted risk" in capsys.readouterr().out
    assert main(["explain", str(bundle), str(dataset), "--subject", "1"]) == 1  # no such subject: a clear error
    assert "subject 1" in capsys.readouterr().err
    # the bundle's held-out probabilities are reproduced from the dataset by predict (embeddings read from
    # the cache fit filled: batched encoding is not bit-stable across batch compositions)
    fitted = pl.read_parquet(bundle / "report" / "held_out_predictions.parquet")
    assert main(["predict", str(bundle), str(dataset), "--out", str(tmp_path / "p.parquet"), "--cache-dir", str(cache),
                 "--quiet"]) == 0
    predicted = pl.read_parquet(tmp_path / "p.parquet").join(fitted, on=[S.SUBJECT_ID, S.PREDICTION_TIME])
    assert predicted.height == fitted.height
    np.testing.assert_array_equal(predicted.get_column("predicted_boolean_probability").to_numpy(),
                                  predicted.get_column("predicted_boolean_probability_right").to_numpy())
    # another encoder than the one fitted with is refused on load
    state_path = bundle / "featurizer" / "state.json"
    state = json.loads(state_path.read_text())
    state["spec"]["encoder_identity"] = "another-encoder"
    state_path.write_text(json.dumps(state))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = file_hashes(bundle)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="encoder the model was fitted with"):
        load_bundle(bundle)
