"""Fixtures of the service's tests: a small synthetic hospital, a counts/LightGBM bundle fitted on it, API
keys of each scope, an app around them, and the same app on a real uvicorn server on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serve_support import TASK, Keys, free_port, make_context

from ehrpredict.bundle.fit import fit_bundle
from ehrpredict.experiments.config import BenchmarkConfig
from ehrpredict.ingest.mimic4 import ingest_mimic4
from ehrpredict.ingest.synth import SynthConfig, generate

pytest.importorskip("fastapi", reason="the service's tests need the [serve] extra")


@pytest.fixture(scope="session")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-hospital")
    generate(root / "raw", SynthConfig(n_patients=300, seed=3))
    ingest_mimic4(root / "raw", root / "meds")
    return root / "meds"


@pytest.fixture(scope="session")
def bundle_path(hospital: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve-bundle") / "long-los"
    config = BenchmarkConfig(dataset=hospital, out=hospital, tasks=(TASK,), representations=("counts",),
                             heads=("lgbm",), n_boot=20, shuffle_permutations=1, seed=0)
    fit_bundle(config, out)
    return out


@pytest.fixture(scope="session")
def keys() -> Keys:
    from ehrpredict.serve.auth import KeyStore, new_key

    made = {scope: new_key(f"test-{scope}", (scope,)) for scope in ("predict", "read", "admin")}
    store = KeyStore(tuple(entry for _, entry in made.values()))
    return Keys(made["predict"][0], made["read"][0], made["admin"][0], store)


@pytest.fixture
def client(bundle_path: Path, keys: Keys, tmp_path: Path, hospital: Path) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from ehrpredict.serve.app import create_app

    ctx = make_context(bundle_path, keys, tmp_path, dataset=hospital)
    with TestClient(create_app(ctx)) as test_client:
        test_client.ctx = ctx  # type: ignore[attr-defined]
        yield test_client


@pytest.fixture(scope="session")
def live_server(bundle_path: Path, keys: Keys, tmp_path_factory: pytest.TempPathFactory, hospital: Path
                ) -> Iterator[str]:
    """The app on a real uvicorn server on 127.0.0.1 (a thread of this process), for the browser and
    fuzz tests; its base URL."""
    import uvicorn

    from ehrpredict.serve.app import create_app

    ctx = make_context(bundle_path, keys, tmp_path_factory.mktemp("live"), dataset=hospital, rate_limit=0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


