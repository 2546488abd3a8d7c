"""ICD code formatting. MIMIC stores ICD codes without dots (``4280``, ``I509``); ehrpredict codes carry
their vocabulary and the conventional dotted form (``ICD9CM//428.0``, ``ICD10CM//I50.9``) so that the
3-character category is simply the part before the dot.
"""

from __future__ import annotations

import polars as pl

ICD9CM = "ICD9CM"
ICD10CM = "ICD10CM"
ICD9PROC = "ICD9PROC"
ICD10PCS = "ICD10PCS"


def _dot_after(code: pl.Expr, n: int) -> pl.Expr:
    return (
        pl.when(code.str.len_chars() > n)
        .then(pl.concat_str([code.str.slice(0, n), pl.lit("."), code.str.slice(n)]))
        .otherwise(code)
    )


def icd_code_expr(icd_code: pl.Expr, icd_version: pl.Expr, kind: str) -> pl.Expr:
    """A Polars expression building ``VOCAB//dotted-code`` from MIMIC's undotted code and version.

    ``kind`` is ``"diagnosis"`` or ``"procedure"``. ICD-9 E-codes take the dot after 4 characters
    (``E8497`` → ``E849.7``); ICD-10-PCS codes have no dot.
    """
    raw = icd_code.str.strip_chars().str.to_uppercase()
    v9 = icd_version == "9"
    if kind == "diagnosis":
        dotted9 = pl.when(raw.str.starts_with("E")).then(_dot_after(raw, 4)).otherwise(_dot_after(raw, 3))
        return (
            pl.when(v9)
            .then(pl.concat_str([pl.lit(ICD9CM + "//"), dotted9]))
            .otherwise(pl.concat_str([pl.lit(ICD10CM + "//"), _dot_after(raw, 3)]))
        )
    if kind == "procedure":
        return (
            pl.when(v9)
            .then(pl.concat_str([pl.lit(ICD9PROC + "//"), _dot_after(raw, 2)]))
            .otherwise(pl.concat_str([pl.lit(ICD10PCS + "//"), raw]))
        )
    raise ValueError(f"expected kind 'diagnosis' or 'procedure', got {kind!r}")


def dotted(vocab: str, raw: str) -> str:
    """Python twin of :func:`icd_code_expr` for one code: ``dotted("ICD9CM", "E8497") == "E849.7"``."""
    raw = raw.strip().upper()
    n = {ICD9CM: 4 if raw.startswith("E") else 3, ICD10CM: 3, ICD9PROC: 2}.get(vocab)
    if n is None or len(raw) <= n:
        return raw
    return f"{raw[:n]}.{raw[n:]}"


def parent(vocab: str, code: str) -> str | None:
    """The immediate parent in the ICD hierarchy: ``I50.91`` → ``I50.9`` → ``I50`` → None."""
    if vocab == ICD10PCS or "." not in code:
        return None
    head, tail = code.split(".", 1)
    return head if len(tail) <= 1 else f"{head}.{tail[:-1]}"
