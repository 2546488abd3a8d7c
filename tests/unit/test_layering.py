"""Production code never imports ``ehrpredict.testing``: the test helpers may change for the tests' sake,
and a user's pipeline must not depend on them. Imports are read with ``ast``, so relative imports,
``from ehrpredict import testing`` and imports inside functions are all seen."""

from __future__ import annotations

import ast
from pathlib import Path

import ehrpredict

PACKAGE_DIR = Path(ehrpredict.__file__).resolve().parent
TESTING = "ehrpredict.testing"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool) -> set[str]:
    """Every module an import statement in ``source`` names, relative imports resolved against ``module``;
    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, node.module] if node.module else base_parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imports_testing(modules: set[str]) -> bool:
    return any(name == TESTING or name.startswith(TESTING + ".") for name in modules)


def test_the_checker_sees_every_spelling_of_the_import() -> None:
    module = "ehrpredict.ingest.synth.writer"
    for source in (
        "import ehrpredict.testing",
        "from ehrpredict.testing.mimic import HEADERS",
        "from ehrpredict import testing",
        "from ...testing import HEADERS",
        "from ... import testing",
        "def f():\n    from ehrpredict.testing import events\n",
    ):
        assert imports_testing(imported_modules(source, module, is_package=False)), source
    for source in ("from ehrpredict.ingest.mimic4_columns import HEADERS", "from .. import synth", "import os"):
        assert not imports_testing(imported_modules(source, module, is_package=False)), source


def test_production_modules_do_not_import_testing() -> None:
    production = [p for p in sorted(PACKAGE_DIR.rglob("*.py")) if "testing" not in p.relative_to(PACKAGE_DIR).parts]
    assert len(production) > 20  # the walk found the package, not an empty directory
    offenders = [
        str(path.relative_to(PACKAGE_DIR.parent))
        for path in production
        if imports_testing(
            imported_modules(path.read_text(), module_name(path), is_package=path.name == "__init__.py")
        )
    ]
    assert offenders == [], f"production modules import {TESTING}: {offenders}"


LABEL_NAMES = {"prediction_time", "boolean_value", "integer_value", "float_value", "categorical_value"}


def test_label_column_names_are_spelled_only_in_the_schema() -> None:
    # One way to say things: the MEDS label columns come from meds.LabelSchema through schema.py, so a
    # column renamed upstream changes in one place. Docstrings and doctests may show the names.
    spelled = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name == "schema.py" or "testing" in path.relative_to(PACKAGE_DIR).parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        spelled += [f"{path.relative_to(PACKAGE_DIR)}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and node.value in LABEL_NAMES and id(node) not in docstrings]
    assert spelled == []


def test_text_does_not_import_features() -> None:
    # features/text.py wraps the serializer and encoders, so the dependency goes features -> text only;
    # both reach the cutoff in events/. A cycle here is how the modelling layer became hard to reuse.
    offenders = []
    for path in sorted((PACKAGE_DIR / "text").rglob("*.py")):
        module = module_name(path)
        names = imported_modules(path.read_text(), module, is_package=path.name == "__init__.py")
        offenders += [f"{module} imports {n}" for n in names
                      if n == "ehrpredict.features" or n.startswith("ehrpredict.features.")]
    assert offenders == []


def imports_of(subpackage: str) -> dict[str, set[str]]:
    """Module name → the ehrpredict modules it imports, for every module under ``ehrpredict/<subpackage>``."""
    out = {}
    for path in sorted((PACKAGE_DIR / subpackage).rglob("*.py")):
        module = module_name(path)
        names = imported_modules(path.read_text(), module, is_package=path.name == "__init__.py")
        out[module] = {n for n in names if n == "ehrpredict" or n.startswith("ehrpredict.")}
    assert out, subpackage  # the walk found the package
    return out


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


RESULTS = ("ehrpredict.experiments.results", "ehrpredict.experiments.model_results")
RUNNERS = ("ehrpredict.benchmark", "ehrpredict.experiments.benchmark")


def test_reports_are_drawn_from_results_types_only() -> None:
    # The page reads what a run reported, never how it ran: reporting/ may import the results types
    # but not the runner (nor anything else of experiments/), and svg.py draws from numbers alone.
    offenders = [f"{module} imports {n}" for module, names in imports_of("reporting").items() for n in names
                 if (under(n, "ehrpredict.experiments") and n != "ehrpredict.experiments" and not under(n, *RESULTS))
                 or under(n, *RUNNERS)]
    offenders += [f"ehrpredict.reporting.svg imports {n}" for n in imports_of("reporting")["ehrpredict.reporting.svg"]
                  if not under(n, "ehrpredict.reporting")]
    assert offenders == []


def test_evaluation_and_results_do_not_import_what_is_built_on_them() -> None:
    # evaluation/ computes metrics; the results types hold them; reporting/ and the runner read both.
    offenders = [f"{module} imports {n}" for module, names in imports_of("evaluation").items() for n in names
                 if under(n, "ehrpredict.reporting", "ehrpredict.experiments", *RUNNERS)]
    offenders += [f"{module} imports {n}" for module, names in imports_of("experiments").items() for n in names
                  if module in RESULTS and under(n, "ehrpredict.reporting", *RUNNERS)]
    assert offenders == []
