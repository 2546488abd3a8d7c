"""The dashboard in a real browser: Playwright driving Debian's chromium against the app on a real
uvicorn server on loopback. Skipped with the reason when chromium is absent, unless
EHRPREDICT_REQUIRE_BROWSER=1 (CI installs it), where absence fails. Screenshots go to the test's tmp
directory (look at them when changing a page; none are committed)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from serve_support import TASK, Keys

from ehrpredict import schema as S

MODEL = f"{TASK}.counts.lgbm"
REQUIRE_ENV = "EHRPREDICT_REQUIRE_BROWSER"
CHROMIUM = os.environ.get("EHRPREDICT_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        message = f"Debian's chromium is not at {CHROMIUM} nor on PATH (apt-get install chromium)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_sign_in_explore_the_threshold_open_a_patient_and_sign_out(browser: Any, live_server: str, keys: Keys,
                                                                    bundle_path: Path, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{live_server}/dashboard/")
    assert page.url.startswith(f"{live_server}/login")  # sent to the login page first
    page.fill("#key", keys.read)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/dashboard/")
    assert page.locator("table a", has_text=MODEL).count() == 1
    page.screenshot(path=str(tmp_path / "models.png"), full_page=True)

    page.click(f"text={MODEL}")
    page.wait_for_url(f"**/dashboard/models/{MODEL}")
    assert page.locator("svg").count() >= 3
    table = json.loads(page.locator("#explorer-data").text_content() or "[]")
    seen = set()
    for position in (20, 50, 80):
        page.locator("#threshold").fill(str(position))
        shown = [page.locator(f"#t-{name}").text_content() for name in ("sensitivity", "specificity", "ppv", "alerts")]
        row = table[position]
        expected = [f"{v:.3f}" if v is not None else "–"
                    for v in (row["sensitivity"], row["specificity"], row["ppv"], row["alerts_per_100"])]
        assert shown == expected
        assert page.locator("#t-value").text_content() == f"{row['threshold']:.2f}"
        seen.add(tuple(shown))
    assert len(seen) > 1  # moving the slider changed the figures
    page.screenshot(path=str(tmp_path / "model.png"), full_page=True)

    held = pl.read_parquet(bundle_path / "report" / "held_out_predictions.parquet").row(0, named=True)
    subject, when = held[S.SUBJECT_ID], held[S.PREDICTION_TIME]
    page.goto(f"{live_server}/dashboard/patients/{subject}?model={MODEL}&at={when.isoformat()}")
    assert f"{held['predicted_boolean_probability']:.1%}" in (page.locator("#risk").text_content() or "")
    assert page.locator("#risk-chart circle").count() >= 2
    assert page.locator("#factors tr").count() >= 2
    page.screenshot(path=str(tmp_path / "patient.png"), full_page=True)

    page.click("text=Sign out")
    page.wait_for_url(f"{live_server}/login")
    page.goto(f"{live_server}/dashboard/")
    assert page.url.startswith(f"{live_server}/login")  # the session ended
    page.close()
