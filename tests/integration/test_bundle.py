"""fit → bundle → predict on a small synthetic hospital: the bundle reproduces the fitted model's held-out
output exactly, its uncalibrated score is the benchmark's, and a bundle that was altered, is incomplete
or comes from a newer ehrpredict is refused with the reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.bundle import BundleError, load_bundle
from ehrpredict.bundle.files import MANIFEST, file_hashes
from ehrpredict.bundle.fit import fit_bundle
from ehrpredict.bundle.predict import predict_bundle, read_label_file
from ehrpredict.cli import main
from ehrpredict.errors import DataError
from ehrpredict.events.source import InMemoryEvents, ParquetEvents
from ehrpredict.experiments.config import BenchmarkConfig
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate
from ehrpredict.pipeline import TaskData, fit_pipeline
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

BINARY = "long_los_7d"
MODELS = {  # bundle name → (task, representation, head)
    "binary-lgbm": (BINARY, "counts", "lgbm"),
    "binary-lr": (BINARY, "counts", "lr"),
    "regression": ("length_of_stay_days", "counts", "lgbm"),
    "multilabel": ("discharge_diagnoses_icd10", "counts", "lr"),
}


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    generate(root / "raw", SynthConfig(n_patients=400, seed=5))
    ingest_mimic4(root / "raw", root / "meds")
    return root / "meds"


def _config(dataset: Path, task: str, representation: str, head: str) -> BenchmarkConfig:
    return BenchmarkConfig(dataset=dataset, out=dataset, tasks=(task,), representations=(representation,),
                           heads=(head,), n_boot=20, shuffle_permutations=1, seed=0)


@pytest.fixture(scope="module")
def bundles(hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("bundles")
    paths = {}
    for name, (task, representation, head) in MODELS.items():
        fit_bundle(_config(hospital, task, representation, head), out / name)
        paths[name] = out / name
    return paths


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_on_held_out_reproduces_the_fitted_models_output(hospital: Path, bundles: dict[str, Path],
                                                                  name: str, tmp_path: Path) -> None:
    fitted = pl.read_parquet(bundles[name] / "report" / "held_out_predictions.parquet")
    labels = fitted.select(S.SUBJECT_ID, S.PREDICTION_TIME)
    result = predict_bundle(bundles[name], hospital, tmp_path / "p.parquet", labels=labels)
    predicted = pl.read_parquet(result.out)
    assert predicted.height == fitted.height > 10
    joined = fitted.join(predicted, on=[S.SUBJECT_ID, S.PREDICTION_TIME], how="inner", suffix="_new")
    assert joined.height == fitted.height
    for column in predicted.columns:
        if column in (S.SUBJECT_ID, S.PREDICTION_TIME) or column not in fitted.columns:
            continue
        assert joined.get_column(column).equals(joined.get_column(f"{column}_new"), check_names=False), column


def test_binary_predictions_follow_the_meds_prediction_schema(hospital: Path, bundles: dict[str, Path],
                                                              tmp_path: Path) -> None:
    result = predict_bundle(bundles["binary-lgbm"], hospital, tmp_path / "p.parquet")
    frame = pl.read_parquet(result.out)
    assert frame.schema == pl.Schema({S.SUBJECT_ID: pl.Int64, S.PREDICTION_TIME: pl.Datetime("us"),
                                      "predicted_boolean_probability": pl.Float32,
                                      "predicted_boolean_value": pl.Boolean, S.BOOLEAN_VALUE: pl.Boolean})
    labels = label_many(hospital, [load_task(BINARY)])[BINARY].labels
    assert frame.height == labels.height  # every split's rows, none dropped
    bundle = load_bundle(bundles["binary-lgbm"])
    assert bundle.threshold is not None
    assert frame.get_column("predicted_boolean_value").equals(
        frame.get_column("predicted_boolean_probability").cast(pl.Float64) >= bundle.threshold, check_names=False)
    summary = json.loads(result.summary.read_text())
    assert summary["rows"] == frame.height and summary["vocabulary"]["seen_share"] > 0.9
    assert summary["vocabulary"]["warning"] is None


@pytest.mark.parametrize("head", ["lgbm", "lr"])
def test_the_uncalibrated_score_is_the_benchmarks(hospital: Path, bundles: dict[str, Path], head: str) -> None:
    spec = load_task(BINARY)
    source = ParquetEvents(hospital)
    data = TaskData.from_splits(source, label_many(hospital, [spec])[BINARY].labels)
    pipeline = fit_pipeline(spec, "counts", head, data, seed=0)  # what the benchmark fits for this seed
    benchmark = pipeline.predict_proba_features(data.matrix("counts", S.HELD_OUT))
    fitted = pl.read_parquet(bundles[f"binary-{head}"] / "report" / "held_out_predictions.parquet")
    keys = data.parts[S.HELD_OUT].select(S.SUBJECT_ID, S.PREDICTION_TIME)
    assert keys.equals(fitted.select(S.SUBJECT_ID, S.PREDICTION_TIME))
    np.testing.assert_array_equal(fitted.get_column("uncalibrated_probability").to_numpy(), benchmark)


def test_a_bundle_holds_no_pickle_and_names_every_file_with_its_hash(bundles: dict[str, Path]) -> None:
    for path in bundles.values():
        manifest = json.loads((path / MANIFEST).read_text())
        files = {p for p in manifest["files"]}
        assert files == set(file_hashes(path))
        suffixes = {Path(f).suffix for f in files}
        assert suffixes <= {".json", ".parquet", ".npy", ".txt", ".yaml", ".md", ".html"}, suffixes
        for npy in path.rglob("*.npy"):
            np.load(npy, allow_pickle=False)  # raises for an object (pickled) array


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def _rehash(bundle: Path) -> None:
    """Update the manifest after a change (what a forger could do: hashes are not a signature)."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"] = file_hashes(bundle)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_a_tampered_file_is_refused_naming_it(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles["binary-lr"], tmp_path)
    target = next((bundle / "head").glob("*coef.npy"))
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"head/{target.name} to have sha256 .* altered"):
        load_bundle(bundle)


def test_a_missing_file_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles["binary-lgbm"], tmp_path)
    (bundle / "calibration.json").unlink()
    with pytest.raises(BundleError, match=r"calibration\.json in the bundle .* incomplete"):
        load_bundle(bundle)


def test_a_newer_format_version_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles["binary-lgbm"], tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["format_version"] = 99
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 1 or older, got version 99"):
        load_bundle(bundle)


def test_a_pickled_array_is_refused_even_with_a_matching_hash(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles["binary-lr"], tmp_path)
    target = next((bundle / "head").glob("*coef.npy"))
    np.save(target, np.array([{"not": "numbers"}], dtype=object), allow_pickle=True)
    _rehash(bundle)
    with pytest.raises(BundleError, match=r"numeric \.npy array"):
        load_bundle(bundle)


def test_an_unknown_step_kind_is_refused(bundles: dict[str, Path], tmp_path: Path) -> None:
    bundle = _copy(bundles["binary-lr"], tmp_path)
    state = json.loads((bundle / "head" / "state.json").read_text())
    state["spec"]["steps"][-1]["kind"] = "os.system"
    (bundle / "head" / "state.json").write_text(json.dumps(state))
    _rehash(bundle)
    with pytest.raises(Exception, match=r"head step kind in .* got 'os\.system'"):
        load_bundle(bundle)


def test_unseen_codes_are_counted_and_low_overlap_warned(hospital: Path, bundles: dict[str, Path],
                                                         tmp_path: Path) -> None:
    source = ParquetEvents(hospital)
    labels = pl.read_parquet(bundles["binary-lgbm"] / "report" / "held_out_predictions.parquet").head(5)
    subjects = labels.get_column(S.SUBJECT_ID).unique()
    events = pl.concat([source.read(s, [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE], subjects)
                        for s in source.shards()])
    renamed = events.with_columns(pl.when(pl.col(S.TIME).is_not_null()).then(pl.lit("OTHERSITE//") + pl.col(S.CODE))
                                  .otherwise(pl.col(S.CODE)).alias(S.CODE))
    result = predict_bundle(bundles["binary-lgbm"], InMemoryEvents(renamed), tmp_path / "p.parquet",
                            labels=labels.select(S.SUBJECT_ID, S.PREDICTION_TIME))
    vocabulary = result.vocabulary
    assert vocabulary.unseen_events > 0 and vocabulary.seen_share < 0.5
    assert vocabulary.top_unseen[0][0].startswith("OTHERSITE//")
    assert "another vocabulary" in (vocabulary.warning() or "")


def test_a_labels_file_with_a_bad_time_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("subject_id,prediction_time\n1,2150-01-01 08:00\n2,yesterday\n")
    with pytest.raises(DataError, match=r"rows.csv: row 2: expected prediction_time .* got 'yesterday'"):
        read_label_file(path)
    path.write_text("subject_id,prediction_time,boolean_value\n1,2150-01-01 08:00,true\n2,2150-01-01 08:00,maybe\n")
    with pytest.raises(DataError, match=r"row 2: expected boolean_value as true/false or 1/0, got 'maybe'"):
        read_label_file(path)
    path.write_text("subject_id,prediction_time,boolean_value\n1,2150-01-01 08:00,TRUE\n2,2150-01-02,0\n")
    assert read_label_file(path).get_column("boolean_value").to_list() == [True, False]
    path.write_text("subject_id,when\n1,2150-01-01\n")
    with pytest.raises(DataError, match="expected columns subject_id and prediction_time"):
        read_label_file(path)


def test_fit_and_predict_commands(hospital: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "model"
    assert main(["fit", str(hospital), BINARY, "--head", "lr", "--out", str(bundle), "--bootstrap", "20",
                 "--shuffle-permutations", "1", "--threshold", "alert-rate:0.2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "threshold" in out and "alert-rate:0.2" in out and "MODEL_CARD.md" in out
    card = (bundle / "MODEL_CARD.md").read_text()
    assert "## Calibration" in card and "Label-shuffle control" in card
    assert main(["fit", str(hospital), BINARY, "--out", str(bundle)]) == 1  # exists: refused before any work
    assert "--overwrite" in capsys.readouterr().err
    assert main(["predict", str(bundle), str(hospital), "--out", str(tmp_path / "p.parquet"), "--quiet"]) == 0
    assert "predictions for" in capsys.readouterr().out
    tuning_alerts = json.loads((bundle / MANIFEST).read_text())["operating_point"]["tuning"]["alerts_per_100"]
    assert tuning_alerts <= 20.0


def test_meds_evaluation_reads_our_predictions_and_agrees(hospital: Path, bundles: dict[str, Path], tmp_path: Path,
                                                          meds_evaluation: Callable[[Path], Any]) -> None:
    """meds-evaluation 0.0.6 (its own environment) accepts ``ehrpredict predict``'s file, and on one row per
    subject (it samples rows per subject) its AUROC equals ours."""
    labels = label_many(hospital, [load_task(BINARY)])[BINARY].labels
    first = labels.sort(S.SUBJECT_ID, S.PREDICTION_TIME).unique(S.SUBJECT_ID, keep="first", maintain_order=True)
    first.select(S.SUBJECT_ID, S.PREDICTION_TIME, S.BOOLEAN_VALUE).write_parquet(tmp_path / "rows.parquet")
    rows = tmp_path / "rows.parquet"
    result = predict_bundle(bundles["binary-lgbm"], hospital, tmp_path / "one.parquet", labels=rows)
    assert pl.read_parquet(result.out).get_column(S.SUBJECT_ID).is_unique().all()
    report = meds_evaluation(result.out)
    assert report.ok, report.failures
    assert report.exact_types_error is None and not report.casts  # its strict schema, no conversion needed
    assert report.meds_evaluation_auroc == pytest.approx(report.ehrpredict_auroc, abs=1e-9)
    assert 0.5 < report.meds_evaluation_auroc < 1.0
    # several rows per subject: the schema check still passes
    every = predict_bundle(bundles["binary-lgbm"], hospital, tmp_path / "all.parquet")
    assert meds_evaluation(every.out).schema_error is None


@pytest.mark.parametrize("name", ["binary-lgbm", "binary-lr", "regression"])
def test_a_loaded_bundles_contributions_sum_to_its_raw_score(hospital: Path, bundles: dict[str, Path],
                                                             name: str) -> None:
    from ehrpredict.explain.contributions import contributions

    bundle = load_bundle(bundles[name])
    rows = pl.read_parquet(bundles[name] / "report" / "held_out_predictions.parquet").select(
        S.SUBJECT_ID, S.PREDICTION_TIME)
    X = bundle.pipeline.features(hospital, rows)
    c = contributions(bundle.pipeline, X)
    head = bundle.pipeline.head
    if name == "binary-lgbm":
        raw = head["head"].model_.predict(X, raw_score=True)
    elif name == "binary-lr":  # float64 from the model's own coefficients (the head computes in float32)
        Z = head[:-1].transform(X).astype(np.float64)
        model = head["head"].model_
        raw = Z @ model.coef_.ravel().astype(np.float64) + float(model.intercept_[0])
    else:
        raw = head.predict(X)
    np.testing.assert_allclose(c.base + np.asarray(c.values.sum(axis=1)).ravel(), raw, rtol=0, atol=1e-6)
    assert c.values.nnz > 0


def test_predict_explain_writes_the_top_factors_beside_the_predictions(hospital: Path, bundles: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    rows = pl.read_parquet(bundles["binary-lgbm"] / "report" / "held_out_predictions.parquet").select(
        S.SUBJECT_ID, S.PREDICTION_TIME)
    result = predict_bundle(bundles["binary-lgbm"], hospital, tmp_path / "p.parquet", labels=rows, explain=3)
    factors = pl.read_parquet(tmp_path / "p.explanations.parquet")
    assert set(factors.get_column("direction").unique()) <= {"up", "down"}
    per_row = factors.group_by(S.SUBJECT_ID, S.PREDICTION_TIME, "direction").len()
    assert per_row.get_column("len").max() == 3
    assert (factors.filter(pl.col("direction") == "up").get_column("contribution") > 0).all()
    assert (factors.filter(pl.col("direction") == "down").get_column("contribution") < 0).all()
    assert factors.get_column("factor").str.len_chars().min() > 3
    # the predictions file itself keeps the MEDS prediction schema (no extra column)
    assert "explanation" not in pl.read_parquet(result.out).columns


def test_explain_command_prints_a_card_and_writes_html(hospital: Path, bundles: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    subject = pl.read_parquet(bundles["binary-lgbm"] / "report" / "held_out_predictions.parquet").item(
        0, S.SUBJECT_ID)
    html = tmp_path / "card.html"
    assert main(["explain", str(bundles["binary-lgbm"]), str(hospital), "--subject", str(subject),
                 "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "Calibrated risk" in out and "Pushing the risk up" in out and "Threshold" in out
    assert html.read_text().startswith("<!doctype html>")


def test_on_the_real_demo_fit_bundle_predict_reproduces_and_explains(demo_dataset: Path, tmp_path: Path) -> None:
    """The real MIMIC-IV demo: a kept model scores held_out from the dataset exactly as fitted, and a
    held-out patient's card reads as words whose contributions add up to the score."""
    bundle_dir = tmp_path / "demo-model"
    fit_bundle(_config(demo_dataset, BINARY, "counts", "lgbm"), bundle_dir)
    fitted = pl.read_parquet(bundle_dir / "report" / "held_out_predictions.parquet")
    result = predict_bundle(bundle_dir, demo_dataset, tmp_path / "p.parquet")
    predicted = pl.read_parquet(result.out).join(fitted, on=[S.SUBJECT_ID, S.PREDICTION_TIME], how="inner")
    assert predicted.height == fitted.height > 5
    np.testing.assert_array_equal(predicted.get_column("predicted_boolean_probability").to_numpy(),
                                  predicted.get_column("predicted_boolean_probability_right").to_numpy())
    from ehrpredict.bundle.explain import explain_bundle_rows

    bundle = load_bundle(bundle_dir)
    card = explain_bundle_rows(bundle, ParquetEvents(demo_dataset), fitted.head(1).select(
        S.SUBJECT_ID, S.PREDICTION_TIME))[0]
    assert card.up or card.down
    assert card.calibrated_probability == pytest.approx(float(fitted.item(0, "predicted_boolean_probability")))
    assert all("//" not in f.text for f in (*card.up, *card.down))  # words from the demo's dictionaries


def test_refitting_the_same_model_gives_the_same_model_version(hospital: Path, bundles: dict[str, Path],
                                                               tmp_path: Path) -> None:
    task, representation, head = MODELS["binary-lgbm"]
    again = fit_bundle(_config(hospital, task, representation, head), tmp_path / "again")
    first = json.loads((bundles["binary-lgbm"] / MANIFEST).read_text())
    assert again.bundle.manifest["model_version"] == first["model_version"]  # the card's creation time is not part
