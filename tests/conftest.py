"""Shared fixtures. The real MIMIC-IV demo is read in place from ../shared (or $EHRPREDICT_MIMIC_DEMO);
tests that need it skip when it is absent, unless EHRPREDICT_REQUIRE_DEMO=1 (CI), where absence fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from ehrpredict.cachedir import CACHE_ENV

# Speed is measured in bench/, never asserted in tests: hypothesis's per-example deadline (200 ms)
# turned a loaded CI machine into failures of tests that check correctness only.
settings.register_profile("ehrpredict", deadline=None)
settings.load_profile("ehrpredict")

REPO = Path(__file__).resolve().parent.parent
DEMO_ENV = "EHRPREDICT_MIMIC_DEMO"
REQUIRE_ENV = "EHRPREDICT_REQUIRE_DEMO"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests never write to the user's ehrpredict cache (a benchmark run caches file digests there)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("ehrpredict-cache")))
        yield


def demo_path() -> Path:
    return Path(os.environ.get(DEMO_ENV, REPO.parent / "shared" / "data" / "mimic-iv-demo-2.2"))


@pytest.fixture(scope="session")
def mimic_demo() -> Path:
    path = demo_path()
    if not (path / "hosp" / "patients.csv.gz").exists():
        message = f"the MIMIC-IV demo is not at {path} (set {DEMO_ENV} to its directory)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def demo_dataset(mimic_demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ingested once per test session (per xdist worker)."""
    from ehrpredict.ingest.mimic4 import ingest_mimic4

    out = tmp_path_factory.mktemp("demo") / "meds"
    ingest_mimic4(mimic_demo, out)
    return out
