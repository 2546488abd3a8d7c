"""Which code prefixes mean what: the one vocabulary config that stages after ingestion read.

A code is ``PREFIX//part//...``; which prefixes hold vital signs, labs, diagnoses or sex depends on who
ingested the dataset, so it is data, not code. Ingestion records a :class:`CodeKinds` in
``metadata/dataset.json`` (``{"ehrpredict": {"code_kinds": {...}}}``) and :func:`code_kinds` reads it
back; the text serializer's sections, the coding delay and the fairness subgroups all go through it.
A MEDS dataset that declares none gets :data:`DEFAULT_CODE_KINDS`, what ehrpredict's own MIMIC-IV
ingestion writes; this module is the one place those prefixes are listed.

    >>> kinds = code_kinds({"ehrpredict": {"code_kinds": {"labs": ["LOINC"], "sex": "SEX"}}})
    >>> kinds.labs, kinds.sex, kinds.race
    (('LOINC',), 'SEX', 'RACE')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from ehrpredict import schema as S
from ehrpredict.errors import ConfigError, DataError
from ehrpredict.vocab.icd import ICD9CM, ICD9PROC, ICD10CM, ICD10PCS

CODE_KINDS_KEY = "code_kinds"  # under "ehrpredict" in dataset.json
# Written by ingestion before code_kinds existed; still read, so older datasets keep their coding delay.
LEGACY_CODED_AFTER_DISCHARGE_KEY = "coded_after_discharge"

# Kinds a code is given by its prefix; at most one each (vitals excepted: see CodeKinds).
_EXCLUSIVE = ("labs", "lab_flags", "conditions", "medications", "procedures", "visits", "notes")
_PREFIX_LISTS = ("vitals", *_EXCLUSIVE, "visit_starts", "coded_after_discharge")
ATTRIBUTES = ("sex", "race", "insurance")  # the fairness subgroups read from codes


@dataclass(frozen=True)
class CodeKinds:
    """Code prefixes (the part of a code before the first ``//``) by what their codes are.

    ``vitals``: prefixes whose nested codes (``PREFIX//item[//unit]``) are vital signs and body metrics;
    a bare ``PREFIX`` code of the same prefix may belong to another kind (``ED_TRIAGE`` is the chief
    complaint, a visit). ``labs``: ``PREFIX//item[//unit]`` with values; ``lab_flags``:
    ``PREFIX//item//flag`` marking the lab value of the same item at the same time. ``conditions``,
    ``medications``, ``procedures``, ``visits``, ``notes``: the text's other sections. ``visit_starts``:
    prefixes whose codes mark the start of a visit (hospital admission, ICU admission, ED arrival), for
    the counts' hours since the latest visit start; they usually also belong to ``visits``.
    ``coded_after_discharge``: vocabularies coders assign after discharge, held back by the coding delay
    (:mod:`ehrpredict.events.cutoff`). ``sex``, ``race``, ``insurance``: the prefix whose codes'
    remainder is that attribute (``GENDER//F`` → ``F``), or None when the dataset does not record it.
    Each prefix has at most one kind besides ``vitals``, ``visit_starts`` and ``coded_after_discharge``.

    >>> CodeKinds(labs=("LAB//",), sex="")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: invalid CodeKinds: labs: expected code prefixes without '//', got 'LAB//'; sex: ...
    >>> CodeKinds(sex="")
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: invalid CodeKinds: sex: expected None or a code prefix, got ''
    >>> CodeKinds(conditions=("LAB",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ehrpredict.errors.ConfigError: invalid CodeKinds: conditions: expected each prefix under one kind, got 'LAB' ...
    """

    vitals: tuple[str, ...] = ("CHART", "ED_TRIAGE", "ED_VITAL", "OMR")
    labs: tuple[str, ...] = ("LAB",)
    lab_flags: tuple[str, ...] = ("LAB_FLAG",)
    conditions: tuple[str, ...] = (ICD10CM, ICD9CM, "DRG")
    # PHARMACY is left out: it repeats every MEDICATION order of the same drug.
    medications: tuple[str, ...] = ("MEDICATION", "EMAR", "ED_MEDRECON", "ED_PYXIS", "INPUT_START")
    procedures: tuple[str, ...] = (ICD10PCS, ICD9PROC, "HCPCS", "ICU_PROCEDURE_START")
    visits: tuple[str, ...] = ("HOSPITAL_ADMISSION", "HOSPITAL_DISCHARGE", "ICU_ADMISSION", "ICU_DISCHARGE",
                               "ED_ARRIVAL", "ED_DISPOSITION", "ED_TRIAGE")
    notes: tuple[str, ...] = ("NOTE",)
    visit_starts: tuple[str, ...] = ("HOSPITAL_ADMISSION", "ICU_ADMISSION", "ED_ARRIVAL")
    coded_after_discharge: tuple[str, ...] = (ICD9CM, ICD10CM, ICD9PROC, ICD10PCS, "DRG", "HCPCS")
    sex: str | None = "GENDER"
    race: str | None = "RACE"
    insurance: str | None = "INSURANCE"

    def __post_init__(self) -> None:
        problems = []
        for name in _PREFIX_LISTS:
            value = getattr(self, name)
            if not isinstance(value, tuple):
                problems.append(f"{name}: expected a tuple of code prefixes, got {type(value).__name__}")
                continue
            problems += [f"{name}: {p}" for p in (_prefix_problem(v, "code prefixes") for v in value) if p]
            repeated = sorted({p for p in value if isinstance(p, str) and value.count(p) > 1})
            if repeated:
                problems.append(f"{name}: expected each prefix once, got {', '.join(map(repr, repeated))} repeated")
        owner: dict[str, str] = {}
        for name in _EXCLUSIVE:
            value = getattr(self, name)
            for prefix in value if isinstance(value, tuple) else ():
                if isinstance(prefix, str) and owner.setdefault(prefix, name) != name:
                    problems.append(f"{name}: expected each prefix under one kind, got {prefix!r} also under "
                                    f"{owner[prefix]}")
        for name in ATTRIBUTES:
            value = getattr(self, name)
            problem = None if value is None else _prefix_problem(value, "None or a code prefix")
            if problem:
                problems.append(f"{name}: {problem}")
        if problems:
            raise ConfigError("invalid CodeKinds: " + "; ".join(problems))

    def to_json(self) -> dict[str, list[str] | str | None]:
        """The form ingestion writes under ``"ehrpredict": {"code_kinds": ...}`` in dataset.json."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def attributes(self) -> dict[str, str]:
        """Subgroup attribute → its code prefix with the separator (``{"sex": "GENDER//", ...}``), for
        the attributes the dataset records."""
        return {name: prefix + S.CODE_SEPARATOR for name in ATTRIBUTES
                if (prefix := getattr(self, name)) is not None}


def _prefix_problem(prefix: object, expected: str) -> str | None:
    if not isinstance(prefix, str) or not prefix.strip():
        return f"expected {expected}, got {prefix!r}"
    if S.CODE_SEPARATOR in prefix:
        return f"expected {expected} without {S.CODE_SEPARATOR!r}, got {prefix!r}"
    return None


DEFAULT_CODE_KINDS = CodeKinds()


def code_kinds(metadata: Mapping[str, object], source: str = "dataset.json") -> CodeKinds:
    """The code kinds a dataset's metadata (the content of ``metadata/dataset.json``, read from
    ``source``, which errors name) declares.

    Keys missing from ``ehrpredict.code_kinds`` keep their default; a dataset without it gets
    :data:`DEFAULT_CODE_KINDS`, with the ``ehrpredict.coded_after_discharge`` list of datasets ingested
    before code kinds were recorded.

    >>> code_kinds({}) == DEFAULT_CODE_KINDS
    True
    >>> code_kinds({"ehrpredict": {"code_kinds": {"lab": ["LOINC"]}}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ehrpredict.errors.DataError: expected ehrpredict.code_kinds in dataset.json with keys among ... unknown key 'lab'
    """
    ours = metadata.get("ehrpredict", {})
    if not isinstance(ours, Mapping):
        raise DataError(f"expected ehrpredict in {source} to be an object, got {type(ours).__name__}")
    declared = ours.get(CODE_KINDS_KEY)
    legacy = ours.get(LEGACY_CODED_AFTER_DISCHARGE_KEY)
    if declared is None:
        return DEFAULT_CODE_KINDS if legacy is None else _parse({"coded_after_discharge": legacy}, source)
    if not isinstance(declared, Mapping):
        raise DataError(f"expected ehrpredict.{CODE_KINDS_KEY} in {source} to be an object, "
                        f"got {type(declared).__name__}")
    kinds = _parse(declared, source)
    if legacy is not None and (not isinstance(legacy, list) or set(legacy) != set(kinds.coded_after_discharge)):
        raise DataError(f"expected ehrpredict.{LEGACY_CODED_AFTER_DISCHARGE_KEY} in {source} to agree with "
                        f"ehrpredict.{CODE_KINDS_KEY}.coded_after_discharge {list(kinds.coded_after_discharge)}, "
                        f"got {legacy!r}")
    return kinds


def _parse(declared: Mapping[str, object], source: str) -> CodeKinds:
    names = [f.name for f in fields(CodeKinds)]
    unknown = [key for key in declared if key not in names]
    if unknown:
        raise DataError(f"expected ehrpredict.{CODE_KINDS_KEY} in {source} with keys among {', '.join(names)}, "
                        f"got unknown key{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}")
    values = {k: _as_tuple(v) if k in _PREFIX_LISTS else v for k, v in declared.items()}
    try:
        return replace(DEFAULT_CODE_KINDS, **values)  # type: ignore[arg-type]  # __post_init__ checks the types
    except ConfigError as error:
        raise DataError(f"expected valid ehrpredict.{CODE_KINDS_KEY} in {source}, got {error}") from error


def _as_tuple(value: object) -> object:
    """JSON lists become tuples; anything else is left for :class:`CodeKinds` to reject by name."""
    return tuple(value) if isinstance(value, list) else value
