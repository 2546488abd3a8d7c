"""Production code never imports ``ehrpredict.testing``: the test helpers may change for the tests' sake,
and a user's pipeline must not depend on them. Imports are read with ``ast``, so relative imports,
``from ehrpredict import testing`` and imports inside functions are all seen."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ehrpredict
from ehrpredict import schema as S

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


# --- code prefixes: ingestion's vocabulary stays in ingestion ------------------------------------------
# Which prefixes are labs, vitals, sex, ... is data (vocab/kinds.py's CodeKinds, recorded in dataset.json), so
# stages after ingestion work on any MEDS dataset that declares its own. ingest/ writes the codes; vocab/ is
# ingestion's dictionary side (only ingest/ uses it, checked below) and vocab/kinds.py the one list of defaults.
VOCABULARY_OWNERS = ("ingest", "vocab", "testing")
# Known debt: the labeler's episodes are still defined on ehrpredict's own visit codes.
ALLOWED_PREFIXES = {
    "tasks/episodes.py": {"HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE", "ICU_ADMISSION", "ICU_DISCHARGE",
                          "ED_ARRIVAL", "ED_DISPOSITION"},
}
PREFIXED_CODE = re.compile(r"^[A-Z][A-Z0-9_]*//")  # "GENDER//", "LAB//50912//mg/dL", f"LAB//{item}"


def ingestion_prefixes() -> set[str]:
    """Every prefix ehrpredict's ingestion writes (MEDS's own MEDS_BIRTH and MEDS_DEATH are not ours)."""
    from ehrpredict.vocab.codes import PREFIX_NAMES
    from ehrpredict.vocab.kinds import DEFAULT_CODE_KINDS

    kinds = DEFAULT_CODE_KINDS.to_json().values()
    listed = {p for value in kinds for p in (value if isinstance(value, list) else [value]) if p is not None}
    return (set(PREFIX_NAMES) | listed) - {S.BIRTH_CODE, S.DEATH_CODE}


def spelled_prefixes(source: str, prefixes: set[str]) -> list[tuple[int, str]]:
    """(line, literal) of every string literal outside docstrings that is a code prefix or starts with one."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and (node.value in prefixes or PREFIXED_CODE.match(node.value))]


def test_the_prefix_checker_sees_every_spelling() -> None:
    prefixes = {"GENDER", "LAB", "CHART"}
    source = '''"""Docstrings may show codes: GENDER//F, "LAB//50912//mg/dL"."""
ATTRIBUTES = {"sex": "GENDER//"}
VITALS = ("CHART", "OMR")
def item(x):
    """LAB//x"""
    return f"LAB//{x}", "SNOMED//123", "https?://", S.CODE_SEPARATOR, "//", "lab"
'''
    assert sorted(value for _, value in spelled_prefixes(source, prefixes)) == ["CHART", "GENDER//", "LAB//",
                                                                                "SNOMED//123"]


def test_code_prefixes_are_spelled_only_by_ingestion() -> None:
    prefixes = ingestion_prefixes()
    assert {"LAB", "GENDER", "ICD10CM", "ED_TRIAGE", "TRANSFER"} <= prefixes  # the lists were found
    spelled = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR)
        if relative.parts[0] in VOCABULARY_OWNERS:
            continue
        allowed = ALLOWED_PREFIXES.get(relative.as_posix(), set())
        spelled += [f"{relative}:{line} {value!r}" for line, value in spelled_prefixes(path.read_text(), prefixes)
                    if value not in allowed]
    assert spelled == [], "read code prefixes from the dataset's CodeKinds (ehrpredict.vocab.kinds)"


def test_only_ingestion_uses_the_ingestion_vocabulary() -> None:
    # vocab/ (ICD formatting, dictionaries, codes.parquet descriptions) may spell prefixes because only
    # ingestion uses it; every other stage reads the dataset's CodeKinds from vocab/kinds.py.
    offenders = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR)
        if relative.parts[0] in VOCABULARY_OWNERS:
            continue
        module = module_name(path)
        names = imported_modules(path.read_text(), module, is_package=path.name == "__init__.py")
        offenders += [f"{module} imports {n}" for n in names if n.startswith("ehrpredict.vocab.")
                      and not n.startswith("ehrpredict.vocab.kinds")]
    assert offenders == []


# --- the modelling layer: dependencies point one way -----------------------------------------------------
# events → features/models → pipeline → experiments, explain → cli. A module may import its own layer or
# lower ones, never a higher one (lazy imports inside functions count too).
LAYERS: dict[str, int] = {
    **dict.fromkeys(("schema", "errors", "age", "cachedir", "executor", "dataset", "vocab"), 0),
    "events": 1,
    **dict.fromkeys(("ingest", "tasks"), 2),
    "text": 3,
    **dict.fromkeys(("models", "evaluation"), 4),
    "features": 5,
    "pipeline": 6,
    **dict.fromkeys(("experiments", "explain"), 7),
    "bundle": 8,
    "serve": 9,
    "cli": 10,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "ehrpredict" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def test_dependencies_point_one_way() -> None:
    offenders, seen = [], set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        module = module_name(path)
        own = _layer(module)
        if own is None:
            continue
        seen.add(module.split(".")[1])
        for name in imported_modules(path.read_text(), module, is_package=path.name == "__init__.py"):
            layer = _layer(name)
            if layer is not None and layer > own:
                offenders.append(f"{module} (layer {own}) imports {name} (layer {layer})")
    assert seen >= set(LAYERS) - {"cli"} | {"pipeline"}  # the walk found every layer
    assert sorted(set(offenders)) == []

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
