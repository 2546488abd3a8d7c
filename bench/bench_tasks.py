"""Label every built-in task on a MEDS dataset and print the time per task, the total and peak RSS.

    python bench/bench_tasks.py [DATASET]

Default dataset: the x100 copy of the MIMIC-IV demo ingested by bench_ingest.py
(.cache/bench/out/ehrpredict_x100, 10,000 patients). The issue's target: all built-in tasks on a
10k-patient dataset in under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from ehrpredict.tasks.labeler import label_dataset, label_many
from ehrpredict.tasks.spec import load_library

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / ".cache" / "bench" / "out" / "ehrpredict_x100"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "tasks.json")
    args = parser.parse_args()
    if not (args.dataset / "data").is_dir():
        print(f"no MEDS dataset at {args.dataset}: run bench/bench_ingest.py first (or pass a dataset)")
        return 1
    specs = load_library()
    start = time.perf_counter()
    one = label_dataset(args.dataset, specs[0])  # one task alone, for reference
    single = time.perf_counter() - start
    start = time.perf_counter()
    results = label_many(args.dataset, specs)  # every task, one pass over the shards
    total = time.perf_counter() - start
    rows = [{"task": name, "labels": r.report.n_labels, "episodes": r.report.n_episodes}
            for name, r in results.items()]
    for row in rows:
        print(f"{row['task']:<32}{row['labels']:>9,} labels of {row['episodes']:>9,} episodes")
    print(f"one task ({specs[0].name}) alone: {single:.2f} s, {one.report.n_labels:,} labels")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"all {len(specs)} tasks in one pass: {total:.2f} s, peak RSS {peak:.2f} GB, dataset {args.dataset}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    payload = {"dataset": str(args.dataset), "total_seconds": round(total, 2),
               "single_task_seconds": round(single, 2), "peak_rss_gb": round(peak, 3), "tasks": rows}
    args.results.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
