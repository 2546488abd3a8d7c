"""Benchmark the synthetic hospital generator: wall time, peak RSS and rows written.

    python bench/bench_synth.py            # N = 2,000 and N = 100,000
    python bench/bench_synth.py --small    # N = 2,000 only
    python bench/bench_synth.py --large    # N = 100,000 only

Each size runs in a fresh subprocess (`ehrpredict synth`), so its peak RSS is its own
(ru_maxrss of the child). Output goes to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(n: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        out = Path(tmp) / "raw"
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ehrpredict.cli", "synth", str(out), "--patients", str(n),
                        "--seed", str(seed), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        manifest = json.loads((out / "SYNTHETIC.json").read_text())
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"patients": n, "seconds": seconds, "peak_rss_mb": max(peak_kb, before) / 1024,
            "rows": sum(manifest["tables"].values()), "oracle_rows": manifest["oracle"]["rows"],
            "admissions": manifest["tables"]["hosp/admissions"], "megabytes_on_disk": size / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--large", action="store_true", help="only N = 100,000")
    group.add_argument("--small", action="store_true", help="only N = 2,000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [100_000] if args.large else [2_000] if args.small else [2_000, 100_000]
    print(f"{'patients':>9} {'seconds':>8} {'peak RSS MB':>12} {'rows':>12} {'admissions':>11} {'MB on disk':>11}")
    for n in sizes:
        r = run(n, args.seed)
        print(f"{r['patients']:>9,} {r['seconds']:>8.1f} {r['peak_rss_mb']:>12.0f} {r['rows']:>12,.0f} "
              f"{r['admissions']:>11,.0f} {r['megabytes_on_disk']:>11.0f}", flush=True)


if __name__ == "__main__":
    main()
