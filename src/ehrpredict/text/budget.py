"""The token budget: which lines of a timeline to cut, oldest first, for its text to fit.

Two ways to the same cut: :func:`drop_by_length` for the default character estimate
(:func:`approx_tokens`), every label row at once in polars; :func:`cut_by_bisection` for a caller's
tokenizer, one label row at a time. Demographics are never cut.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable

import polars as pl

from ehrpredict.events.cutoff import ROW_INDEX
from ehrpredict.text.sections import _LINE, _T, DEMOGRAPHICS, Section, render


def approx_tokens(text: str) -> int:
    """The default token count: ``ceil(len(text) / 4)``, about what BPE/WordPiece encoders give for
    English clinical text. Cheap and deterministic; pass the encoder's tokenizer for exact budgets.

    >>> approx_tokens("12345")
    2
    """
    return math.ceil(len(text) / 4)


_SEC = "_section"  # index of a line's section
_J = "_j"  # index of a line in its section (newest first)
_DROP = "_dropped"
_Candidate = tuple[str, list[str], list[int]]  # one label row's section before the budget: title, lines, times


def drop_by_length(lines: pl.LazyFrame, demographics: pl.LazyFrame, titles: list[str],
                   max_chars: int) -> pl.LazyFrame:
    """``lines`` with ``_dropped``: what the budget cuts under :func:`approx_tokens`, all label rows at once.

    Lines go oldest first (ties: earlier section, later line), so every section loses its tail. A line
    costs its length plus a newline; a section's first line (dropped last) also its ``## title`` line
    and the blank line before it. A line is dropped while the text without the ones before it is too long.
    """
    headers = pl.LazyFrame({_SEC: range(len(titles)), "_header": [5 + len(t) for t in titles]},
                           schema={_SEC: pl.Int32, "_header": pl.Int64})
    cost = pl.col(_LINE).str.len_chars().cast(pl.Int64) + 1 + pl.when(pl.col(_J) == 0).then(pl.col("_header"))
    demo = demographics.group_by(ROW_INDEX).agg(
        (pl.col(_LINE).str.len_chars().cast(pl.Int64).sum() + pl.len() + 3 + len(DEMOGRAPHICS)).alias("_demo"))
    ordered = (lines.join(headers, on=_SEC).join(demo, on=ROW_INDEX, how="left")
               .with_columns(cost.fill_null(pl.col(_LINE).str.len_chars().cast(pl.Int64) + 1).alias("_cost"))
               .sort([ROW_INDEX, _T, _SEC, _J], descending=[False, False, False, True]))
    total = pl.col("_demo") + pl.col("_cost").sum().over(ROW_INDEX)
    before = pl.col("_cost").cum_sum().over(ROW_INDEX) - pl.col("_cost")
    return ordered.with_columns((total - before > max_chars).alias(_DROP)).drop("_header", "_demo", "_cost")


def _drop_order(candidates: list[_Candidate]) -> list[int]:
    """Section index of each line in the order the budget drops them (as :func:`drop_by_length`)."""
    order = sorted((t, i, -j) for i, (_, _, times) in enumerate(candidates) for j, t in enumerate(times))
    return [i for _, i, _ in order]


def cut_by_bisection(demographics: Section, candidates: list[_Candidate], count_tokens: Callable[[str], int],
                     max_tokens: int, chars_per_token: float) -> Counter[int]:
    """The fewest lines to drop, in drop order, for the text to fit (any tokenizer whose count falls as
    lines are dropped). The search starts where the budget in characters (at ``chars_per_token``, the
    dataset's ratio) says it should, then gallops and bisects on the shortened texts: two or three
    tokenizer calls per text, none on the (long) full text, instead of a bisection's seven."""
    drop = _drop_order(candidates)
    lines = sorted(((t, i, -j, len(line) + 1) for i, (_, section, times) in enumerate(candidates)
                    for j, (line, t) in enumerate(zip(section, times, strict=True))))
    excess = len(render(kept(demographics, candidates, Counter()))) - max_tokens * chars_per_token
    hint, removed = 0, 0
    while hint < len(lines) and removed < excess:
        removed += lines[hint][3]
        hint += 1

    def fits(k: int) -> bool:
        return count_tokens(render(kept(demographics, candidates, Counter(drop[:k])))) <= max_tokens

    return Counter(drop[:_smallest_fitting(fits, len(drop), hint)])


def _smallest_fitting(fits: Callable[[int], bool], n: int, hint: int) -> int:
    """Smallest k in [0, n] with ``fits(k)``, for ``fits`` false below some k and true from it on;
    ``n`` (dropping everything) is the fallback. Gallops from ``hint``, then bisects."""
    k = min(max(hint, 0), n)
    if fits(k):
        low, high, step = k - 1, k, 1  # the answer lies in (low, high]
        while low >= 0 and fits(low):
            high, low, step = low, max(low - 2 * step, -1), 2 * step
    else:
        low, high, step = k, min(k + 1, n), 1
        while high < n and not fits(high):
            low, high, step = high, min(high + 2 * step, n), 2 * step
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle
    return high


def _chars_per_token(texts: list[str], count_tokens: Callable[[str], int]) -> float:
    """Characters per token of a tokenizer on this kind of text (a sample of whole texts)."""
    tokens = sum(count_tokens(text) for text in texts)
    return sum(len(text) for text in texts) / tokens if tokens else 4.0


def kept(demographics: Section, candidates: list[_Candidate], cut: Counter[int]) -> tuple[Section, ...]:
    sections = [Section(title, tuple(lines[:len(lines) - cut[i]])) for i, (title, lines, _) in enumerate(candidates)]
    return (demographics, *(s for s in sections if s.lines))


def drop_by_tokenizer(lines: pl.DataFrame, demographics: pl.DataFrame, titles: list[str],
                      count_tokens: Callable[[str], int], max_tokens: int) -> pl.DataFrame:
    """``lines`` with ``_dropped`` for a caller's tokenizer: each label row bisected in Python."""
    demo_by_row = dict(demographics.group_by(ROW_INDEX, maintain_order=True).agg(_LINE).iter_rows())
    grouped = lines.sort(ROW_INDEX, _SEC, _J).with_columns(pl.col(_T).dt.epoch("us")).group_by(
        ROW_INDEX, _SEC, maintain_order=True).agg(_LINE, _T)
    candidates: dict[int, list[_Candidate]] = {}
    for row, section, section_lines, times in grouped.iter_rows():
        candidates.setdefault(row, [(title, [], []) for title in titles])[section] = (
            titles[section], section_lines, times)
    cuts: list[tuple[int, int, int]] = []
    sample = [render(kept(Section(DEMOGRAPHICS, tuple(demo_by_row[row])), row_candidates, Counter()))
              for row, row_candidates in itertools.islice(candidates.items(), 16)]
    ratio = _chars_per_token(sample, count_tokens)
    for row, row_candidates in candidates.items():
        cut = cut_by_bisection(Section(DEMOGRAPHICS, tuple(demo_by_row[row])), row_candidates,
                               count_tokens, max_tokens, ratio)
        cuts.extend((row, section, n) for section, n in cut.items())
    cut_frame = pl.DataFrame(cuts, schema={ROW_INDEX: pl.Int64, _SEC: pl.Int32, "_cut": pl.Int64}, orient="row")
    n_lines = pl.len().over(ROW_INDEX, _SEC)
    return lines.join(cut_frame, on=[ROW_INDEX, _SEC], how="left").with_columns(
        (pl.col(_J) >= n_lines - pl.col("_cut").fill_null(0)).alias(_DROP)).drop("_cut")
