"""Benchmark MIMIC-IV -> MEDS ingestion: `ehrpredict ingest mimic4` vs `meds_etl_mimic`.

For each factor K (default 10 and 100) the 100-patient demo is scaled to K*100
patients (bench/scale_mimic.py, cached under .cache/bench/mimic_x{K}) and both
tools convert the very same files.  Each run is timed (wall clock) and its
memory sampled every 50 ms as the summed RSS of the process and all of its
descendants (meds-etl forks workers and gunzip).  Results are printed as a
table and written to bench/results/ingest.json.

    python bench/bench_ingest.py [--factors 10,100] [--skip-meds-etl] [--ours-cmd CMD]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import psutil

import scale_mimic

REPO = Path(__file__).resolve().parent.parent
MEDS_ETL_VERSION = "0.3.11"
MEDS_ETL_PIP_SPECS = (f"meds-etl=={MEDS_ETL_VERSION}", "polars<2")
MEDS_ETL_SOURCE_VERSION = "2.2"  # meds_etl_mimic reads SRC/2.2/{hosp,icu}
SAMPLE_SECONDS = 0.05
STDERR_TAIL_LINES = 25
OURS, MEDS_ETL = "ehrpredict", "meds-etl"


def default_demo_dir() -> Path:
    return Path(
        os.environ.get("EHRPREDICT_MIMIC_DEMO", REPO.parent / "shared" / "data" / "mimic-iv-demo-2.2")
    )


@dataclass
class Measurement:
    """One run of one tool on one scaled copy."""

    tool: str
    factor: int
    command: list[str]
    patients: int
    source_rows: int
    ok: bool = False
    returncode: int | None = None
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_gb: float | None = None
    output_rows: int | None = None
    error: str | None = None
    log: str | None = None


@dataclass
class RunStats:
    returncode: int | None
    wall_s: float
    cpu_s: float
    peak_rss_bytes: int
    timed_out: bool = False


@dataclass
class TreeSampler:
    """Samples a process tree on a background thread: peak summed RSS, peak single RSS, CPU by pid."""

    pid: int
    peak_sum: int = 0
    peak_one: int = 0
    max_procs: int = 0
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_SECONDS)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        rss = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):  # exited between listing and reading
                rss.append(proc.memory_info().rss)
                times = proc.cpu_times()
                self.cpu_by_pid[proc.pid] = times.user + times.system
        if rss:
            self.peak_sum = max(self.peak_sum, sum(rss))
            self.peak_one = max(self.peak_one, max(rss))
            self.max_procs = max(self.max_procs, len(rss))


def children_cpu_seconds() -> float:
    """User+system CPU of all waited-for descendants (includes meds-etl's pool workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill the process we started and its descendants, by pid."""
    try:
        victims = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        victims = []
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    proc.kill()
    proc.wait()


def run_measured(cmd: list[str], log_stem: Path, timeout: float) -> RunStats:
    """Run `cmd` with stdout/stderr to files (pipes could fill and stall it)."""
    log_stem.parent.mkdir(parents=True, exist_ok=True)
    cpu_before = children_cpu_seconds()
    with open(f"{log_stem}.out", "wb") as out, open(f"{log_stem}.err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        timed_out = False
        with TreeSampler(proc.pid) as sampler:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_tree(proc)
            except BaseException:
                kill_tree(proc)
                raise
        wall = time.perf_counter() - start
    return RunStats(proc.returncode, wall, children_cpu_seconds() - cpu_before, sampler.peak_sum, timed_out)


def stderr_tail(log_stem: Path, lines: int = STDERR_TAIL_LINES) -> str:
    text = Path(f"{log_stem}.err").read_text(errors="replace").rstrip().splitlines()
    return "\n".join(text[-lines:])


def count_meds_rows(out_dir: Path) -> int | None:
    """Events in a MEDS output (data/**/*.parquet); from parquet footers, so cheap."""
    files = sorted((out_dir / "data").rglob("*.parquet"))
    if not files:
        return None
    try:
        return int(pl.scan_parquet(files).select(pl.len()).collect().item())
    except Exception:  # a malformed output is reported as unknown, not fatal
        return None


def warm_page_cache(root: Path) -> None:
    """Read the copy once so neither tool pays for cold reads the other did not."""
    for path in sorted(root.rglob("*.csv.gz")):
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


# --- meds-etl -----------------------------------------------------------------


def meds_etl_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def meds_etl_versions(venv: Path) -> str | None:
    """'meds_etl X / polars Y' if the venv has the pinned meds-etl, else None."""
    probe = "import meds_etl, polars; print(meds_etl.__version__, polars.__version__)"
    try:
        out = subprocess.run(
            [str(meds_etl_python(venv)), "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"meds_etl {out[0]} / polars {out[1]}" if out and out[0] == MEDS_ETL_VERSION else None


def ensure_meds_etl(venv: Path) -> str:
    """Create the isolated meds-etl venv unless it already works (idempotent)."""
    versions = meds_etl_versions(venv)
    if versions:
        return versions
    print(f"installing {' '.join(MEDS_ETL_PIP_SPECS)} into {venv}", flush=True)
    python311 = shutil.which("python3.11") or sys.executable
    if not meds_etl_python(venv).exists():
        subprocess.run([python311, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(meds_etl_python(venv)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *MEDS_ETL_PIP_SPECS,
        ],
        check=True,
    )
    versions = meds_etl_versions(venv)
    if not versions:
        raise RuntimeError(f"meds-etl still not importable from {venv}")
    return versions


def meds_etl_source(cache: Path, copy: Path, factor: int) -> Path:
    """meds_etl_mimic wants SRC/2.2/{hosp,icu}: a relative symlink avoids a second copy."""
    root = cache / f"meds_etl_src_x{factor}"
    link = root / MEDS_ETL_SOURCE_VERSION
    root.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(copy, root)
    if link.is_symlink() and os.readlink(link) == target:
        return root
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target, target_is_directory=True)
    return root


# --- driver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    factors: list[int]
    source: Path
    cache: Path
    results: Path
    ours_cmd: list[str]
    skip_ours: bool
    skip_meds_etl: bool
    num_proc: int
    num_shards: int
    repeats: int
    timeout: float


def tool_command(tool: str, cfg: Config, copy: Path, out: Path, factor: int) -> list[str]:
    if tool == OURS:
        # `out` never exists here (cleared before timing), so no --overwrite.
        return [*cfg.ours_cmd, "ingest", "mimic4", str(copy), str(out)]
    src = meds_etl_source(cfg.cache, copy, factor)
    return [
        str(cfg.cache / "venv-meds-etl" / "bin" / "meds_etl_mimic"),
        str(src),
        str(out),
        *meds_etl_options(cfg),
    ]


def meds_etl_options(cfg: Config) -> list[str]:
    return ["--num_shards", str(cfg.num_shards), "--num_proc", str(cfg.num_proc), "--backend", "polars"]


def measure(tool: str, cfg: Config, copy: Path, marker: dict, factor: int) -> Measurement:
    """Best (fastest successful) of cfg.repeats runs of one tool on one copy."""
    out = cfg.cache / "out" / f"{tool}_x{factor}"
    cmd = tool_command(tool, cfg, copy, out, factor)
    best: Measurement | None = None
    for attempt in range(cfg.repeats):
        m = Measurement(tool, factor, cmd, marker["patients"], marker["total_rows"])
        # Clearing the previous output is not part of either tool's work.
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        log_stem = cfg.cache / "logs" / f"{tool}_x{factor}"
        m.log = f"{log_stem}.err"
        print(f"[x{factor}] {tool} run {attempt + 1}/{cfg.repeats}: {shlex.join(cmd)}", flush=True)
        try:
            stats = run_measured(cmd, log_stem, cfg.timeout)
        except OSError as exc:  # e.g. the command does not exist yet
            m.error = f"could not start: {exc}"
            print(f"  FAILED: {m.error}", flush=True)
            return m
        m.returncode, m.wall_s, m.cpu_s = stats.returncode, round(stats.wall_s, 2), round(stats.cpu_s, 2)
        m.peak_rss_gb = round(stats.peak_rss_bytes / 1e9, 3)
        m.ok = stats.returncode == 0 and not stats.timed_out
        if m.ok:
            m.output_rows = count_meds_rows(out)
            print(
                f"  {m.wall_s:.1f} s, peak {m.peak_rss_gb:.2f} GB, {m.output_rows or 0:,} events", flush=True
            )
            if best is None or not best.ok or (m.wall_s or 0) < (best.wall_s or 0):
                best = m
        else:
            m.error = (
                f"timed out after {cfg.timeout:.0f} s" if stats.timed_out else f"exit code {stats.returncode}"
            )
            print(f"  FAILED ({m.error}); stderr tail ({m.log}):\n{stderr_tail(log_stem)}", flush=True)
            best = best or m
    assert best is not None
    return best


def fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def ratios(results: list[Measurement]) -> list[dict]:
    """Per factor: meds-etl time / ours (>1: ours faster), ours peak / meds-etl peak (<1: ours leaner)."""
    rows = []
    for factor in sorted({m.factor for m in results}):
        by_tool = {m.tool: m for m in results if m.factor == factor and m.ok}
        ours, ref = by_tool.get(OURS), by_tool.get(MEDS_ETL)
        if ours is None or ref is None:
            continue
        if ours.wall_s and ref.wall_s and ours.peak_rss_gb is not None and ref.peak_rss_gb:
            rows.append(
                {
                    "factor": factor,
                    "meds_etl_time_over_ours": round(ref.wall_s / ours.wall_s, 2),
                    "ours_peak_over_meds_etl_peak": round(ours.peak_rss_gb / ref.peak_rss_gb, 3),
                }
            )
    return rows


def print_table(results: list[Measurement], ratio_rows: list[dict]) -> None:
    header = f"{'tool':<11}{'factor':>7}{'patients':>10}{'source rows':>14}{'events out':>14}"
    header += f"{'wall (s)':>10}{'cpu (s)':>9}{'peak RSS (GB)':>15}  status"
    print("\n" + header + "\n" + "-" * len(header))
    for m in results:
        status = "ok" if m.ok else f"FAILED: {m.error}"
        print(
            f"{m.tool:<11}{m.factor:>7}{m.patients:>10,}{m.source_rows:>14,}{fmt(m.output_rows, ',d'):>14}"
            f"{fmt(m.wall_s, '.1f'):>10}{fmt(m.cpu_s, '.1f'):>9}{fmt(m.peak_rss_gb, '.2f'):>15}  {status}"
        )
    for r in ratio_rows:
        print(
            f"x{r['factor']}: meds-etl time / ours = {r['meds_etl_time_over_ours']:.2f}x, "
            f"ours peak / meds-etl peak = {r['ours_peak_over_meds_etl_peak']:.2f}"
        )


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def write_json(
    cfg: Config, results: list[Measurement], ratio_rows: list[dict], meds_versions: str | None
) -> None:
    cfg.results.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "mimic4 ingestion",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "method": {
            "wall": "time.perf_counter around the subprocess, page cache warmed first",
            "peak_rss": f"max of summed RSS of process + descendants, sampled every {SAMPLE_SECONDS}s",
            "cpu": "user+sys of waited-for descendants (getrusage RUSAGE_CHILDREN)",
            "repeats": cfg.repeats,
        },
        "source": str(cfg.source),
        "ours_command": cfg.ours_cmd,
        "meds_etl": {"versions": meds_versions, "options": meds_etl_options(cfg)},
        "runs": [asdict(m) for m in results],
        "ratios": ratio_rows,
    }
    cfg.results.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {cfg.results}")


def run(cfg: Config) -> list[Measurement]:
    tools = [t for t, skip in ((OURS, cfg.skip_ours), (MEDS_ETL, cfg.skip_meds_etl)) if not skip]
    meds_versions = ensure_meds_etl(cfg.cache / "venv-meds-etl") if MEDS_ETL in tools else None
    if meds_versions:
        print(
            f"meds-etl: {meds_versions}; options: {' '.join(meds_etl_options(cfg))}"
            " (SRC/2.2 is a symlink to the copy)"
        )
    if OURS in tools:
        print(f"ours: {shlex.join(cfg.ours_cmd)} ingest mimic4 SRC OUT")
    results: list[Measurement] = []
    for factor in cfg.factors:
        copy = cfg.cache / f"mimic_x{factor}"
        print(f"\n== x{factor}: building/reusing {copy}", flush=True)
        marker = scale_mimic.scale(cfg.source, copy, factor)
        warm_page_cache(copy)
        for tool in tools:
            results.append(measure(tool, cfg, copy, marker, factor))
    ratio_rows = ratios(results)
    print_table(results, ratio_rows)
    write_json(cfg, results, ratio_rows, meds_versions)
    return results


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factors", default="10,100", help="comma-separated scale factors (default 10,100)")
    parser.add_argument("--source", type=Path, default=default_demo_dir(), help="raw MIMIC-IV demo directory")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "ingest.json")
    parser.add_argument(
        "--ours-cmd",
        default=str(REPO / ".venv" / "bin" / "ehrpredict"),
        help="our CLI (shell-split; default: repo venv)",
    )
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument("--skip-meds-etl", action="store_true")
    parser.add_argument(
        "--num-proc", type=int, default=2, help="meds-etl --num_proc (the machine has 2 cores)"
    )
    parser.add_argument("--num-shards", type=int, default=100, help="meds-etl --num_shards (its default)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per tool and factor; the fastest is kept"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed")
    args = parser.parse_args(argv)
    return Config(
        factors=[int(f) for f in args.factors.split(",") if f.strip()],
        source=args.source,
        cache=args.cache_dir.resolve(),
        results=args.results,
        ours_cmd=shlex.split(args.ours_cmd),
        skip_ours=args.skip_ours,
        skip_meds_etl=args.skip_meds_etl,
        num_proc=args.num_proc,
        num_shards=args.num_shards,
        repeats=max(1, args.repeats),
        timeout=args.timeout,
    )


def main(argv: list[str] | None = None) -> int:
    results = run(parse_args(argv))
    return 0 if results and all(m.ok for m in results) else 1


if __name__ == "__main__":
    sys.exit(main())
