"""Load on `ehrpredict serve` over loopback: latency at a fixed request rate, and the most it serves.

A counts/LightGBM bundle is fitted once on a synthetic hospital (cached like bench_predict.py). The
request bodies are real patients of that hospital, each with its events up to a label row's prediction
time, chosen to hold about `--events` events (default ~1,000), with explanations on (top 5 each way).
The server runs as its own process (`ehrpredict serve`, one uvicorn worker, rate limit off); the load
comes from this process with httpx on asyncio.

1. Open loop: `--rate` requests per second for `--seconds` (default 20/s for 60 s). Requests leave on a
   fixed schedule whatever the answers, so a slow server cannot slow the load down (no coordinated
   omission). Target: p99 <= 100 ms and no errors.
2. Closed loop: `--clients` concurrent clients (default 50) each sending its next request as soon as its
   last one is answered, for `--closed-seconds` (default 30): the throughput the server sustains, with
   its p50/p99.

The server's RSS is sampled every second through both runs: memory should stay flat.

    .venv/bin/python bench/bench_serve.py [--patients 2000] [--rate 20] [--seconds 60] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import psutil

from bench_benchmark import REPO, child_env, default_cache_dir, ensure_dataset


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bodies(meds: Path, task: str, events: int, n: int) -> list[bytes]:
    """Request bodies of real patients: events up to a label row's time, about ``events`` of them."""
    from ehrpredict.tasks.labeler import label_many
    from ehrpredict.tasks.spec import load_task

    labels = label_many(meds, [load_task(task)])[task].labels.select("subject_id", "prediction_time")
    data = pl.scan_parquet(meds / "data" / "**" / "*.parquet").select("subject_id", "time", "code",
                                                                       "numeric_value", "text_value")
    counts = (data.join(labels.lazy(), on="subject_id")
              .filter(pl.col("time").is_null() | (pl.col("time") <= pl.col("prediction_time")))
              .group_by("subject_id", "prediction_time").len().collect())
    chosen = (counts.with_columns((pl.col("len") - events).abs().alias("gap")).sort("gap", "subject_id")
              .unique("subject_id", keep="first", maintain_order=True).head(n))
    bodies = []
    for sid, when, _, _ in chosen.iter_rows():
        mine = data.filter((pl.col("subject_id") == sid)
                           & (pl.col("time").is_null() | (pl.col("time") <= when))).collect()
        rows = [{"time": t.isoformat() if t is not None else None, "code": c, "numeric_value": v, "text_value": x}
                for _, t, c, v, x in mine.iter_rows()]
        bodies.append(json.dumps({"prediction_time": when.isoformat(), "events": rows, "explain": 5}).encode())
    sizes = [len(json.loads(b)["events"]) for b in bodies]
    print(f"{len(bodies)} patients, events per request: median {statistics.median(sizes):.0f}, "
          f"min {min(sizes)}, max {max(sizes)}", flush=True)
    return bodies


class RssSampler(threading.Thread):
    """The server's RSS every second (with --workers: the workers' sum)."""

    def __init__(self, pid: int, children: bool = False) -> None:
        super().__init__(daemon=True)
        self.process, self.children = psutil.Process(pid), children
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            procs = self.process.children(recursive=True) if self.children else [self.process]
            rss = sum(p.memory_info().rss for p in procs if p.is_running())
            self.samples.append((time.monotonic(), rss / 2**20))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def _one(client: httpx.AsyncClient, url: str, body: bytes, latencies: list[float], errors: list[str]) -> None:
    start = time.perf_counter()
    try:
        response = await client.post(url, content=body, headers={"content-type": "application/json"})
        if response.status_code != 200:
            errors.append(f"{response.status_code}: {response.text[:200]}")
    except httpx.HTTPError as exc:
        errors.append(type(exc).__name__)
    latencies.append((time.perf_counter() - start) * 1000)


async def open_loop(url: str, key: str, bodies: list[bytes], rate: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30, limits=limits) as client:
        tasks, start, n = [], time.perf_counter(), int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, url, bodies[i % len(bodies)], latencies, errors)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"requests": n, "seconds": round(elapsed, 1), "achieved_rps": round(n / elapsed, 2), "errors": len(errors),
            "error_examples": errors[:3], **_stats(latencies)}


async def closed_loop(url: str, key: str, bodies: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60, limits=limits) as client:
        end = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                await _one(client, url, bodies[i % len(bodies)], latencies, errors)
                i += clients

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies), "seconds": round(elapsed, 1),
            "throughput_rps": round(len(latencies) / elapsed, 2), "errors": len(errors),
            "error_examples": errors[:3], **_stats(latencies)}


def _stats(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": round(_percentile(latencies, 50), 1), "p90_ms": round(_percentile(latencies, 90), 1),
            "p99_ms": round(_percentile(latencies, 99), 1), "max_ms": round(max(latencies), 1)}


def _memory(samples: list[tuple[float, float]], start: float, end: float) -> str:
    window = [mb for t, mb in samples if start <= t <= end]
    if not window:
        return "no samples"
    return f"RSS first {window[0]:.0f} MB, last {window[-1]:.0f} MB, max {max(window):.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2000, help="synthetic hospital size (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="long_los_7d")
    parser.add_argument("--events", type=int, default=1000, help="events per request, about (default 1000)")
    parser.add_argument("--bodies", type=int, default=50, help="distinct patients cycled through (default 50)")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--closed-seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
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
    bodies = _bodies(meds, args.task, args.events, args.bodies)
    name = json.loads((bundle / "manifest.json").read_text())["name"]
    with tempfile.TemporaryDirectory() as tmp:
        keys = Path(tmp) / "keys.json"
        key = subprocess.run([*cli, "keys", "add", str(keys), "--name", "bench", "--scopes", "predict"],
                             env=child_env(src), check=True, capture_output=True, text=True).stdout.strip()
        port = _port()
        server = subprocess.Popen([*cli, "serve", str(bundle), "--keys", str(keys), "--port", str(port),
                                   "--audit-db", str(Path(tmp) / "audit.sqlite"), "--rate-limit", "0",
                                   "--workers", str(args.workers), "--log-level", "warning"],
                                  env={**child_env(src), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.DEVNULL,
                                  stderr=open(Path(tmp) / "server.err", "w"))  # noqa: SIM115
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print((Path(tmp) / "server.err").read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
            url = f"{base}/v1/models/{name}/predict"
            sampler = RssSampler(server.pid, children=args.workers > 1)
            sampler.start()
            asyncio.run(closed_loop(url, key, bodies, 4, 5))  # warm-up, not reported
            t0 = time.monotonic()
            opened = asyncio.run(open_loop(url, key, bodies, args.rate, args.seconds))
            t1 = time.monotonic()
            closed = asyncio.run(closed_loop(url, key, bodies, args.clients, args.closed_seconds))
            t2 = time.monotonic()
            sampler.stop.set()
        finally:
            server.terminate()
            server.wait(timeout=30)
    cpus = os.cpu_count()
    print(f"server: {args.workers} uvicorn worker(s) on {cpus} CPUs, bundle {name}, explanations on (top 5 each way)")
    print(f"open loop  {args.rate:g} req/s for {args.seconds:g} s: {opened['requests']} requests, "
          f"{opened['errors']} errors, p50 {opened['p50_ms']} ms, p90 {opened['p90_ms']} ms, "
          f"p99 {opened['p99_ms']} ms, "
          f"max {opened['max_ms']} ms (target p99 <= 100 ms: {'met' if opened['p99_ms'] <= 100 else 'MISSED'}); "
          f"{_memory(sampler.samples, t0, t1)}")
    print(f"closed loop {args.clients} clients for {args.closed_seconds:g} s: {closed['throughput_rps']} req/s, "
          f"{closed['errors']} errors, p50 {closed['p50_ms']} ms, p99 {closed['p99_ms']} ms; "
          f"{_memory(sampler.samples, t1, t2)}")
    for result in (opened, closed):
        if result["errors"]:
            print(f"errors, e.g.: {result['error_examples']}")
    print(json.dumps({"open_loop": opened, "closed_loop": closed}))
    return 0 if not opened["errors"] and not closed["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
