"""``ehrpredict predict``: score a MEDS dataset with a bundle, shard by shard.

The label rows (``subject_id, prediction_time``) are the bundle's task labeled on the dataset, or a
file given with ``--labels``. Each shard's rows are featurized from that shard alone and their
predictions appended to the output, so memory follows one shard, not the dataset. The output is the
MEDS prediction schema (binary: ``predicted_boolean_probability`` (calibrated),
``predicted_boolean_value`` (at the bundle's threshold), and ``boolean_value`` when the task's truth
is known), rows in shard order; it is written beside its final name and moved there when complete.

Beside it, ``PREDICTIONS.json`` reports what the model saw: how many of the events its rows could use
have codes the training data never had (they are ignored by the features), which ones, and how many of
the model's own feature codes occur at all. A low overlap means the dataset speaks another vocabulary
than the training data; the model's scores then mean little, and the report says so loudly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.bundle.model import Bundle, feature_codes, load_bundle, prediction_frame
from ehrpredict.errors import DataError, SchemaError
from ehrpredict.events.cutoff import PREDICTION_TIME
from ehrpredict.events.source import EventSource, InMemoryEvents, ParquetEvents, ShardView, as_source
from ehrpredict.executor import Executor
from ehrpredict.ingest.output import write_json
from ehrpredict.tasks.labeler import label_many

Progress = Callable[[str], None]
LOW_OVERLAP = 0.5  # below this share of usable events with codes seen in training: a loud warning
TOP_UNSEEN = 20
_ORDER = "_order"


@dataclass(frozen=True)
class VocabularyReport:
    """Codes of the events the scored rows could use (at or before their subject's latest prediction
    time) against the codes of the training subjects' events."""

    events: int = 0
    unseen_events: int = 0
    codes: int = 0
    unseen_codes: int = 0
    top_unseen: tuple[tuple[str, int], ...] = ()
    model_codes: int = 0
    model_codes_present: int = 0

    @property
    def seen_share(self) -> float:
        return 1.0 - self.unseen_events / self.events if self.events else float("nan")

    def warning(self) -> str | None:
        if self.events and self.seen_share < LOW_OVERLAP:
            return (f"only {self.seen_share:.0%} of the events the rows could use have codes the training data had "
                    f"({self.unseen_codes:,} of {self.codes:,} distinct codes are new to the model): this dataset "
                    "speaks another vocabulary, and the model's scores mean little on it")
        return None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "top_unseen": [list(p) for p in self.top_unseen], "seen_share": self.seen_share,
                "warning": self.warning()}


@dataclass(frozen=True)
class PredictResult:
    out: Path
    summary: Path
    rows: int
    patients: int
    rows_without_events: int
    seconds: float
    vocabulary: VocabularyReport
    labels_from: str
    shards: int
    explanations: Path | None = None  # --explain K: the factors file

    @property
    def patients_per_second(self) -> float:
        return self.patients / self.seconds if self.seconds > 0 else float("nan")


def read_label_file(path: str | Path) -> pl.DataFrame:
    """``subject_id, prediction_time`` rows from a parquet or CSV file; other columns are kept (a truth
    column named as the task's label is reported beside the predictions). Errors name the file, the
    row and the column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"expected a labels file (parquet or CSV with subject_id, prediction_time), got no such file: "
                        f"{path}")
    try:
        frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: expected a readable parquet or CSV file, got: {exc}") from exc
    missing = [c for c in (S.SUBJECT_ID, PREDICTION_TIME) if c not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: expected columns subject_id and prediction_time, got {frame.columns}")
    for column, dtype in ((S.SUBJECT_ID, pl.Int64), (PREDICTION_TIME, pl.Datetime("us"))):
        raw = frame.get_column(column)
        if raw.dtype == pl.String and dtype == pl.Datetime("us"):
            cast = raw.str.strip_chars().str.to_datetime(time_unit="us", strict=False)
        else:
            cast = raw.cast(dtype, strict=False)
        bad = (cast.is_null()).arg_true()
        if len(bad):
            row = int(bad[0])
            raise DataError(f"{path}: row {row + 1}: expected {column} as "
                            f"{'an integer' if column == S.SUBJECT_ID else 'a date-time like 2150-01-02 08:00'}, got "
                            f"{raw[row]!r} ({len(bad)} such row{'s' * (len(bad) > 1)})")
        frame = frame.with_columns(cast.alias(column))
    if S.BOOLEAN_VALUE in frame.columns and frame.get_column(S.BOOLEAN_VALUE).dtype != pl.Boolean:
        raw = frame.get_column(S.BOOLEAN_VALUE).cast(pl.String)
        truth = raw.str.strip_chars().str.to_lowercase().replace_strict(
            {"true": True, "false": False, "1": True, "0": False}, default=None, return_dtype=pl.Boolean)
        bad = (truth.is_null() & raw.is_not_null()).arg_true()
        if len(bad):
            row = int(bad[0])
            raise DataError(f"{path}: row {row + 1}: expected {S.BOOLEAN_VALUE} as true/false or 1/0, got {raw[row]!r}")
        frame = frame.with_columns(truth.alias(S.BOOLEAN_VALUE))
    return frame


def _vocabulary(source: EventSource, shard: str, rows: pl.DataFrame) -> pl.DataFrame:
    """Per code, the events of ``rows``' subjects in ``shard`` at or before the subject's latest
    prediction time (static events included)."""
    latest = rows.group_by(S.SUBJECT_ID).agg(pl.col(PREDICTION_TIME).max())
    events = source.read(shard, [S.SUBJECT_ID, S.TIME, S.CODE], latest.get_column(S.SUBJECT_ID))
    usable = events.join(latest, on=S.SUBJECT_ID).filter(
        pl.col(S.TIME).is_null() | (pl.col(S.TIME) <= pl.col(PREDICTION_TIME)))
    return usable.group_by(S.CODE).len("n")


def _vocabulary_report(bundle: Bundle, counts: pl.DataFrame) -> VocabularyReport:
    if counts.is_empty():
        return VocabularyReport()
    totals = counts.group_by(S.CODE).agg(pl.col("n").sum())
    unseen = totals.join(bundle.training_codes.select(S.CODE), on=S.CODE, how="anti").sort(
        ["n", S.CODE], descending=[True, False])
    model_codes = feature_codes(bundle.pipeline.featurizer)
    wanted = pl.Series(sorted(model_codes), dtype=pl.String).implode()
    present = totals.filter(pl.col(S.CODE).is_in(wanted)).height if model_codes else 0
    return VocabularyReport(
        events=int(totals.get_column("n").sum()), unseen_events=int(unseen.get_column("n").sum()),
        codes=totals.height, unseen_codes=unseen.height,
        top_unseen=tuple((str(c), int(n)) for c, n in unseen.head(TOP_UNSEEN).iter_rows()),
        model_codes=len(model_codes), model_codes_present=present)


def predict_bundle(bundle: Bundle | str | Path, dataset: EventSource | str | Path, out: str | Path,
                   labels: pl.DataFrame | str | Path | None = None, explain: int = 0,
                   progress: Progress | None = None, executor: Executor | None = None,
                   cache_dir: str | Path | None = None) -> PredictResult:
    """Score ``dataset``'s label rows (the bundle's task, or ``labels``) and write ``out`` (parquet) and
    its summary ``out`` with suffix ``.json``."""
    start = time.perf_counter()
    say = progress or (lambda message: None)
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    bundle.use_embedding_cache(cache_dir)
    source = as_source(dataset)
    out = Path(out)
    if isinstance(labels, (str, Path)):
        rows, labels_from = read_label_file(labels), str(labels)
    elif isinstance(labels, pl.DataFrame):
        rows, labels_from = labels, "given label rows"
    else:
        if not isinstance(source, ParquetEvents):
            raise DataError("expected label rows (--labels) for events that are not a MEDS directory, got none")
        say(f"labeling {bundle.task.name} on {source.root}")
        rows = label_many(source.root, [bundle.task], executor=executor)[bundle.task.name].labels
        labels_from = f"task {bundle.task.name}"
    rows = rows.with_row_index(_ORDER)
    explainer = _explainer(bundle, explain)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    writer: pq.ParquetWriter | None = None
    factors_out = explanations_path(out)
    factors_partial = factors_out.with_name(f".{factors_out.name}.partial")
    factors: pq.ParquetWriter | None = None
    counts, done, n_shards = [], 0, 0
    done_subjects: set[int] = set()
    try:
        shards = source.shards()
        batches = [(ShardView(source, shard), shard) for shard in shards]
        for view, shard in batches:
            n_shards += 1
            subjects = source.read(shard, [S.SUBJECT_ID]).get_column(S.SUBJECT_ID).unique()
            part = rows.filter(pl.col(S.SUBJECT_ID).is_in(subjects.implode()))
            if part.is_empty():
                continue
            counts.append(_vocabulary(source, shard, part))
            frame, explained = _score(bundle, view, part, explainer)
            writer = _write(writer, partial, frame)
            if explained is not None:
                factors = _write(factors, factors_partial, explained)
            done += part.height
            done_subjects.update(part.get_column(S.SUBJECT_ID).unique().to_list())
            elapsed = time.perf_counter() - start
            say(f"scored {done:,} of {rows.height:,} rows ({len(done_subjects) / elapsed:,.0f} patients/s)")
        # Rows of subjects with no events in the dataset: scored on no history, and counted.
        scored = pl.Series(sorted(done_subjects), dtype=pl.Int64).implode()
        orphans = rows.filter(~pl.col(S.SUBJECT_ID).is_in(scored))
        if not orphans.is_empty():
            empty = InMemoryEvents(pl.DataFrame(schema={S.SUBJECT_ID: pl.Int64, S.TIME: pl.Datetime("us"),
                                                        S.CODE: pl.String}), dataset_metadata=source.metadata())
            frame, explained = _score(bundle, empty, orphans, explainer)
            writer = _write(writer, partial, frame)
            if explained is not None:
                factors = _write(factors, factors_partial, explained)
        if writer is None:
            raise DataError(f"expected label rows to score, got none (labels from {labels_from})")
        writer.close()
        writer = None
        if factors is not None:
            factors.close()
            factors = None
            os.replace(factors_partial, factors_out)
        os.replace(partial, out)
    finally:
        for open_writer in (writer, factors):
            if open_writer is not None:
                open_writer.close()
        for leftover in (partial, factors_partial):
            if leftover.exists():
                leftover.unlink()
    vocabulary = _vocabulary_report(bundle, pl.concat(counts) if counts else pl.DataFrame())
    seconds = time.perf_counter() - start
    result = PredictResult(out=out, summary=out.with_suffix(".json"), rows=rows.height,
                           patients=rows.get_column(S.SUBJECT_ID).n_unique(), rows_without_events=orphans.height,
                           seconds=round(seconds, 2), vocabulary=vocabulary, labels_from=labels_from, shards=n_shards,
                           explanations=factors_out if explain > 0 else None)
    write_json(result.summary, {
        "bundle": {"name": bundle.name, "model_version": bundle.version, "path": str(bundle.path)},
        "dataset": str(getattr(source, "root", source)), "predictions": str(out), "labels_from": labels_from,
        "rows": result.rows, "patients": result.patients, "rows_without_events": result.rows_without_events,
        "seconds": result.seconds, "patients_per_second": round(result.patients_per_second, 1),
        "vocabulary": vocabulary.to_json(), "explain_top_k": explain,
        "explanations": str(factors_out) if explain > 0 else None,
        "schema": {name: str(dtype) for name, dtype in pl.read_parquet_schema(out).items()},
    })
    return result


def _write(writer: pq.ParquetWriter | None, path: Path, frame: pl.DataFrame) -> pq.ParquetWriter:
    table = frame.to_arrow()
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table.cast(writer.schema))
    return writer


Explainer = Callable[[Any, pl.DataFrame, EventSource], pl.DataFrame] | None


def _explainer(bundle: Bundle, k: int) -> Explainer:
    if k <= 0:
        return None
    from ehrpredict.bundle.explain import explanation_frame

    return lambda X, part, source: explanation_frame(bundle, X, part, source, k)


def _score(bundle: Bundle, source: EventSource, part: pl.DataFrame, explainer: Explainer
           ) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    X = bundle.pipeline.features(source, part)
    frame = prediction_frame(bundle, part, bundle.score_features(X))
    return frame, None if explainer is None else explainer(X, part, source)


def explanations_path(out: Path) -> Path:
    """Where ``predict --explain K`` writes the factors: beside the predictions, so that the predictions
    file keeps the exact MEDS prediction schema (meds-evaluation refuses extra columns)."""
    return out.with_name(f"{out.stem}.explanations.parquet")


def summary_text(result: PredictResult) -> str:
    v = result.vocabulary
    lines = [f"wrote {result.out}: {result.rows:,} predictions for {result.patients:,} patients "
             f"({result.labels_from}; {result.shards} shard(s); {result.seconds:.1f} s, "
             f"{result.patients_per_second:,.0f} patients/s)"]
    if result.rows_without_events:
        lines.append(f"  {result.rows_without_events:,} rows belong to subjects with no events in the dataset: scored "
                     "on an empty history")
    if v.events:
        lines.append(f"  codes: {v.seen_share:.1%} of {v.events:,} usable events have codes seen in training; "
                     f"{v.unseen_codes:,} of {v.codes:,} distinct codes are new to the model"
                     + (f" (most frequent: {', '.join(c for c, _ in v.top_unseen[:5])})" if v.top_unseen else ""))
    warning = v.warning()
    if warning:
        lines.append(f"  WARNING: {warning}")
    if result.explanations is not None:
        lines.append(f"  factors: {result.explanations}")
    lines.append(f"  summary: {result.summary}")
    return "\n".join(lines)
