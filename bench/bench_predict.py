"""Throughput and peak memory of `ehrpredict predict` on a synthetic hospital (default 10k patients).

The dataset is prepared once (as bench_benchmark.py does, cached under $EHRPREDICT_BENCH_DIR, else
.cache/bench); a counts/LightGBM bundle for the task is fitted once (not timed). Then `ehrpredict
predict` runs as a child process, `--repeats` times, with and without `--explain 5`; wall time, CPU
time and peak RSS come from os.wait4. Patients/s counts the subjects with a label row.

Memory is bounded by a shard: the figure to compare is peak RSS at two dataset sizes
(`--patients 5000` and the default); it should grow far less than the dataset.

    .venv/bin/python bench/bench_predict.py [--patients 10000] [--task long_los_7d] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_benchmark import REPO, child_env, default_cache_dir, ensure_dataset, run_once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="long_los_7d")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    cache = args.cache_dir or default_cache_dir()
    meds, _ = ensure_dataset(cache, args.patients, args.seed)
    src = REPO / "src"
    cli = [sys.executable, "-m", "ehrpredict.cli"]
    bundle = meds.parent / f"bundle-{args.task}-counts-lgbm"
    if not (bundle / "manifest.json").exists():
        print(f"fitting the bundle (not timed): {bundle}", flush=True)
        subprocess.run([*cli, "fit", str(meds), args.task, "--out", str(bundle), "--bootstrap", "20",
                        "--shuffle-permutations", "1", "--overwrite", "--quiet"], env=child_env(src), check=True,
                       stdout=subprocess.DEVNULL)
    print(f"ehrpredict predict on {args.patients:,} synthetic patients ({args.task}, counts/lgbm); "
          f"{args.repeats} repeats", flush=True)
    print(f"{'explain':<9}{'wall s':>9}{'CPU s':>9}{'peak RSS MB':>13}{'patients/s':>12}{'rows':>9}", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for explain in (0, 5):
            runs, summary = [], {}
            for i in range(args.repeats):
                out = Path(tmp) / f"p{explain}-{i}.parquet"
                cmd = [*cli, "predict", str(bundle), str(meds), "--out", str(out), "--explain", str(explain), "--quiet"]
                run = run_once(cmd, child_env(src), Path(tmp) / f"log{explain}-{i}")
                if run.exit_code != 0:
                    print((Path(tmp) / f"log{explain}-{i}.err").read_text()[-2000:], file=sys.stderr)
                    return 1
                summary = json.loads(out.with_suffix(".json").read_text())
                runs.append(run)
                rate = summary["patients"] / run.wall_s
                print(f"{explain:<9}{run.wall_s:>9.1f}{run.cpu_s:>9.1f}{run.peak_rss_mb:>13.0f}{rate:>12.0f}"
                      f"{summary['rows']:>9,}", flush=True)
            wall = statistics.median(r.wall_s for r in runs)
            results.append({"explain": explain, "median_wall_s": wall,
                            "median_peak_rss_mb": statistics.median(r.peak_rss_mb for r in runs),
                            "patients": summary["patients"], "rows": summary["rows"],
                            "patients_per_s": round(summary["patients"] / wall, 1)})
    for r in results:
        print(f"median (explain {r['explain']}): {r['median_wall_s']:.1f} s, {r['patients_per_s']:.0f} patients/s, "
              f"peak RSS {r['median_peak_rss_mb']:.0f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
