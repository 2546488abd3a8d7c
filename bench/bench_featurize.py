"""Feature matrix for one task's labels, side by side: ehrpredict's CountsFeaturizer vs MEDS-Tab 0.2.0.

Both tools start from the same MEDS data and the same label rows (task long_los_7d, labelled once
by ehrpredict and written in the MEDS label schema) and produce a sparse matrix with one row per
label, over windows 1d/7d/30d/365d/full history.  Every step runs in a fresh subprocess; its wall
time, CPU time and memory (RSS of the process tree sampled every 50 ms: the largest single process
and the sum over concurrent processes) are measured from outside.

    python bench/bench_featurize.py [--datasets demo,synth10k] [--timeout 1500] [--meds-tab-modes full,labels]

MEDS-Tab runs in its own venv (.cache/bench/meds-tab-venv, built on first use), in two modes:
  full    its documented pipeline: describe, tabularize-static, tabularize-time-series (features at
          every event time, 2 workers), cache-task (selects the task's rows, 2 workers);
  labels  tabularize with input_label_dir set, so windows are only summarised at the label rows.
Figures go to a table on stdout and .cache/bench/featurize.json.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import psutil

from bench_ingest import SAMPLE_SECONDS, TreeSampler, default_demo_dir, git_commit, kill_tree, stderr_tail

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
TASK = "long_los_7d"
OUR_WINDOWS = ("1d", "7d", "30d", "365d", "all")
MEDS_TAB_WINDOWS = ("1d", "7d", "30d", "365d", "full")
# static/first is left out: no static code carries a value, and MEDS-Tab raises on an empty agg.
MEDS_TAB_AGGS = ("static/present", "code/count", "value/count", "value/sum", "value/sum_sqd", "value/min", "value/max")
MEDS_TAB_PIP_SPECS = ("meds-tab==0.2.0",)
MEDS_COLUMNS = ("subject_id", "time", "code", "numeric_value")
SPEEDUP_TARGET, MEMORY_TARGET = 20.0, 0.1
OURS, MEDS_TAB = "ehrpredict", "meds-tab"


# --- measuring a process tree ------------------------------------------------------------------


@dataclass
class Step:
    """One measured subprocess: a step of one tool on one dataset."""

    dataset: str
    tool: str
    step: str
    command: list[str]
    ok: bool = False
    error: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_gb: float = 0.0  # largest single process
    peak_sum_rss_gb: float = 0.0  # sum over the processes alive at one sample
    max_processes: int = 0
    load_avg_1m: float = 0.0  # machine load when the step started (other work shares the cores)
    log: str | None = None
    in_total: bool = True


def run_step(dataset: str, tool: str, step: str, cmd: list[str], logs: Path, timeout: float) -> Step:
    """Run `cmd` (output to log files) and measure it; never raises for a failing command."""
    result = Step(dataset, tool, step, cmd, load_avg_1m=round(os.getloadavg()[0], 2))
    log_stem = logs / f"{dataset}_{tool}_{step}"
    result.log = f"{log_stem}.err"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"[{dataset}] {tool} {step}: {shlex.join(cmd)}", flush=True)
    if timeout <= 0:
        result.error = "no time left in the budget"
        return result
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(f"{log_stem}.out", "wb") as out, open(f"{log_stem}.err", "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        with TreeSampler(proc.pid) as sampler:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                result.error = f"timed out after {timeout:.0f} s"
                kill_tree(proc)
            except BaseException:
                kill_tree(proc)
                raise
        result.wall_s = round(time.perf_counter() - start, 2)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Workers that their parent never waited for are missing from RUSAGE_CHILDREN; the per-pid
    # samples miss the last < 50 ms of each process.  Take whichever saw more.
    result.cpu_s = round(max(waited, sum(sampler.cpu_by_pid.values())), 2)
    result.peak_rss_gb = round(sampler.peak_one / 1e9, 3)
    result.peak_sum_rss_gb = round(sampler.peak_sum / 1e9, 3)
    result.max_processes = sampler.max_procs
    if result.error is None and proc.returncode != 0:
        result.error = f"exit code {proc.returncode}"
    result.ok = result.error is None
    status = "ok" if result.ok else f"FAILED ({result.error}); stderr tail:\n{stderr_tail(log_stem)}"
    print(f"  {result.wall_s:.1f} s wall, {result.cpu_s:.1f} s cpu, peak {result.peak_rss_gb:.2f} GB "
          f"(sum {result.peak_sum_rss_gb:.2f} GB, {result.max_processes} procs): {status}", flush=True)
    return result


# --- children: the parts that run inside a measured subprocess --------------------------------


def child_label(meds: Path, out: Path) -> None:
    """Label the task and write it in the MEDS label schema (the input both tools share)."""
    from ehrpredict.tasks.labeler import label_many
    from ehrpredict.tasks.spec import load_task

    labels = label_many(meds, [load_task(TASK)])[TASK].labels
    labels.select("subject_id", "prediction_time", "boolean_value").write_parquet(out)


def child_ours(meds: Path, labels_file: Path, min_count: int, out: Path) -> None:
    """Fit CountsFeaturizer on the train-split label rows, transform all label rows; write the shape."""
    from ehrpredict.features.counts import CountsFeaturizer

    labels = pl.read_parquet(labels_file)
    splits = pl.read_parquet(meds / "metadata" / "subject_splits.parquet")
    train = labels.join(splits.filter(pl.col("split") == "train"), on="subject_id", how="semi")
    phases = {}
    start = time.perf_counter()
    featurizer = CountsFeaturizer(windows=OUR_WINDOWS, min_count=min_count).fit(train, source=meds)
    phases["fit_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    matrix = featurizer.transform(labels, source=meds)
    phases["transform_s"] = round(time.perf_counter() - start, 2)
    shape = {"rows": matrix.shape[0], "columns": matrix.shape[1], "nnz": int(matrix.nnz), "fit_rows": train.height}
    out.write_text(json.dumps({**shape, **phases}))


# --- preparing the inputs (not timed) ----------------------------------------------------------


def ensure_meds(name: str, cache: Path, source: Path) -> Path:
    """Ingest the dataset once into the cache; later runs reuse it."""
    meds = cache / f"{name}-meds"
    if (meds / ".ehrpredict-complete.json").exists():
        return meds
    if name == "synth10k":
        raw = cache / "synth10k-raw"
        if not (raw / "hosp").is_dir():
            cmd = [str(BIN / "ehrpredict"), "synth", str(raw), "--patients", "10000", "--seed", "0", "--quiet",
                   "--overwrite"]
            subprocess.run(cmd, check=True)
        source = raw
    shutil.rmtree(meds, ignore_errors=True)
    subprocess.run([str(BIN / "ehrpredict"), "ingest", "mimic4", str(source), str(meds)], check=True,
                   stdout=subprocess.DEVNULL)
    return meds


def meds_tab_copy(meds: Path, labels_file: Path, dest: Path) -> dict[str, Path]:
    """MEDS-Tab's inputs: data with the four core columns only, labels per shard and as one task file.

    Our shards also carry text_value, hadm_id, stay_id and table; MEDS-Tab ignores them but would
    still read them, so they are dropped.  Rows are sorted by (subject_id, time), nulls first, as
    MEDS requires (a no-op on our output).  Label files per shard (same relative path as the data
    shard) are what MEDS-Tab's input_label_dir expects; cache-task reads labels/**/*.parquet.
    """
    data, per_shard, task = dest / "data", dest / "labels_by_shard", dest / "labels" / TASK
    marker = dest / "COPIED.json"
    if not marker.exists():
        shutil.rmtree(dest, ignore_errors=True)
        labels = pl.read_parquet(labels_file).sort("subject_id", "prediction_time")
        for shard in sorted((meds / "data").rglob("*.parquet")):
            rel = shard.relative_to(meds / "data")
            frame = pl.read_parquet(shard, columns=list(MEDS_COLUMNS))
            frame = frame.sort("subject_id", "time", nulls_last=False, maintain_order=True)
            for root, table in ((data, frame), (per_shard, labels.join(frame.select("subject_id").unique(),
                                                                         on="subject_id", how="semi"))):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                table.write_parquet(root / rel)
        task.mkdir(parents=True)
        labels.write_parquet(task / "0.parquet")
        marker.write_text(json.dumps({"source": str(meds), "labels": str(labels_file)}))
    return {"data": data, "labels_by_shard": per_shard, "labels": task}


# --- MEDS-Tab ----------------------------------------------------------------------------------


def meds_tab_version(venv: Path) -> str | None:
    probe = "import importlib.metadata as m; print(m.version('meds-tab'), m.version('polars'))"
    try:
        out = subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                             check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"meds-tab {out[0]} / polars {out[1]}" if out and out[0] == "0.2.0" else None


def ensure_meds_tab(venv: Path) -> str:
    """Create the isolated venv unless it already has meds-tab 0.2.0 (its pins clash with ours)."""
    version = meds_tab_version(venv)
    if version:
        return version
    print(f"installing {' '.join(MEDS_TAB_PIP_SPECS)} into {venv}", flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([shutil.which("python3.11") or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *MEDS_TAB_PIP_SPECS], check=True)
    version = meds_tab_version(venv)
    if not version:
        raise RuntimeError(f"meds-tab 0.2.0 still not importable from {venv}")
    return version


def meds_tab_steps(venv: Path, inputs: dict[str, Path], out: Path, mode: str, cfg: Config) -> list[tuple[str, list]]:
    """The (step, command) list of one mode; see the module docstring."""
    tool = venv / "bin"
    common = [f"input_dir={inputs['data']}", f"output_dir={out}"]
    tabular = [
        *common,
        f"tabularization.min_code_inclusion_count={cfg.min_count}",
        f"tabularization.window_sizes=[{','.join(MEDS_TAB_WINDOWS)}]",
        f"tabularization.aggs=[{','.join(MEDS_TAB_AGGS)}]",
    ]
    workers = ["--multirun", f"worker=range(0,{cfg.workers})", "hydra/launcher=joblib",
               f"hydra.launcher.n_jobs={cfg.workers}"]
    if mode == "labels":
        tabular.append(f"input_label_dir={inputs['labels_by_shard']}")
    steps = [
        ("describe", [str(tool / "meds-tab-describe"), *common]),
        ("tabularize-static", [str(tool / "meds-tab-tabularize-static"), *tabular]),
        ("tabularize-time-series", [str(tool / "meds-tab-tabularize-time-series"), *workers, *tabular]),
    ]
    if mode == "full":
        cache_task = [*tabular, f"task_name={TASK}", f"input_label_dir={inputs['labels']}"]
        steps.append(("cache-task", [str(tool / "meds-tab-cache-task"), *workers, *cache_task]))
    return steps


def meds_tab_matrix(out: Path, mode: str) -> dict[str, int] | None:
    """Shape of the task's feature matrix: shards stacked by rows, window/agg blocks by columns.

    MEDS-Tab stores one .npz per shard, window and aggregation, each holding [data, row, col] and
    the block's shape; only those headers are read.
    """
    root = out / TASK / "task_cache" if mode == "full" else out / "tabularize"
    blocks = sorted(root.glob("*/*/*/*/*.npz"))  # split/shard/window/kind/agg.npz
    if not blocks:
        return None
    rows_by_shard: dict[str, int] = {}
    cols_by_shard: dict[str, int] = {}
    nnz = value_nnz = 0
    for block in blocks:
        shard = str(block.relative_to(root).parents[2])
        with np.load(block) as npz:
            rows, cols = (int(v) for v in npz["shape"])
            block_nnz = int(npz["array"].shape[1])
        nnz += block_nnz
        value_nnz += block_nnz if block.parent.name == "value" else 0
        rows_by_shard[shard] = rows
        cols_by_shard[shard] = cols_by_shard.get(shard, 0) + cols
    columns = set(cols_by_shard.values())
    # value_nnz == 0 flags MEDS-Tab 0.2.0's get_long_value_df, which filters codes against feature names
    # ("X" vs "X/value"), so every value/* block comes out empty.
    return {"rows": sum(rows_by_shard.values()), "columns": max(columns), "nnz": nnz, "value_nnz": value_nnz,
            "blocks": len(blocks)}


def expected_blocks(inputs: dict[str, Path]) -> int:
    shards = len(list(inputs["data"].rglob("*.parquet")))
    ts_aggs = [a for a in MEDS_TAB_AGGS if not a.startswith("static/")]
    return shards * (len(MEDS_TAB_WINDOWS) * len(ts_aggs) + len(MEDS_TAB_AGGS) - len(ts_aggs))


# --- driver ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    datasets: list[str]
    modes: list[str]
    cache: Path
    results: Path
    source: Path
    timeout: float
    workers: int
    min_count: int


@dataclass
class DatasetResult:
    dataset: str
    meds: str
    label_rows: int
    steps: list[Step] = field(default_factory=list)
    matrices: dict[str, dict | None] = field(default_factory=dict)
    reached: dict[str, str] = field(default_factory=dict)
    ours_phases: dict[str, float] = field(default_factory=dict)


def run_dataset(name: str, cfg: Config, venv: Path | None) -> DatasetResult:
    work = cfg.cache / "featurize"
    logs = work / "logs"
    meds = ensure_meds(name, work, cfg.source)
    labels_file = work / f"{name}-{TASK}.parquet"
    me = [sys.executable, str(Path(__file__).resolve())]
    label = run_step(name, OURS, "label", [*me, "--child", "label", str(meds), str(labels_file)], logs, cfg.timeout)
    label.in_total = False  # both tools take these labels as given
    if not label.ok:
        raise RuntimeError(f"labelling {TASK} on {meds} failed: {label.error} (see {label.log})")
    result = DatasetResult(name, str(meds), pl.read_parquet(labels_file).height, steps=[label])
    ours_json = work / f"{name}-ours.json"
    ours_json.unlink(missing_ok=True)
    ours = run_step(name, OURS, "fit+transform",
                    [*me, "--child", "ours", str(meds), str(labels_file), str(cfg.min_count), str(ours_json)],
                    logs, cfg.timeout)
    result.steps.append(ours)
    if ours.ok:
        shape = json.loads(ours_json.read_text())
        result.ours_phases = {k: shape.pop(k) for k in ("fit_s", "transform_s", "fit_rows")}
        result.matrices[OURS] = shape
    if venv is None:
        return result
    inputs = meds_tab_copy(meds, labels_file, work / f"{name}-meds-tab-input")
    for mode in cfg.modes:
        tool = f"{MEDS_TAB}[{mode}]"
        out = work / f"{name}-meds-tab-{mode}"
        shutil.rmtree(out, ignore_errors=True)  # its rwlock would otherwise skip finished blocks
        deadline = time.monotonic() + cfg.timeout
        for step, cmd in meds_tab_steps(venv, inputs, out, mode, cfg):
            measured = run_step(name, tool, step, cmd, logs, deadline - time.monotonic())
            result.steps.append(measured)
            if not measured.ok:
                break
        done = sorted((out / "tabularize").glob("*/*/*/*/*.npz"))
        result.reached[tool] = f"{len(done)} of {expected_blocks(inputs)} tabularized blocks written"
        if all(s.ok for s in result.steps if s.tool == tool):
            result.matrices[tool] = meds_tab_matrix(out, mode)
    return result


def totals(result: DatasetResult) -> dict[str, Step]:
    """Per tool, the sum of its steps (wall, cpu) and the max of their memory (steps run one after another)."""
    out: dict[str, Step] = {}
    for s in result.steps:
        if not s.in_total:
            continue
        t = out.setdefault(s.tool, Step(s.dataset, s.tool, "TOTAL", [], ok=True))
        t.ok = t.ok and s.ok
        t.error = t.error or s.error
        t.wall_s = round(t.wall_s + s.wall_s, 2)
        t.cpu_s = round(t.cpu_s + s.cpu_s, 2)
        t.peak_rss_gb = max(t.peak_rss_gb, s.peak_rss_gb)
        t.peak_sum_rss_gb = max(t.peak_sum_rss_gb, s.peak_sum_rss_gb)
        t.max_processes = max(t.max_processes, s.max_processes)
        t.load_avg_1m = max(t.load_avg_1m, s.load_avg_1m)
    return out


def verdicts(result: DatasetResult) -> list[dict]:
    """MEDS-Tab / ours for time and memory, and whether the 20x faster, 1/10 memory targets are met."""
    tot = totals(result)
    ours = tot.get(OURS)
    rows = []
    for tool, ref in tot.items():
        if tool == OURS or ours is None or not ours.ok:
            continue
        row = {
            "dataset": result.dataset, "peer": tool, "peer_complete": ref.ok,
            "time_ratio": round(ref.wall_s / ours.wall_s, 1),
            "cpu_ratio": round(ref.cpu_s / ours.cpu_s, 1),
            "peak_rss_ratio": round(ref.peak_rss_gb / ours.peak_rss_gb, 1),
            "sum_rss_ratio": round(ref.peak_sum_rss_gb / ours.peak_sum_rss_gb, 1),
        }
        # A peer that timed out or failed only gives lower bounds (">="): a miss is then undetermined (None).
        speed = row["time_ratio"] >= SPEEDUP_TARGET
        memory = ours.peak_rss_gb <= MEMORY_TARGET * ref.peak_rss_gb
        row["speed_target_met"] = speed if speed or ref.ok else None
        row["memory_target_met"] = memory if memory or ref.ok else None
        rows.append(row)
    return rows


def fmt_shape(shape: dict | None) -> str:
    if not shape:
        return "-"
    text = f"{shape['rows']:,} x {shape['columns']:,}, nnz {shape['nnz']:,}"
    return text + (", value/* blocks all empty" if shape.get("value_nnz") == 0 else "")


def print_dataset(result: DatasetResult) -> None:
    header = (f"{'tool':<20}{'step':<24}{'wall s':>9}{'cpu s':>9}{'peak RSS GB':>13}{'sum RSS GB':>12}"
              f"{'procs':>7}{'load':>6}  feature matrix / status")
    print(f"\n== {result.dataset}: {result.meds}, task {TASK}, {result.label_rows:,} label rows")
    print(header + "\n" + "-" * len(header))
    tot = totals(result)
    for s in [*result.steps, *tot.values()]:
        note = fmt_shape(result.matrices.get(s.tool)) if s.step == "TOTAL" else ""
        if s.step == "label":
            note = "not in totals (both tools get these labels)"
        if not s.ok:
            note = f"FAILED: {s.error}" + (f"; {result.reached[s.tool]}" if s.tool in result.reached else "")
        print(f"{s.tool:<20}{s.step:<24}{s.wall_s:>9.1f}{s.cpu_s:>9.1f}{s.peak_rss_gb:>13.2f}"
              f"{s.peak_sum_rss_gb:>12.2f}{s.max_processes:>7}{s.load_avg_1m:>6.1f}  {note}")
    verdict = {True: "met", False: "NOT met", None: "undetermined (peer did not finish)"}
    for v in verdicts(result):
        bound = "" if v["peer_complete"] else ">= "
        print(f"{v['peer']} / ours: time {bound}{v['time_ratio']}x (cpu {bound}{v['cpu_ratio']}x), "
              f"peak RSS {bound}{v['peak_rss_ratio']}x (summed {bound}{v['sum_rss_ratio']}x); "
              f">= {SPEEDUP_TARGET:.0f}x faster: {verdict[v['speed_target_met']]}; "
              f"<= 1/{1 / MEMORY_TARGET:.0f} of its peak memory: {verdict[v['memory_target_met']]}")


def write_json(cfg: Config, results: list[DatasetResult], meds_tab: str | None) -> None:
    doc = {
        "benchmark": f"feature matrix for task {TASK}: ehrpredict CountsFeaturizer vs MEDS-Tab",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
                    "platform": platform.platform()},
        "method": {
            "wall": "time.perf_counter around each step's subprocess; a tool's total sums its steps",
            "cpu": "user+sys of the process tree (max of RUSAGE_CHILDREN and per-pid samples)",
            "peak_rss": f"largest single-process RSS, sampled every {SAMPLE_SECONDS}s",
            "sum_rss": "largest sum of RSS over the process tree at one sample (shared pages counted twice)",
            "labels": "labelling is excluded from both totals: both tools read the same label parquet",
        },
        "ours": {"windows": OUR_WINDOWS, "stats": ["count", "last", "mean", "min", "max"],
                 "min_count": cfg.min_count, "fit_on": "train-split label rows"},
        "meds_tab": {"version": meds_tab, "windows": MEDS_TAB_WINDOWS, "aggs": MEDS_TAB_AGGS,
                     "min_code_inclusion_count": cfg.min_count, "workers": cfg.workers, "modes": cfg.modes,
                     "timeout_s_per_mode": cfg.timeout},
        "datasets": [{**asdict(r), "totals": {k: asdict(v) for k, v in totals(r).items()},
                      "verdicts": verdicts(r)} for r in results],
    }
    cfg.results.parent.mkdir(parents=True, exist_ok=True)
    cfg.results.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {cfg.results}")


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="demo,synth10k", help="comma-separated: demo, synth10k")
    parser.add_argument("--meds-tab-modes", default="full,labels", help="full, labels, or none")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds for all steps of one MEDS-Tab mode")
    parser.add_argument("--workers", type=int, default=2, help="MEDS-Tab workers (the machine has 2 cores)")
    parser.add_argument("--min-count", type=int, default=10, help="vocabulary cut-off for both tools")
    parser.add_argument("--source", type=Path, default=default_demo_dir(), help="raw MIMIC-IV demo directory")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--results", type=Path, default=REPO / ".cache" / "bench" / "featurize.json")
    args = parser.parse_args(argv)
    datasets = [d for d in args.datasets.split(",") if d]
    unknown = set(datasets) - {"demo", "synth10k"}
    if unknown:
        parser.error(f"expected datasets among demo, synth10k, got {sorted(unknown)}")
    modes = [m for m in args.meds_tab_modes.split(",") if m and m != "none"]
    if set(modes) - {"full", "labels"}:
        parser.error(f"expected --meds-tab-modes among full, labels, none, got {args.meds_tab_modes}")
    return Config(datasets, modes, args.cache_dir.resolve(), args.results, args.source, args.timeout,
                  args.workers, args.min_count)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # inside a measured subprocess
        kind, *rest = argv[1:]
        if kind == "label":
            child_label(Path(rest[0]), Path(rest[1]))
        else:
            child_ours(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]))
        return 0
    cfg = parse_args(argv)
    venv = cfg.cache / "meds-tab-venv"
    meds_tab = ensure_meds_tab(venv) if cfg.modes else None
    print(f"MEDS-Tab: {meds_tab}; modes {cfg.modes}; {cfg.workers} workers; timeout {cfg.timeout:.0f} s per mode")
    results = []
    for name in cfg.datasets:
        results.append(run_dataset(name, cfg, venv if cfg.modes else None))
        print_dataset(results[-1])
        write_json(cfg, results, meds_tab)  # after each dataset, so a later crash keeps the figures
    ours_ok = all(s.ok for r in results for s in r.steps if s.tool == OURS)
    return 0 if ours_ok else 1


if __name__ == "__main__":
    sys.exit(main())
