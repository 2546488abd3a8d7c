"""schemathesis fuzzes the service's own OpenAPI schema against the real server on loopback: whatever it
sends (schema-valid or not), no answer is a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_support import Keys


def test_fuzzing_the_openapi_schema_finds_no_server_error(live_server: str, keys: Keys, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.fail("expected schemathesis's `st` beside the test interpreter (it is in the dev requirements)")
    result = subprocess.run(
        [st, "run", f"{live_server}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "40",
         "--seed", "13", "--header", f"Authorization: Bearer {keys.admin}", "--request-timeout", "60",
         "--report-dir", str(tmp_path), "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "generated" in summary and "Server error" not in summary, summary
