"""`make demo`'s serving step: start `ehrpredict serve` on a free loopback port with a fresh key, post one
held-out patient's events (up to their prediction time), print the answer beside the probability the
predictions file holds for the same row, and stop the server.

    .venv/bin/python scripts/serve_demo.py BUNDLE DATASET PREDICTIONS WORKDIR
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(bundle: Path, dataset: Path, predictions: Path, work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    keys = work / "keys.json"
    keys.unlink(missing_ok=True)
    cli = [sys.executable, "-m", "ehrpredict.cli"]
    key = subprocess.run([*cli, "keys", "add", str(keys), "--name", "demo", "--scopes", "predict,read"],
                         check=True, capture_output=True, text=True).stdout.strip()
    held = pl.read_parquet(bundle / "report" / "held_out_predictions.parquet").row(0, named=True)
    subject, when = held["subject_id"], held["prediction_time"]
    expected = pl.read_parquet(predictions).filter((pl.col("subject_id") == subject)
                                                   & (pl.col("prediction_time") == when))
    events = pl.scan_parquet(dataset / "data" / "**" / "*.parquet").filter(
        (pl.col("subject_id") == subject) & (pl.col("time").is_null() | (pl.col("time") <= when))).collect()
    body = {"prediction_time": when.isoformat(), "subject_id": subject, "explain": 3,
            "events": [{"time": t.isoformat() if t else None, "code": c, "numeric_value": v, "text_value": x}
                       for t, c, v, x in events.select("time", "code", "numeric_value", "text_value").iter_rows()]}
    port = _port()
    log = (work / "server.log").open("w")
    server = subprocess.Popen([*cli, "serve", str(bundle), "--keys", str(keys), "--port", str(port),
                               "--audit-db", str(work / "audit.sqlite"), "--dataset", str(dataset)],
                              stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or server.poll() is not None:
                    print((work / "server.log").read_text()[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.3)
        name = json.loads((bundle / "manifest.json").read_text())["name"]
        request = urllib.request.Request(f"{base}/v1/models/{name}/predict", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {key}",
                                                  "content-type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        ms = (time.perf_counter() - start) * 1000
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    print(f"POST {base}/v1/models/{name}/predict: subject {subject} at {when} ({len(body['events'])} events), "
          f"{ms:.0f} ms")
    print(f"  probability {answer['probability']:.4f}, decision {answer['decision']} at threshold "
          f"{answer['threshold']:.4f}; the predictions file says "
          f"{float(expected.item(0, 'predicted_boolean_probability')):.4f}")
    for factor in answer["factors"]:
        print(f"  {factor['contribution']:+.3f}  {factor['factor']}")
    print(f"  audit log: {work / 'audit.sqlite'}; server log: {work / 'server.log'}")
    return 0 if answer["probability"] == float(expected.item(0, "predicted_boolean_probability")) else 1


if __name__ == "__main__":
    sys.exit(main(*(Path(a) for a in sys.argv[1:5])))
