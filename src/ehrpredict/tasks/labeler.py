"""Label a MEDS dataset for a task: one pass over each shard, whole subjects at a time.

Leakage contract: ``prediction_time`` is the last moment whose events a model may use (inclusive).
Outcome windows are ``(prediction_time, end]``; an event exactly at the prediction time is history.
Every episode either gets a label or is excluded with a counted reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from ehrpredict import schema as S
from ehrpredict.age import age_in_years
from ehrpredict.dataset import shard_files
from ehrpredict.errors import DataError
from ehrpredict.executor import Executor, local
from ehrpredict.tasks import episodes as EP
from ehrpredict.tasks.spec import CodeSet, Predicate, TaskSpec, WindowEnd

PRED = S.PREDICTION_TIME
REASON = "_exclusion"
RISE_TOLERANCE = 1e-4
LABEL_COLUMNS = S.LABEL_VALUE_COLUMNS


@dataclass(frozen=True)
class CohortReport:
    task: str
    n_episodes: int
    n_labels: int
    excluded: dict[str, int]
    by_split: dict[str, dict[str, float]]  # split -> {n, prevalence or mean}

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "n_episodes": self.n_episodes,
            "n_labels": self.n_labels,
            "excluded": self.excluded,
            "by_split": self.by_split,
        }


@dataclass(frozen=True)
class LabelResult:
    labels: pl.DataFrame  # MEDS label schema, plus nothing else
    report: CohortReport


def _window_end(end: WindowEnd) -> pl.Expr:
    if end.unbounded:
        return pl.lit(None, pl.Datetime("us"))
    base = pl.col(PRED) if end.base is None else pl.col(EP.END if end.base == "episode_end" else EP.LINKED_END)
    upper = base + pl.lit(end.offset)
    if end.cap is not None:
        upper = pl.min_horizontal(upper, pl.col(EP.END if end.cap == "episode_end" else EP.LINKED_END))
    return upper


def _in_window(end: WindowEnd) -> pl.Expr:
    upper = _window_end(end)
    return (pl.col(S.TIME) > pl.col(PRED)) & (upper.is_null() | (pl.col(S.TIME) <= upper))


def _matching(events: pl.DataFrame, codes: CodeSet) -> pl.DataFrame:
    return events.filter(pl.col(S.CODE).str.contains(codes.regex()))


def _code_outcome(events: pl.DataFrame, cohort: pl.DataFrame, p: Predicate, i: int) -> pl.DataFrame:
    assert p.codes is not None
    matching = _matching(events, p.codes)
    if p.except_codes is not None:
        matching = matching.filter(~pl.col(S.CODE).str.contains(p.except_codes.regex()))
    hits = (
        matching
        .join(cohort.select(EP.EPISODE, S.SUBJECT_ID, PRED, EP.END, EP.LINKED_END), on=S.SUBJECT_ID)
        .filter(_in_window(p.window_end))
    )
    return hits.group_by(EP.EPISODE).agg(
        pl.lit(True).alias(f"_pos{i}"),
        pl.col(S.TIME).min().alias(f"_t{i}"),
        pl.col(S.CODE).unique().alias(f"_codes{i}"),
        pl.lit(True).alias(f"_measured{i}"),
        pl.col(S.NUMERIC_VALUE).first().alias(f"_value{i}"),
    )


def _lab_outcome(events: pl.DataFrame, cohort: pl.DataFrame, p: Predicate, i: int) -> pl.DataFrame:
    lab = p.lab
    assert lab is not None
    values = (
        _matching(events, lab.codes())
        .filter(pl.col(S.NUMERIC_VALUE).is_not_null())
        .join(cohort.select(EP.EPISODE, S.SUBJECT_ID, PRED, EP.END, EP.LINKED_END), on=S.SUBJECT_ID)
    )
    history = values.filter(pl.col(S.TIME) <= pl.col(PRED))
    if lab.baseline_within is not None:
        history = history.filter(pl.col(S.TIME) >= pl.col(PRED) - pl.lit(lab.baseline_within))
    stat = pl.col(S.NUMERIC_VALUE).min() if lab.baseline_stat == "min" else pl.col(S.NUMERIC_VALUE).last()
    baseline = history.sort(S.TIME).group_by(EP.EPISODE).agg(stat.alias("_baseline"))
    window = values.filter(_in_window(p.window_end)).join(baseline, on=EP.EPISODE, how="left")
    # Values are stored as float32 (MEDS): 1.1 -> 1.4 is a rise of 0.29999995. Rises and ratios are
    # compared with a tolerance far below any lab's reported precision.
    value = pl.col(S.NUMERIC_VALUE).cast(pl.Float64)
    baseline_value = pl.col("_baseline").cast(pl.Float64)
    flags = []
    if lab.above is not None:
        flags.append(value > lab.above)
    if lab.below is not None:
        flags.append(value < lab.below)
    if lab.rise_by is not None:
        flags.append(value >= baseline_value + lab.rise_by - RISE_TOLERANCE)
    if lab.rise_ratio is not None:
        flags.append(value >= baseline_value * lab.rise_ratio - RISE_TOLERANCE)
    hit = pl.any_horizontal(flags).fill_null(False)
    out = window.group_by(EP.EPISODE).agg(
        hit.any().alias(f"_pos{i}"),
        pl.col(S.TIME).filter(hit).min().alias(f"_t{i}"),
        pl.lit(True).alias(f"_measured{i}"),
        value.sort_by(S.TIME).first().alias(f"_value{i}"),
    )
    if lab.rise_by is not None or lab.rise_ratio is not None:
        # Every episode with a baseline, whether or not the window has a value (a full join), so
        # "no baseline" and "no value in the window" are told apart.
        has_baseline = baseline.select(EP.EPISODE, pl.lit(True).alias(f"_baseline{i}"))
        out = has_baseline.join(out, on=EP.EPISODE, how="full", coalesce=True)
    return out


def _duration_outcome(cohort: pl.DataFrame, p: Predicate, i: int) -> pl.DataFrame:
    assert p.duration_above is not None
    duration = pl.col(EP.END) - pl.col(EP.START)
    return cohort.select(
        EP.EPISODE,
        (duration > pl.lit(p.duration_above)).fill_null(False).alias(f"_pos{i}"),
        pl.lit(None, pl.Datetime("us")).alias(f"_t{i}"),
        pl.lit(True).alias(f"_measured{i}"),
        (duration.dt.total_seconds() / 86400).alias(f"_value{i}"),
    )


def _exclusions(spec: TaskSpec, episodes: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """Add the first exclusion reason (null = included) to each episode."""
    c = spec.cohort
    checks: list[tuple[str, pl.Expr]] = [
        ("no anchor event time", pl.col("anchor_time").is_null()),
    ]
    if c.in_episode:
        checks.append(
            ("episode ended before prediction time", pl.col(EP.END).is_null() | (pl.col(PRED) > pl.col(EP.END)))
        )
    checks.append(("died at or before prediction time", pl.col(EP.DEATH) <= pl.col(PRED)))
    if c.min_age is not None:
        # Completed years, as on a calendar (days / 365.25 makes an 18th birthday 17.998 years).
        age = age_in_years(pl.col(PRED), pl.col(EP.BIRTH))
        checks.append((f"younger than {c.min_age:g} or unknown age", age.is_null() | (age < c.min_age)))
    if c.first_episode_only:
        checks.append(("not the first episode", pl.int_range(pl.len()).over(S.SUBJECT_ID) > 0))
    if c.exclude_died_in_episode:
        checks.append(("died during the episode", pl.col(EP.DIED_IN_EPISODE)))
    frame = episodes
    for kind in c.exclude_in_stay:
        frame, check = _overlapping_stay(frame, events, kind)
        checks.append(check)
    for kind, sets in (("history", c.exclude_history), ("episode", c.exclude_in_episode)):
        for name, codes in sets:
            seen = _matching(events, codes).join(
                frame.select(EP.EPISODE, S.SUBJECT_ID, EP.START, PRED), on=S.SUBJECT_ID
            )
            seen = seen.filter(pl.col(S.TIME) <= pl.col(PRED))
            if kind == "episode":
                seen = seen.filter(pl.col(S.TIME) >= pl.col(EP.START))
            flag = f"_seen_{kind}_{name}"
            frame = frame.join(
                seen.select(EP.EPISODE).unique().with_columns(pl.lit(True).alias(flag)), on=EP.EPISODE, how="left"
            )
            label = f"already has {name}" if kind == "history" else f"{name} before prediction time"
            checks.append((label, pl.col(flag).fill_null(False)))
    reason: pl.Expr = pl.lit(None, pl.String)
    for text, failed in reversed(checks):
        reason = pl.when(failed.fill_null(False)).then(pl.lit(text)).otherwise(reason)
    return frame.with_columns(reason.alias(REASON))


def _overlapping_stay(frame: pl.DataFrame, events: pl.DataFrame, kind: str) -> tuple[pl.DataFrame, tuple[str, pl.Expr]]:
    """Flag episodes that overlap a stay of ``kind`` between their start and the prediction time.

    Overlap, not "a stay began after the episode started": cardiac surgery patients go from the OR to
    the CVICU before the admission is recorded, so their ICU stay starts before admittime. A stay
    without a recorded end counts only if it began inside [episode start, prediction time]."""
    other = EP.stays(events, kind).rename({EP.START: "_stay_start", EP.END: "_stay_end"})
    paired = frame.select(EP.EPISODE, S.SUBJECT_ID, EP.START, PRED).join(other, on=S.SUBJECT_ID)
    began_by_prediction = pl.col("_stay_start") <= pl.col(PRED)
    still_open = pl.when(pl.col("_stay_end").is_null()).then(pl.col("_stay_start") >= pl.col(EP.START))
    overlaps = began_by_prediction & still_open.otherwise(pl.col("_stay_end") >= pl.col(EP.START))
    flag = f"_in_stay_{kind}"
    hit = paired.filter(overlaps).select(EP.EPISODE).unique().with_columns(pl.lit(True).alias(flag))
    frame = frame.join(hit, on=EP.EPISODE, how="left")
    return frame, (f"in an {kind.upper() if kind != 'hospital' else kind} stay before prediction time",
                   pl.col(flag).fill_null(False))


def _competing(events: pl.DataFrame, cohort: pl.DataFrame, spec: TaskSpec) -> pl.DataFrame:
    """For each competing code set, the time of its first event inside the outcome window (the
    latest window end of the outcome's predicates)."""
    ends = [_window_end(p.window_end) for p in spec.outcome]
    latest = pl.max_horizontal(ends) if not any(p.window_end.unbounded for p in spec.outcome) else None
    for name, codes in spec.cohort.exclude_competing:
        inside = pl.col(S.TIME) > pl.col(PRED)
        if latest is not None:
            inside = inside & (pl.col(S.TIME) <= latest)
        first = (
            _matching(events, codes)
            .join(cohort.select(EP.EPISODE, S.SUBJECT_ID, PRED, EP.END, EP.LINKED_END), on=S.SUBJECT_ID)
            .filter(inside)
            .group_by(EP.EPISODE)
            .agg(pl.col(S.TIME).min().alias(f"_competing_{name}"))
        )
        cohort = cohort.join(first, on=EP.EPISODE, how="left")
    return cohort


def label_events(spec: TaskSpec, events: pl.DataFrame, last_event: pl.DataFrame) -> tuple[pl.DataFrame, Counter[str]]:
    """Labels and exclusion counts for the events of whole subjects (one shard or a test cohort)."""
    facts = EP.subject_facts(events, last_event)
    eps = (
        EP.episodes(events, spec.anchor)
        .join(facts, on=S.SUBJECT_ID, how="left")
        .with_columns(
            (pl.col("anchor_time") + pl.lit(spec.offset)).alias(PRED),
        )
    )
    eps = eps.with_columns(
        (
            pl.col("_discharged_dead").fill_null(False) | (pl.col(EP.DEATH) <= pl.col(EP.LINKED_END)).fill_null(False)
        ).alias(EP.DIED_IN_EPISODE)
    )
    eps = _exclusions(spec, eps, events)
    excluded = Counter(dict(eps.filter(pl.col(REASON).is_not_null()).get_column(REASON).value_counts().iter_rows()))
    if n_missing := EP.missing_ids(events, spec.anchor):
        excluded["episode start without hadm_id/stay_id"] += n_missing
    cohort = eps.filter(pl.col(REASON).is_null())
    for i, p in enumerate(spec.outcome):
        if p.codes is not None:
            part = _code_outcome(events, cohort, p, i)
        elif p.lab is not None:
            part = _lab_outcome(events, cohort, p, i)
        else:
            part = _duration_outcome(cohort, p, i)
        cohort = cohort.join(part, on=EP.EPISODE, how="left")
    cohort = _competing(events, cohort, spec)
    labels, dropped = _labels(spec, cohort)
    excluded.update(dropped)
    return labels, excluded


def _labels(spec: TaskSpec, cohort: pl.DataFrame) -> tuple[pl.DataFrame, Counter[str]]:
    n = len(spec.outcome)
    positive = pl.any_horizontal([pl.col(f"_pos{i}").fill_null(False) for i in range(n)])
    first_time = pl.min_horizontal([pl.col(f"_t{i}") for i in range(n)])
    measured = pl.any_horizontal([pl.col(f"_measured{i}").fill_null(False) for i in range(n)])
    reason: pl.Expr = pl.lit(None, pl.String)
    if spec.cohort.require_followup:
        reason = (
            pl.when(~positive & (pl.col(EP.LAST_EVENT) <= pl.col(PRED)))
            .then(pl.lit("no follow-up after prediction time"))
            .otherwise(reason)
        )
    if spec.cohort.require_match:
        reason = (
            pl.when(~measured).then(pl.lit("no matching measurement or code in the outcome window")).otherwise(reason)
        )
    # A rise needs a baseline; with several rise criteria (KDIGO's 0.3 in 48 h and 1.5x in 7 d) a row
    # is labelled when any of them has one (a criterion without a baseline cannot fire).
    rises = [i for i, p in enumerate(spec.outcome)
             if p.lab is not None and (p.lab.rise_by is not None or p.lab.rise_ratio is not None)]
    if rises:
        no_baseline = pl.all_horizontal([pl.col(f"_baseline{i}").is_null() for i in rises])
        reason = pl.when(no_baseline).then(pl.lit("no baseline value at prediction time")).otherwise(reason)
    for name, _ in spec.cohort.exclude_competing:
        came_first = pl.col(f"_competing_{name}").is_not_null() & (
            ~positive | (pl.col(f"_competing_{name}") < first_time.fill_null(pl.col(f"_competing_{name}")))
        )
        reason = pl.when(came_first).then(pl.lit(f"{name} before the outcome (competing event)")).otherwise(reason)
    cohort = cohort.with_columns(reason.alias(REASON))
    dropped = Counter(dict(cohort.filter(pl.col(REASON).is_not_null()).get_column(REASON).value_counts().iter_rows()))
    cohort = cohort.filter(pl.col(REASON).is_null())
    value = _label_value(spec, cohort, positive, first_time)
    labels = cohort.select(pl.col(S.SUBJECT_ID), pl.col(PRED).alias(PRED), *value)
    labels = labels.unique([S.SUBJECT_ID, PRED], keep="first", maintain_order=True).sort(S.SUBJECT_ID, PRED)
    return labels, dropped


def _label_value(spec: TaskSpec, cohort: pl.DataFrame, positive: pl.Expr, first_time: pl.Expr) -> list[pl.Expr]:
    if spec.label_type == "binary":
        return [positive.alias(S.BOOLEAN_VALUE)]
    if spec.label_type == "regression":
        return [
            pl.coalesce([pl.col(f"_value{i}") for i in range(len(spec.outcome))]).cast(pl.Float32).alias(S.FLOAT_VALUE)
        ]
    if spec.label_type == "time_to_event":
        assert spec.censoring is not None  # parse_task requires it
        base = EP.LAST_EVENT if spec.censoring.base == "last_event" else EP.LAST_DISCHARGE
        follow_up = pl.coalesce(pl.col(base), pl.col(EP.LAST_EVENT)) + pl.lit(spec.censoring.offset)
        ends = [_window_end(p.window_end) for p in spec.outcome]
        censor = pl.max_horizontal(pl.min_horizontal([follow_up, *ends]), pl.col(PRED))
        # Events after the end of follow-up are not counted: follow-up must end at the same place for
        # rows with and without the event, or the event rate is inflated (deaths seen, survivors not).
        event = positive & (first_time <= censor).fill_null(False)
        when = pl.when(event).then(first_time).otherwise(censor)
        days = (when - pl.col(PRED)).dt.total_seconds() / 86400
        return [event.alias(S.BOOLEAN_VALUE), days.cast(pl.Float32).alias(S.FLOAT_VALUE)]
    codes = pl.concat_list(
        [pl.col(f"_codes{i}").fill_null(pl.lit([], pl.List(pl.String))) for i in range(len(spec.outcome))]
    )
    if spec.category == "icd10_3char":
        category = codes.list.eval(pl.element().str.split(S.CODE_SEPARATOR).list.get(1).str.split(".").list.first())
    else:
        prefix = f"{spec.category}{S.CODE_SEPARATOR}"
        category = codes.list.eval(pl.element().str.strip_prefix(prefix))
    if spec.label_type == "multilabel":
        return [category.list.unique().list.sort().list.join("|").alias(S.CATEGORICAL_VALUE)]
    return [category.list.sort().list.first().alias(S.CATEGORICAL_VALUE)]


def _needed_codes(spec: TaskSpec) -> list[str]:
    """Code patterns a task reads: episode codes, birth, death, outcome and exclusion codes."""
    needed: list[str] = [*(f"{c}*" for c in EP.EPISODE_CODES), S.BIRTH_CODE, S.DEATH_CODE]
    for p in spec.outcome:
        if p.codes is not None:
            needed += list(p.codes.patterns)
        if p.lab is not None:
            needed += list(p.lab.codes().patterns)
    for _, codes in (*spec.cohort.exclude_history, *spec.cohort.exclude_in_episode, *spec.cohort.exclude_competing):
        needed += list(codes.patterns)
    return needed


def _shard_events(path: Path, patterns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The events matching ``patterns`` from one shard and each subject's last event time."""
    columns = [S.SUBJECT_ID, S.TIME, S.CODE, S.NUMERIC_VALUE, S.HADM_ID, S.STAY_ID]
    frame = pl.read_parquet(path, columns=columns)
    last = frame.group_by(S.SUBJECT_ID).agg(pl.col(S.TIME).max().alias(EP.LAST_EVENT))
    return frame.filter(pl.col(S.CODE).str.contains(CodeSet(tuple(patterns)).regex())), last


def _label_shard(specs: list[TaskSpec], patterns: list[str], path: Path
                 ) -> list[tuple[pl.DataFrame, Counter[str]]]:
    """One shard's labels and exclusion counts for every task in ``specs`` (the per-shard map)."""
    events, last = _shard_events(path, patterns)
    return [label_events(spec, events, last) for spec in specs]


def label_dataset(dataset: str | Path, spec: TaskSpec) -> LabelResult:
    """Label every shard of a MEDS dataset for ``spec``; see the module docstring."""
    return label_many(dataset, [spec])[spec.name]


def label_many(dataset: str | Path, specs: list[TaskSpec], executor: Executor | None = None
               ) -> dict[str, LabelResult]:
    """Label several tasks in one pass: each shard is read once for all of them (through ``executor``,
    one shard at a time by default)."""
    root = Path(dataset)
    files = shard_files(root)
    splits = _splits(root)
    patterns = sorted({p for spec in specs for p in _needed_codes(spec)})
    parts: dict[str, list[pl.DataFrame]] = {spec.name: [] for spec in specs}
    excluded: dict[str, Counter[str]] = {spec.name: Counter() for spec in specs}
    for per_task in (executor or local()).map(partial(_label_shard, specs, patterns), files):
        for spec, (labels, dropped) in zip(specs, per_task, strict=True):
            parts[spec.name].append(labels)
            excluded[spec.name].update(dropped)
    results = {}
    for spec in specs:
        labels = pl.concat(parts[spec.name], how="vertical_relaxed")
        n_excluded = sum(excluded[spec.name].values())
        results[spec.name] = LabelResult(labels, CohortReport(
            task=spec.name, n_episodes=labels.height + n_excluded, n_labels=labels.height,
            excluded=dict(sorted(excluded[spec.name].items())), by_split=_by_split(spec, labels, splits),
        ))
    return results


def _splits(root: Path) -> pl.DataFrame:
    path = root / S.SPLITS_FILE
    if not path.exists():
        raise DataError(f"expected {path} (run ehrpredict ingest first), got no splits file")
    return pl.read_parquet(path)


def _by_split(spec: TaskSpec, labels: pl.DataFrame, splits: pl.DataFrame) -> dict[str, dict[str, float]]:
    joined = labels.join(splits, on=S.SUBJECT_ID, how="left")
    out: dict[str, dict[str, float]] = {}
    for split in S.SPLITS:
        part = joined.filter(pl.col(S.SPLIT) == split)
        stats: dict[str, float] = {"n": part.height}
        if part.height and S.BOOLEAN_VALUE in part.columns:
            stats["prevalence"] = round(float(part.get_column(S.BOOLEAN_VALUE).cast(pl.Float64).mean() or 0.0), 4)  # type: ignore[arg-type]
        if part.height and spec.label_type == "multilabel":
            n_labels = part.get_column(S.CATEGORICAL_VALUE).str.split("|").list.len()
            stats["mean_labels"] = round(float(n_labels.mean() or 0.0), 2)  # type: ignore[arg-type]
        if part.height and spec.label_type == "regression":
            stats["mean"] = round(float(part.get_column(S.FLOAT_VALUE).mean() or 0.0), 3)  # type: ignore[arg-type]
        out[split] = stats
    return out


def write_labels(result: LabelResult, out_file: str | Path) -> Path:
    """Write labels (MEDS label schema) and the cohort report (``<out>.cohort.json``) atomically."""
    import meds

    from ehrpredict.ingest.output import write_json

    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in (S.SUBJECT_ID, PRED, *LABEL_COLUMNS) if c in result.labels.columns]
    table = result.labels.select(columns).to_arrow()
    schema = meds.LabelSchema.schema()
    table = table.cast(pa_schema_for(schema, columns))
    tmp = out.with_name(f".{out.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(out)
    report = out.with_suffix(".cohort.json")
    write_json(report, result.report.to_json())
    return report


def pa_schema_for(schema: Any, columns: list[str]) -> Any:
    import pyarrow as pa

    return pa.schema([schema.field(c) for c in columns])
