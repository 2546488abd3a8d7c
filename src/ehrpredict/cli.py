"""The ``ehrpredict`` command. Each subcommand parses arguments, calls one library function, prints a
short summary and returns an exit code: 0 success, 1 bad input or data, 2 usage error."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ehrpredict import __version__
from ehrpredict.errors import EhrPredictError
from ehrpredict.events.cutoff import DEFAULT_CODING_DELAY
from ehrpredict.serve.commands import add_commands as add_serve_commands

if TYPE_CHECKING:
    from ehrpredict.experiments.config import BenchmarkConfig
    from ehrpredict.experiments.results import ModelResult


def _ingest_mimic4(args: argparse.Namespace) -> int:
    from ehrpredict.ingest.mimic4 import IngestConfig, default_progress, ingest_mimic4

    config = IngestConfig(
        seed=args.seed, death_grace_days=args.death_grace_days,
        subjects_per_shard=args.subjects_per_shard,
    )
    start = time.perf_counter()
    result = ingest_mimic4(
        args.raw_dir, args.out_dir, config, overwrite=args.overwrite,
        progress=None if args.quiet else default_progress(),
    )
    _print_ingest_summary(result, time.perf_counter() - start, args.quiet)
    return 0


def _ingest_meds(args: argparse.Namespace) -> int:
    from ehrpredict.ingest.meds_input import normalize_meds

    start = time.perf_counter()
    result = normalize_meds(args.in_dir, args.out_dir, seed=args.seed, overwrite=args.overwrite)
    _print_ingest_summary(result, time.perf_counter() - start, args.quiet)
    return 0


def _ingest_fhir(args: argparse.Namespace) -> int:
    from ehrpredict.ingest.fhir import ingest_fhir

    start = time.perf_counter()
    result = ingest_fhir(args.in_dir, args.out_dir, seed=args.seed, overwrite=args.overwrite)
    _print_ingest_summary(result, time.perf_counter() - start, args.quiet)
    return 0


def _export_fhir(args: argparse.Namespace) -> int:
    from ehrpredict.ingest.fhir import export_fhir

    start = time.perf_counter()
    counts = export_fhir(args.dataset, args.out_dir, overwrite=args.overwrite)
    written = ", ".join(f"{kind} {n:,}" for kind, n in counts.items())
    print(f"wrote {args.out_dir}: FHIR R4 NDJSON, one file per resource type ({written}; "
          f"{time.perf_counter() - start:.1f} s)\n  next: ehrpredict ingest fhir {args.out_dir} MEDS_DIR")
    return 0


def _print_ingest_summary(result: object, seconds: float, quiet: bool) -> None:
    from ehrpredict import schema as S
    from ehrpredict.ingest.mimic4 import IngestResult
    from ehrpredict.ingest.quality import QualityReport

    assert isinstance(result, IngestResult)
    if result.skipped:
        print(f"{result.out_dir} is already up to date with this input and settings (nothing to do).")
    elif not quiet:
        print(QualityReport.summary_from_json(result.report))
    print(
        f"wrote {result.out_dir}: {result.n_subjects:,} subjects, {result.n_events:,} events, "
        f"{result.n_codes:,} codes, {result.n_quarantined:,} rows quarantined, "
        f"{result.n_flagged:,} rows kept but flagged ({seconds:.1f} s)\n"
        f"  data-quality report: {result.out_dir / S.QUALITY_REPORT_FILE}\n"
        f"  quarantined rows:    {result.out_dir / S.QUARANTINE_FILE}\n"
        f"  flagged rows:        {result.out_dir / S.FLAGGED_FILE}"
    )


def _info(args: argparse.Namespace) -> int:
    from ehrpredict.dataset import dataset_info

    info = dataset_info(args.dataset)
    if args.json:
        print(json.dumps(info.to_json(), indent=2))
    else:
        print(info.summary())
    return 0


def _tasks(args: argparse.Namespace) -> int:
    from ehrpredict.tasks.spec import load_library

    specs = load_library()
    if args.json:
        print(json.dumps([{"name": t.name, "label_type": t.label_type, "anchor": t.anchor,
                           "offset_hours": t.offset.total_seconds() / 3600, "description": t.description}
                          for t in specs], indent=2))
    else:
        for t in specs:
            print(f"{t.name:<32}{t.label_type:<15}{t.description}")
    return 0


def _label(args: argparse.Namespace) -> int:
    from ehrpredict.tasks.labeler import label_many, write_labels
    from ehrpredict.tasks.spec import load_library, load_task

    many = args.task == "all" or "," in args.task
    specs = load_library() if args.task == "all" else [load_task(t.strip()) for t in args.task.split(",")]
    start = time.perf_counter()
    results = label_many(args.dataset, specs)
    for spec in specs:
        result = results[spec.name]
        out = args.out / f"{spec.name}.parquet" if many else args.out
        report_path = write_labels(result, out)
        report = result.report
        print(f"{spec.name}: {report.n_labels:,} labels from {report.n_episodes:,} episodes")
        for split, stats in report.by_split.items():
            extra = ", ".join(f"{k} {v}" for k, v in stats.items() if k != "n")
            print(f"  {split:<9}{int(stats['n']):>8,}  {extra}")
        for reason, n in report.excluded.items():
            print(f"  excluded {n:>8,}  {reason}")
        print(f"  wrote {out} and {report_path}")
    print(f"labeled {len(specs)} task(s) in {time.perf_counter() - start:.1f} s")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ehrpredict.ingest.synth import SynthConfig, generate, parse_modules

    config = SynthConfig(n_patients=args.patients, seed=args.seed, modules=parse_modules(args.modules))
    start = time.perf_counter()
    with tqdm(total=config.n_patients, desc="generating", unit=" patients", file=sys.stderr, leave=False,
              disable=args.quiet) as bar:
        def progress(_stage: str, done: int, _total: int) -> None:
            bar.update(done - bar.n)

        result = generate(args.out_dir, config, overwrite=args.overwrite, progress=progress)
    rows = sum(result.tables.values())
    print(
        f"wrote {result.out_dir}: {result.n_patients:,} synthetic patients, {len(result.tables)} tables, "
        f"{rows:,} rows ({', '.join(config.modules)}; seed {config.seed}; {time.perf_counter() - start:.1f} s)\n"
        f"  admissions: {result.tables.get('hosp/admissions', 0):,}, "
        f"ICU stays: {result.tables.get('icu/icustays', 0):,}, ED stays: {result.tables.get('ed/edstays', 0):,}\n"
        f"  oracle (true outcome probabilities, not for training): {result.oracle_path} "
        f"({result.oracle_rows:,} rows)\n"
        f"  next: ehrpredict ingest mimic4 {result.out_dir} MEDS_DIR"
    )
    return 0


def _fmt(value: float | None) -> str:
    """Three decimals; an undefined value (None, or NaN in the typed report) reads ``n/a``."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _config(args: argparse.Namespace, **run: object) -> BenchmarkConfig:
    """The BenchmarkConfig of ``benchmark`` and ``fit``: the shared options (bootstrap, seed, controls,
    coding delay, text options) from ``args``, the rest from ``run``."""
    from ehrpredict.experiments.config import BenchmarkConfig

    return BenchmarkConfig(
        dataset=args.dataset, out=args.out, n_boot=args.bootstrap, seed=args.seed,
        shuffle_permutations=args.shuffle_permutations, text_format=args.text_format,
        text_max_tokens=args.text_max_tokens, include_notes=not args.no_notes, encoder=args.encoder,
        encoder_model=args.encoder_model, encoder_url=args.encoder_url, encoder_instruction=args.encoder_instruction,
        cache_dir=args.cache_dir, coding_delay=args.coding_delay, **run,  # type: ignore[arg-type]
    )


def _benchmark(args: argparse.Namespace) -> int:
    from ehrpredict.experiments.benchmark import run_benchmark

    config = _config(args, tasks=tuple(t.strip() for t in args.tasks.split(",")),
                     representations=tuple(args.representations.split(",")), heads=tuple(args.heads.split(",")),
                     few_shot=args.few_shot)
    report = run_benchmark(config, progress=None if args.quiet else lambda m: print(f"  {m}", file=sys.stderr))
    for task in report.tasks:
        if task.status != "done":
            print(f"{task.name:<32}skipped: {task.reason}")
            continue
        for model in task.models:
            print(f"{task.name:<32}{_model_summary(model)}")
        oracle = task.oracle
        if oracle is not None and oracle.status == "done" and oracle.metrics is not None:
            print(f"{'':<32}oracle      AUROC {_fmt(oracle.metrics.auroc.value)}")
    print(f"wrote {args.out / 'report.json'} and {args.out / 'report.html'} ({report.seconds} s)")
    return 0


def _model_summary(model: ModelResult) -> str:
    """One line of ``ehrpredict benchmark``'s summary: the model's headline metrics and its control."""
    from ehrpredict.experiments.results import MultilabelModelResult, RegressionModelResult

    if isinstance(model, MultilabelModelResult):
        m = model.metrics
        return (f"{model.head}  micro-F1 {_fmt(m.micro_f1)}  macro-F1 {_fmt(m.macro_f1)}  P@{m.k} "
                f"{_fmt(m.precision_at_k)}  mAP {_fmt(m.mean_average_precision)}")
    name = f"{model.representation}/{model.head:<6}"
    if isinstance(model, RegressionModelResult):
        r, r2 = model.metrics, model.label_shuffle_control.scores["r2"]
        return (f"{name} MAE {_fmt(r.mae.value)} ({_fmt(r.mae.ci_low)}-{_fmt(r.mae.ci_high)})  R2 {_fmt(r.r2.value)}  "
                f"shuffled-label R2 {_fmt(r2.value)}")
    auroc, control = model.metrics.auroc, model.label_shuffle_control.scores["auroc"]
    return (f"{name} AUROC {_fmt(auroc.value)} ({_fmt(auroc.ci_low)}-{_fmt(auroc.ci_high)})  shuffled-label "
            f"control {_fmt(control.value)}")


def _fit(args: argparse.Namespace) -> int:
    from ehrpredict.bundle.fit import fit_bundle

    config = _config(args, tasks=(args.task,), representations=(args.representation,), heads=(args.head,))
    result = fit_bundle(config, args.out, threshold=args.threshold, name=args.name, overwrite=args.overwrite,
                        progress=None if args.quiet else lambda m: print(f"  {m}", file=sys.stderr))
    manifest = result.bundle.manifest
    for model in result.report.tasks[0].models:
        print(f"{manifest['task']['name']:<32}{_model_summary(model)}")
    op = manifest.get("operating_point")
    if op:
        held = op["held_out"]
        calibration = op["held_out_calibration"]
        print(f"  calibration: {manifest['calibration']['reason']}")
        print(f"  held-out Brier {_fmt(calibration['before']['brier']['value'])} -> "
              f"{_fmt(calibration['after']['brier']['value'])}, ECE {_fmt(calibration['before']['ece']['value'])} -> "
              f"{_fmt(calibration['after']['ece']['value'])} (before -> after calibration)")
        print(f"  threshold {op['threshold']:.4f} ({op['rule']}): held-out sensitivity "
              f"{_fmt(held['sensitivity']['value'])}, specificity {_fmt(held['specificity']['value'])}, PPV "
              f"{_fmt(held['ppv']['value'])}, {op['held_out_alerts_per_100']:.1f} alerts per 100")
    print(f"wrote bundle {result.out} (model version {manifest['model_version']}, {result.seconds} s)\n"
          f"  model card: {result.out / 'MODEL_CARD.md'}\n  report:     {result.out / 'report' / 'report.html'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from ehrpredict.bundle.predict import predict_bundle, summary_text

    result = predict_bundle(args.bundle, args.dataset, args.out, labels=args.labels, explain=args.explain,
                            progress=None if args.quiet else lambda m: print(f"  {m}", file=sys.stderr),
                            cache_dir=args.cache_dir)
    print(summary_text(result))
    return 0


def _serialize(args: argparse.Namespace) -> int:
    from ehrpredict.text.serialize import SerializerConfig, approx_tokens, serialize_subject

    count_tokens = None
    budget = args.max_tokens
    if budget is None:  # what the text representation reads by default: sized to and counted by its encoder
        from ehrpredict.features.text import DEFAULT_CHUNKS, shared_encoder
        from ehrpredict.text.encoders import EncoderConfig

        encoder = shared_encoder(EncoderConfig())
        budget, count_tokens = DEFAULT_CHUNKS * encoder.max_tokens, encoder.count_tokens
        print(f"(token budget {budget}, counted by the default encoder's tokenizer)")
    config = SerializerConfig(format=args.format, max_tokens=budget, include_notes=not args.no_notes,
                              coding_delay=args.coding_delay)
    timelines = serialize_subject(args.dataset, args.task, args.subject, config, count_tokens)
    counter = count_tokens or approx_tokens
    for i, timeline in enumerate(timelines, 1):
        # The header is for the reader only: dataset times are shifted, so the text itself has none.
        print(f"=== subject {timeline.subject_id}, prediction time {timeline.prediction_time} (dataset time; "
              f"label row {i} of {len(timelines)}; {timeline.format}, ~{counter(timeline.text)} tokens) ===")
        print(timeline.text)
        cut = ", ".join(f"{title} {n} line{'s' * (n != 1)}" for title, n in timeline.truncated)
        print(f"--- truncated: {cut or 'nothing'}\n")
    return 0


def _coding_delay_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--coding-delay", default=DEFAULT_CODING_DELAY,
                        help="billing codes (ICD, DRG, HCPCS), timed at their stay's discharge, are usable by "
                        "features this long after it, as coders assign them after discharge "
                        f"(default {DEFAULT_CODING_DELAY}; 0 = known at discharge, an optimistic setting)")


def _text_options(parser: argparse.ArgumentParser) -> None:
    text = parser.add_argument_group("text representation")
    text.add_argument("--text-format", choices=("markdown", "recent_codes"), default="markdown")
    text.add_argument("--text-max-tokens", type=int, default=None,
                      help="serialization token budget (default: 2 windows of the encoder)")
    text.add_argument("--no-notes", action="store_true", help="leave notes out of the text")
    text.add_argument("--encoder", choices=("sentence-transformers", "openai"), default="sentence-transformers")
    text.add_argument("--encoder-model", default="all-MiniLM-L6-v2",
                      help="local sentence-transformers model directory, or the model name an endpoint serves "
                      "(default: the packaged all-MiniLM-L6-v2)")
    text.add_argument("--encoder-url", default=None, help="OpenAI-compatible base URL, e.g. http://gpu:8000/v1")
    text.add_argument("--encoder-instruction", default="", help="prefix for instruction-tuned encoders")
    text.add_argument("--cache-dir", type=Path, default=None,
                      help="embedding cache (default $EHRPREDICT_CACHE/embeddings or ~/.cache/ehrpredict/embeddings)")


def _explain(args: argparse.Namespace) -> int:
    from datetime import datetime

    from ehrpredict.bundle import load_bundle
    from ehrpredict.bundle.explain import explain_bundle_rows, explain_text_row, subject_rows
    from ehrpredict.errors import ConfigError
    from ehrpredict.events.source import ParquetEvents
    from ehrpredict.ingest.output import write_text
    from ehrpredict.tasks.labeler import label_many

    when = None
    if args.at:
        try:
            when = datetime.fromisoformat(args.at)
        except ValueError as exc:
            raise ConfigError(f"expected --at like 2150-01-02T08:00 (dataset time), got {args.at!r}") from exc
    bundle = load_bundle(args.bundle)
    bundle.use_embedding_cache(args.cache_dir)
    source = ParquetEvents(args.dataset)
    labels = None
    if when is None:
        print(f"labeling {bundle.task.name} on {args.dataset} to find the subject's first prediction time...",
              file=sys.stderr)
        labels = label_many(args.dataset, [bundle.task])[bundle.task.name].labels
    row = subject_rows(bundle, source, labels, args.subject, when)
    if bundle.pipeline.representation == "text":
        occlusion = explain_text_row(bundle, source, row, by=args.by)
        print(occlusion.summary(args.top))
        if args.html:
            raise ConfigError("expected --html for a counts or counts+text bundle; a text bundle's occlusion prints "
                              "as text")
        return 0
    card = explain_bundle_rows(bundle, source, row, k=args.top)[0]
    print(card.summary())
    if args.html:
        write_text(args.html, card.to_html())
        print(f"wrote {args.html}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ehrpredict", description="Raw EHR → validated clinical risk predictions."
    )
    parser.add_argument("--version", action="version", version=f"ehrpredict {__version__}")
    sub = parser.add_subparsers(dest="command")

    ingest = sub.add_parser("ingest", help="convert a raw source into a MEDS dataset")
    sources = ingest.add_subparsers(dest="source")
    mimic = sources.add_parser("mimic4", help="MIMIC-IV 2.2/3.1 directory (hosp, icu, ed, note)")
    mimic.add_argument("raw_dir", type=Path, help="directory holding hosp/ and icu/ (ed/, note/ optional)")
    mimic.add_argument("out_dir", type=Path, help="where the MEDS dataset is written")
    mimic.add_argument("--death-grace-days", type=float, default=2.0,
                       help="events later than this after death are quarantined (default 2)")
    mimic.add_argument("--subjects-per-shard", type=int, default=None,
                       help="subjects per output shard (default: sized from the input to bound memory)")
    mimic.set_defaults(handler=_ingest_mimic4)
    meds_in = sources.add_parser("meds", help="validate and normalize an existing MEDS dataset")
    meds_in.add_argument("in_dir", type=Path)
    meds_in.add_argument("out_dir", type=Path)
    meds_in.set_defaults(handler=_ingest_meds)
    fhir_in = sources.add_parser("fhir", help="FHIR R4 bulk-export NDJSON (.ndjson, .ndjson.gz) and/or JSON Bundles")
    fhir_in.add_argument("in_dir", type=Path, help="directory (or one file) of FHIR R4 resources")
    fhir_in.add_argument("out_dir", type=Path, help="where the MEDS dataset is written")
    fhir_in.set_defaults(handler=_ingest_fhir)
    for p in (mimic, meds_in, fhir_in):
        p.add_argument("--seed", type=int, default=0, help="seed of the train/tuning/held_out split")
        p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
        p.add_argument("--quiet", action="store_true", help="no progress display or table summary")

    export = sub.add_parser("export", help="write a MEDS dataset in another format")
    targets = export.add_subparsers(dest="target")
    fhir_out = targets.add_parser("fhir", help="FHIR R4 NDJSON, one file per resource type (valid R4 resources)")
    fhir_out.add_argument("dataset", type=Path, help="a MEDS dataset (from ehrpredict ingest)")
    fhir_out.add_argument("out_dir", type=Path, help="where the NDJSON files are written")
    fhir_out.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    fhir_out.set_defaults(handler=_export_fhir)
    export.set_defaults(usage_of=export)

    synth = sub.add_parser("synth", help="write a synthetic hospital as raw MIMIC-IV tables (with an oracle)")
    synth.add_argument("out_dir", type=Path, help="where hosp/, icu/, ed/, note/ and oracle/ are written")
    synth.add_argument("--patients", type=int, default=1000, help="number of patients (default 1000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives identical files")
    synth.add_argument("--modules", default="hosp,icu,ed,note",
                       help="comma-separated modules to write (default hosp,icu,ed,note; hosp is required)")
    synth.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    synth.add_argument("--quiet", action="store_true", help="no progress display")
    synth.set_defaults(handler=_synth)

    info = sub.add_parser("info", help="summarize a MEDS dataset")
    info.add_argument("dataset", type=Path)
    info.add_argument("--json", action="store_true", help="print a JSON object")
    info.set_defaults(handler=_info)
    tasks = sub.add_parser("tasks", help="list the built-in prediction tasks")
    tasks.add_argument("--json", action="store_true", help="print a JSON list")
    tasks.set_defaults(handler=_tasks)
    label = sub.add_parser("label", help="label a MEDS dataset for a task")
    label.add_argument("dataset", type=Path)
    label.add_argument("task", help="a built-in task name (see `ehrpredict tasks`), a task YAML file, "
                       "several separated by commas, or `all`")
    label.add_argument("out", type=Path, help="labels parquet for one task (the cohort report goes beside "
                       "it); a directory for several")
    label.set_defaults(handler=_label)
    bench = sub.add_parser("benchmark", help="label, featurize, train and evaluate; write a report")
    bench.add_argument("dataset", type=Path, help="a MEDS dataset (from ehrpredict ingest)")
    bench.add_argument("--tasks", default="all", help="comma-separated task names or YAML files, or all")
    bench.add_argument("--representations", default="counts",
                       help="comma-separated: counts, text, counts+text (default counts)")
    bench.add_argument("--heads", default="lgbm,lr", help="comma-separated heads: lgbm, lr")
    bench.add_argument("--out", type=Path, required=True, help="run directory for report.json and report.html")
    bench.add_argument("--bootstrap", type=int, default=1000, help="patient-level bootstrap resamples")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--few-shot", action="store_true",
                       help="also train on k = 1..128 positives and negatives (5 replicates each)")
    bench.add_argument("--shuffle-permutations", type=int, default=5,
                       help="label-shuffle control replicates (default 5)")
    _coding_delay_option(bench)
    _text_options(bench)
    bench.add_argument("--quiet", action="store_true")
    bench.set_defaults(handler=_benchmark)
    fit = sub.add_parser("fit", help="train, calibrate and evaluate one model; keep it as a bundle")
    fit.add_argument("dataset", type=Path, help="a MEDS dataset (from ehrpredict ingest)")
    fit.add_argument("task", help="a built-in task name (see `ehrpredict tasks`) or a task YAML file")
    fit.add_argument("--representation", default="counts", help="counts, text or counts+text (default counts)")
    fit.add_argument("--head", default="lgbm", help="lgbm or lr (default lgbm; multilabel tasks: lr)")
    fit.add_argument("--out", type=Path, required=True, help="the bundle directory to write")
    fit.add_argument("--threshold", default="max-youden",
                     help="how the operating threshold is chosen on the tuning split's calibrated probabilities: "
                     "max-youden, sensitivity:0.9, specificity:0.9 or alert-rate:0.1 (default max-youden)")
    fit.add_argument("--name", default=None, help="the model's name (default TASK.REPRESENTATION.HEAD)")
    fit.add_argument("--bootstrap", type=int, default=1000, help="patient-level bootstrap resamples")
    fit.add_argument("--shuffle-permutations", type=int, default=2, help="label-shuffle control replicates")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--overwrite", action="store_true", help="replace an existing bundle directory")
    _coding_delay_option(fit)
    _text_options(fit)
    fit.add_argument("--quiet", action="store_true")
    fit.set_defaults(handler=_fit)
    predict = sub.add_parser("predict", help="score a MEDS dataset with a bundle (MEDS prediction schema)")
    predict.add_argument("bundle", type=Path, help="a bundle directory (from ehrpredict fit)")
    predict.add_argument("dataset", type=Path, help="a MEDS dataset (from ehrpredict ingest)")
    predict.add_argument("--out", type=Path, required=True, help="predictions parquet to write (summary beside it)")
    predict.add_argument("--labels", type=Path, default=None,
                         help="parquet or CSV of subject_id, prediction_time to score (default: the bundle's task "
                         "labeled on DATASET)")
    predict.add_argument("--explain", type=int, default=0, metavar="K",
                         help="add each row's top K factors up and down (default 0: none)")
    predict.add_argument("--cache-dir", type=Path, default=None,
                         help="text models: the embedding cache (default $EHRPREDICT_CACHE/embeddings)")
    predict.add_argument("--quiet", action="store_true")
    predict.set_defaults(handler=_predict)
    explain = sub.add_parser("explain", help="why a bundle scores a patient as it does: top factors (counts models) "
                             "or occlusion of the timeline's text (text models)")
    explain.add_argument("bundle", type=Path, help="a bundle directory (from ehrpredict fit)")
    explain.add_argument("dataset", type=Path, help="a MEDS dataset (from ehrpredict ingest)")
    explain.add_argument("--subject", type=int, required=True, help="subject_id to explain")
    explain.add_argument("--at", default=None,
                         help="prediction time (dataset time, e.g. 2150-01-02T08:00); default: the subject's first "
                         "label row of the bundle's task")
    explain.add_argument("--html", type=Path, default=None, help="also write the card as a self-contained HTML page")
    explain.add_argument("--top", type=int, default=5, help="factors shown each way (text models: parts; default 5)")
    explain.add_argument("--by", choices=("section", "line"), default="section",
                         help="text models: leave out whole sections or single lines")
    explain.add_argument("--cache-dir", type=Path, default=None,
                         help="text models: the embedding cache (default $EHRPREDICT_CACHE/embeddings)")
    explain.set_defaults(handler=_explain)
    serialize = sub.add_parser("serialize", help="print the text a text model reads for a subject's label rows")
    serialize.add_argument("dataset", type=Path, help="a MEDS dataset (from ehrpredict ingest)")
    serialize.add_argument("task", help="a built-in task name (see `ehrpredict tasks`) or a task YAML file")
    serialize.add_argument("--subject", type=int, required=True, help="subject_id whose label rows are shown")
    serialize.add_argument("--format", choices=("markdown", "recent_codes"), default="markdown")
    serialize.add_argument("--max-tokens", type=int, default=None,
                           help="token budget, counted as ceil(characters / 4); the oldest lines are cut first "
                           "(default: the text representation's budget, counted by the default encoder)")
    serialize.add_argument("--no-notes", action="store_true", help="leave out the notes section")
    _coding_delay_option(serialize)
    serialize.set_defaults(handler=_serialize)
    add_serve_commands(sub)
    parser.set_defaults(usage_of=parser)
    ingest.set_defaults(usage_of=ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # no (complete) command: usage of the deepest level given
        args.usage_of.print_help()
        return 2
    try:
        return int(handler(args))
    except EhrPredictError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; no partial output was left in place", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
