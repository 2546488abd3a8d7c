"""Wall time and peak memory of `ehrpredict benchmark` on a 10k-patient synthetic hospital.

Each repeat runs `ehrpredict benchmark` (counts features, lgbm and lr heads, a few binary tasks) as a
fresh subprocess and measures it from outside: wall time around the child, and its user+system CPU
time and peak RSS from the rusage that os.wait4 returns for it.  `--python`/`--src` choose the code
that is timed, so the same script can time two checkouts of ehrpredict on the same data:

    python bench/bench_benchmark.py                                   # this checkout, 3 repeats
    python bench/bench_benchmark.py --src /work/wt-base/src --json base.json

The dataset (`ehrpredict synth --patients N --seed S`, then `ehrpredict ingest mimic4`) is prepared
once, with this checkout's code, under $EHRPREDICT_BENCH_DIR (else .cache/bench)/benchmark/, in a
directory named by generator version, patients and seed; later runs reuse it.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench_ingest import stderr_tail

REPO = Path(__file__).resolve().parent.parent
# Two tasks: four (adding readmission_30d, hyperkalemia_48h) took 19 CPU-minutes a run, too long to repeat.
DEFAULT_TASKS = "mortality_in_hospital_48h,long_los_7d"
BENCHMARK_ARGS = ("--representations", "counts", "--heads", "lgbm,lr", "--bootstrap", "200",
                  "--shuffle-permutations", "2", "--quiet")
COMPLETE_MARKER = ".ehrpredict-complete.json"  # ehrpredict.ingest.output writes it last
PREPARED = "PREPARED.json"


@dataclass(frozen=True)
class Run:
    """One measured `ehrpredict benchmark` child."""

    wall_s: float
    cpu_s: float  # user + system of the child and the descendants it waited for
    peak_rss_mb: float  # ru_maxrss: the largest single process among those, not a sum
    load_avg_1m: float  # machine load when the run started: other work slows wall time, not CPU time
    exit_code: int
    results_sha256: str  # of the metric lines it printed: equal digests mean equal results


def default_cache_dir() -> Path:
    return Path(os.environ.get("EHRPREDICT_BENCH_DIR", REPO / ".cache" / "bench"))


def child_env(src: Path) -> dict[str, str]:
    # PYTHONPATH comes before the venv's editable install on sys.path, so `src` is what gets imported.
    return {**os.environ, "PYTHONPATH": str(src)}


def probe(python: str, src: Path, code: str) -> str:
    return subprocess.run([python, "-c", code], env=child_env(src), capture_output=True, text=True,
                          check=True).stdout.strip()


def checkout_commit(src: Path) -> str | None:
    """HEAD of the git checkout holding `src`, with "-dirty" if it has uncommitted changes."""
    try:
        git = ["git", "-C", str(src)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


# --- the dataset (prepared once, not timed) ----------------------------------------------------


def ensure_dataset(cache: Path, patients: int, seed: int) -> tuple[Path, dict]:
    """Synthesize and ingest the hospital with this checkout's code, unless the cache already has it.

    The directory name holds the generator version, so a generator change gives a new dataset
    instead of silently reusing data the current code would not produce.
    """
    src = REPO / "src"
    version = probe(sys.executable, src, "from ehrpredict.ingest.synth import GENERATOR_VERSION; "
                                         "print(GENERATOR_VERSION)")
    home = cache / "benchmark" / f"synth-g{version}-n{patients}-s{seed}"
    raw, meds = home / "raw", home / "meds"
    if (home / PREPARED).exists() and (meds / COMPLETE_MARKER).exists():
        return meds, json.loads((home / PREPARED).read_text())
    commit = checkout_commit(src)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    cli = [sys.executable, "-m", "ehrpredict.cli"]
    steps = {"synth": [*cli, "synth", str(raw), "--patients", str(patients), "--seed", str(seed), "--quiet"],
             "ingest": [*cli, "ingest", "mimic4", str(raw), str(meds), "--quiet"]}
    seconds = {}
    for name, cmd in steps.items():
        print(f"preparing: {shlex.join(cmd)}", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, env=child_env(src), check=True, stdout=subprocess.DEVNULL)
        seconds[f"{name}_s"] = round(time.perf_counter() - start, 1)
    manifest = json.loads((raw / "SYNTHETIC.json").read_text())
    if (manifest["generator_version"], manifest["n_patients"], manifest["seed"]) != (version, patients, seed):
        raise RuntimeError(f"expected generator {version}, {patients} patients, seed {seed}; got {manifest}")
    info = {"generator_version": version, "patients": patients, "seed": seed, **seconds,
            "prepared_with": {"src": str(src), "commit": commit}}
    write_json_atomic(home / PREPARED, info)  # last: its presence means the dataset is complete
    print(f"prepared {home}: synth {seconds['synth_s']} s, ingest {seconds['ingest_s']} s", flush=True)
    return meds, info


def warm_page_cache(*roots: Path) -> None:
    """Read every file once so that the first repeat does not pay for cold disk reads."""
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                with path.open("rb") as f:
                    while f.read(1 << 23):
                        pass


# --- measuring -----------------------------------------------------------------------------------


def run_once(cmd: list[str], env: dict[str, str], log_stem: Path) -> Run:
    """Run the child (output to log files) and measure it with os.wait4."""
    load = round(os.getloadavg()[0], 2)
    with open(f"{log_stem}.out", "wb") as out, open(f"{log_stem}.err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: stop the child's process group too, then re-raise
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; Popen must not wait again
    # The last line names the temporary run directory and the run's duration; the rest are metrics.
    lines = Path(f"{log_stem}.out").read_text().splitlines()
    metrics = "\n".join(line for line in lines if not line.startswith("wrote "))
    return Run(wall_s=round(wall, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
               peak_rss_mb=round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
               load_avg_1m=load, exit_code=proc.returncode,
               results_sha256=hashlib.sha256(metrics.encode()).hexdigest())


def write_json_atomic(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def print_run(label: str, run: Run) -> None:
    print(f"{label:<8}{run.wall_s:>9.1f}{run.cpu_s:>9.1f}{run.peak_rss_mb:>13.0f}{run.load_avg_1m:>6.1f}  "
          f"{run.results_sha256[:12]}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="Python that runs the timed child")
    parser.add_argument("--src", type=Path, default=REPO / "src", help="PYTHONPATH of the timed child")
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated binary tasks")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=int, default=10_000, help="size of the synthetic hospital")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic hospital")
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                        help="default $EHRPREDICT_BENCH_DIR, else .cache/bench")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.patients < 1:
        parser.error(f"expected --repeats and --patients >= 1, got {args.repeats} and {args.patients}")
    args.src = args.src.resolve()
    if not (args.src / "ehrpredict" / "__init__.py").is_file():
        parser.error(f"expected --src to hold ehrpredict/__init__.py, got {args.src}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache = args.cache_dir.resolve()
    meds, dataset = ensure_dataset(cache, args.patients, args.seed)
    code = "import ehrpredict; print(ehrpredict.__file__); print(ehrpredict.__version__)"
    imported, version = probe(args.python, args.src, code).split("\n")
    if not Path(imported).resolve().is_relative_to(args.src):
        raise RuntimeError(f"expected {args.python} to import ehrpredict from {args.src}, got {imported}")
    commit = checkout_commit(args.src)
    warm_page_cache(meds, meds.parent / "raw" / "oracle")
    work, logs = cache / "benchmark", cache / "benchmark" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"timing ehrpredict {version} from {args.src} (commit {commit}) with {args.python}\n"
          f"dataset {meds}, tasks {args.tasks}, {args.repeats} repeats, {os.cpu_count()} cpus")
    print(f"{'run':<8}{'wall s':>9}{'cpu s':>9}{'peak RSS MB':>13}{'load':>6}  results sha256")
    cmd = [args.python, "-m", "ehrpredict.cli", "benchmark", str(meds), "--tasks", args.tasks, *BENCHMARK_ARGS]
    runs: list[Run] = []
    for i in range(1, args.repeats + 1):
        with tempfile.TemporaryDirectory(dir=work, prefix="run-") as tmp:
            log_stem = logs / f"{(commit or 'unknown')[:12]}-run{i}"
            run = run_once([*cmd, "--out", str(Path(tmp) / "out")], child_env(args.src), log_stem)
        runs.append(run)
        print_run(str(i), run)
        if run.exit_code != 0:
            print(f"run {i} failed (exit code {run.exit_code}); stderr tail:\n{stderr_tail(log_stem)}")
            return 1
    median = {k: round(statistics.median(getattr(r, k) for r in runs), 2) for k in ("wall_s", "cpu_s", "peak_rss_mb")}
    print(f"{'median':<8}{median['wall_s']:>9.1f}{median['cpu_s']:>9.1f}{median['peak_rss_mb']:>13.0f}")
    if len({r.results_sha256 for r in runs}) > 1:
        print("note: the runs printed different metrics (see the logs)")
    print(f"logs: {logs}")
    if args.json:
        write_json_atomic(args.json, {
            "benchmark": "ehrpredict benchmark, wall time and peak RSS of the child",
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "timed": {"python": args.python, "src": str(args.src), "commit": commit, "ehrpredict_version": version},
            "dataset": {"path": str(meds), **dataset},
            "command": [*cmd, "--out", "TMP"],
            "method": {"wall": "time.perf_counter around the child process",
                       "cpu": "ru_utime + ru_stime from os.wait4 on the child",
                       "peak_rss": "ru_maxrss from os.wait4 on the child (largest single process among it "
                                   "and its waited-for descendants)"},
            "runs": [asdict(r) for r in runs],
            "median": median,
        })
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
