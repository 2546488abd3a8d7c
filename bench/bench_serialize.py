"""Serialize every label row of a task to text, in both formats, and print timelines/s and peak RSS.

    python bench/bench_serialize.py [DATASET] [--task long_los_7d]

Default dataset: the synthetic hospital from `make demo` (out/synthetic-hospital-meds, 2,000 patients;
long_los_7d gives ~3.5k label rows). The issue's target: >= 2,000 timelines per second on 2 cores.
Labeling is done once beforehand and not timed; the fit (which labs and vitals to show, learned on the
train split's label rows) is timed on its own, and every label row is then serialized.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import polars as pl

from ehrpredict import schema as S
from ehrpredict.tasks.labeler import label_many
from ehrpredict.tasks.spec import load_task
from ehrpredict.text.serialize import FORMATS, SERIALIZER_VERSION, SerializerConfig, TimelineSerializer, approx_tokens

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "out" / "synthetic-hospital-meds"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--task", default="long_los_7d")
    parser.add_argument("--repeats", type=int, default=3, help="runs per format; the fastest is reported")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "serialize.json")
    args = parser.parse_args()
    if not (args.dataset / "data").is_dir():
        print(f"no MEDS dataset at {args.dataset}: run `make demo` first (or pass a dataset)")
        return 1
    spec = load_task(args.task)
    labels = label_many(args.dataset, [spec])[spec.name].labels
    splits = pl.read_parquet(args.dataset / S.SPLITS_FILE)
    train = labels.join(splits.filter(pl.col(S.SPLIT) == S.TRAIN), on=S.SUBJECT_ID, how="semi")
    rows = []
    for fmt in FORMATS:
        start = time.perf_counter()
        serializer = TimelineSerializer(SerializerConfig(format=fmt)).fit(train, source=args.dataset)
        fit_seconds = time.perf_counter() - start
        best, cpu = float("inf"), 0.0
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            timelines = serializer.serialize(labels, source=args.dataset)
            seconds = time.perf_counter() - start
            if seconds < best:
                best, cpu = seconds, time.process_time() - start_cpu
        tokens = sorted(approx_tokens(t.text) for t in timelines)
        n_truncated = sum(1 for t in timelines if t.truncated)
        rows.append({"format": fmt, "fit_rows": train.height, "fit_seconds": round(fit_seconds, 3),
                     "timelines": len(timelines), "seconds": round(best, 3),
                     "cpu_seconds": round(cpu, 3), "timelines_per_second": round(len(timelines) / best),
                     "median_tokens": tokens[len(tokens) // 2], "truncated": n_truncated})
        print(f"{fmt:<14}{len(timelines):>7,} timelines in {best:6.2f} s  {len(timelines) / best:>8,.0f} timelines/s  "
              f"(cpu {cpu:.2f} s; median ~{tokens[len(tokens) // 2]} tokens, {n_truncated:,} cut to 512; "
              f"fit on {train.height:,} train rows {fit_seconds:.2f} s)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"peak RSS {peak:.2f} GB; task {args.task}; dataset {args.dataset}; serializer {SERIALIZER_VERSION}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": str(args.dataset), "task": args.task, "serializer_version": SERIALIZER_VERSION,
               "peak_rss_gb": round(peak, 3), "formats": rows}
    args.results.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
