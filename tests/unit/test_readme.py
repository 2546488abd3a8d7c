"""Facts the README states about the code, checked against the code."""

import re
from pathlib import Path

from ehrpredict.tasks.spec import LIBRARY

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_counts_the_builtin_tasks_that_ship() -> None:
    shipped = len(list(LIBRARY.glob("*.yaml")))
    stated = [int(n) for n in re.findall(r"(\d+) built-in (?:ones|tasks)\b", README.read_text())]
    assert stated, "the README no longer states how many built-in tasks ship"
    assert stated == [shipped] * len(stated)
