"""fit_pipeline → FittedPipeline on a small synthetic hospital: the same patients scored from the dataset
on disk and from their events held in memory (what an API request carries) get identical numbers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError, SchemaError
from ehrpredict.events.source import InMemoryEvents, ParquetEvents
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate
from ehrpredict.pipeline import TaskData, fit_pipeline
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task

TASKS = ("mortality_in_hospital_24h", "length_of_stay_days", "discharge_diagnoses_icd10")


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> tuple[ParquetEvents, dict[str, TaskData]]:
    root = tmp_path_factory.mktemp("pipeline")
    generate(root / "raw", SynthConfig(n_patients=400, seed=11))
    ingest_mimic4(root / "raw", root / "meds")
    source = ParquetEvents(root / "meds")
    specs = [load_task(t) for t in TASKS]
    labeled = label_many(source.root, specs)
    return source, {s.name: TaskData.from_splits(source, labeled[s.name].labels) for s in specs}


def _in_memory(source: ParquetEvents, rows: pl.DataFrame) -> InMemoryEvents:
    """Every event of the rows' subjects, read out of the dataset's shards, without its code dictionary
    or metadata: what a fitted pipeline needs must be in what it learned."""
    subjects = rows.get_column(S.SUBJECT_ID).unique()
    events = pl.concat([source.read(shard, list(S.EVENT_COLUMNS), subjects) for shard in source.shards()])
    return InMemoryEvents(events.select(S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE, S.TEXT_VALUE))


@pytest.mark.parametrize("head", ["lgbm", "lr"])
def test_on_disk_and_in_memory_events_give_identical_probabilities(hospital: tuple, head: str) -> None:
    source, data = hospital
    task = data["mortality_in_hospital_24h"]
    pipeline = fit_pipeline(load_task("mortality_in_hospital_24h"), "counts", head, task, seed=0)
    held_out = task.parts[S.HELD_OUT]
    rows = held_out.filter(pl.col(S.SUBJECT_ID).is_in(held_out.get_column(S.SUBJECT_ID).unique().sort()
                                                        .head(8).implode()))
    assert rows.height >= 8
    on_disk = pipeline.predict_proba(source, rows)
    in_memory = pipeline.predict_proba(_in_memory(source, rows), rows)
    np.testing.assert_array_equal(on_disk, in_memory)
    # ... and equal to what the benchmark scores from the task's cached held-out matrix
    index = held_out.with_row_index("_i").join(rows.select(S.SUBJECT_ID, S.PREDICTION_TIME),
                                               on=[S.SUBJECT_ID, S.PREDICTION_TIME], how="semi")
    cached = pipeline.predict_proba_features(task.matrix("counts", S.HELD_OUT))[index.get_column("_i").to_numpy()]
    np.testing.assert_array_equal(np.sort(on_disk), np.sort(cached))
    assert len(np.unique(on_disk)) > 1  # real scores, not a constant


def test_regression_and_multilabel_fit_through_the_same_path(hospital: tuple) -> None:
    source, data = hospital
    los = data["length_of_stay_days"]
    regressor = fit_pipeline(load_task("length_of_stay_days"), "counts", "lgbm", los, seed=0)
    rows = los.parts[S.HELD_OUT].head(5)
    np.testing.assert_array_equal(regressor.predict(source, rows), regressor.predict(_in_memory(source, rows), rows))
    with pytest.raises(ConfigError, match="use predict"):
        regressor.predict_proba(source, rows)
    diagnoses = data["discharge_diagnoses_icd10"]
    multilabel = fit_pipeline(load_task("discharge_diagnoses_icd10"), "counts", "lr", diagnoses, seed=0)
    rows = diagnoses.parts[S.HELD_OUT].head(5)
    P = multilabel.predict_proba(source, rows)
    assert P.shape == (5, len(multilabel.target.categories_))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(P, multilabel.predict_proba(_in_memory(source, rows), rows))
    with pytest.raises(ConfigError, match="expected head lr"):
        fit_pipeline(load_task("discharge_diagnoses_icd10"), "counts", "lgbm", diagnoses)


def test_a_fitted_featurizer_keeps_no_path(hospital: tuple) -> None:
    source, data = hospital
    pipeline = fit_pipeline(load_task("mortality_in_hospital_24h"), "counts", "lr",
                            data["mortality_in_hospital_24h"], seed=0)
    state = [repr(v) for v in vars(pipeline.featurizer).values()]
    assert not any(str(source.root) in s for s in state)


def test_bad_in_memory_events_fail_clearly() -> None:
    with pytest.raises(SchemaError, match="missing time"):
        InMemoryEvents(pl.DataFrame({S.SUBJECT_ID: [1], S.CODE: ["X"]}))
    with pytest.raises(SchemaError, match="expected column time of type Datetime"):
        InMemoryEvents(pl.DataFrame({S.SUBJECT_ID: [1], S.CODE: ["X"], S.TIME: ["yesterday"]}))
