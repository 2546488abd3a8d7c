"""Which lab and vital items a timeline shows, learned on the label rows a serializer is fitted on.

MIMIC-IV has over a thousand chart items (mostly device settings, charted now and then) and hundreds
of lab items, so a timeline shows at most ``max_items`` items per section: the most frequent ones the
patient has. How frequent an item is must come from the train split only, as the counts vocabulary
(:class:`~ehrpredict.features.counts.CountsFeaturizer`) does: an item's frequency is its number of
values in the fitted label rows' histories (events at or before the prediction time; an event in the
history of several rows of one subject counts once). Frequency by values, not by how many rows have
the item, keeps hourly vital signs ahead of alarm limits and nursing scores that every ICU stay has
once. Whether a lab item carries flags (so that its unflagged values read ``normal``) is learned the
same way.

    >>> selection = ItemSelection(vitals=(("CHART//220045//bpm", 40),), labs=(), flagged_labs=(), n_rows=50)
    >>> selection.ranks().rows()
    [('CHART//220045//bpm', 0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ehrpredict import schema as S
from ehrpredict.text.sections import _CID, _ITEM, _KIND, _N, _RANK, FLAG, LAB, VITAL

ItemCount = tuple[str, int]  # (code, its values in the fitted rows' histories)


@dataclass(frozen=True)
class ItemSelection:
    """The fitted choice: per section, the candidate items most frequent first (ties by code) with
    their numbers of values; ``flagged_labs``: lab item ids (``50912``) flagged in some fitted row's
    history; ``n_rows``: the label rows it was fitted on."""

    vitals: tuple[ItemCount, ...]
    labs: tuple[ItemCount, ...]
    flagged_labs: tuple[str, ...]
    n_rows: int

    def ranks(self) -> pl.DataFrame:
        """``code`` → ``_rank``: each candidate's position in its section's list (0: most frequent)."""
        codes = [code for code, _ in self.vitals] + [code for code, _ in self.labs]
        ranks = list(range(len(self.vitals))) + list(range(len(self.labs)))
        return pl.DataFrame({S.CODE: codes, _RANK: ranks}, schema={S.CODE: pl.String, _RANK: pl.Int64})

    def to_json(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "vitals": dict(self.vitals), "labs": dict(self.labs),
                "flagged_labs": list(self.flagged_labs)}


def count_items(known: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Per vital, lab and lab-flag code of one shard's ``known`` events (valued events, each paired
    with one row per subject): its kind, item id and number of events."""
    counts = known.group_by(_CID, _KIND).agg(pl.len().cast(pl.Int64).alias(_N))
    return counts.join(table.select(_CID, S.CODE, _ITEM), on=_CID).select(S.CODE, _KIND, _ITEM, _N)


def select_items(counts: Sequence[pl.DataFrame], n_rows: int, candidates: int) -> ItemSelection:
    """The ``candidates`` most frequent vital and lab items over the shards' :func:`count_items`
    (a subject's events live in one shard, so the counts add up)."""
    schema = {S.CODE: pl.String, _KIND: pl.Int8, _ITEM: pl.String, _N: pl.Int64}
    frame = pl.concat([pl.DataFrame(schema=schema), *counts], how="vertical_relaxed")
    totals = frame.group_by(S.CODE, _KIND, _ITEM).agg(pl.col(_N).sum()).sort([_N, S.CODE], descending=[True, False])

    def top(kind: int) -> tuple[ItemCount, ...]:
        rows = totals.filter(pl.col(_KIND) == kind).head(candidates).select(S.CODE, _N).rows()
        return tuple((str(code), int(n)) for code, n in rows)

    flagged = totals.filter(pl.col(_KIND) == FLAG).get_column(_ITEM).drop_nulls().unique().sort()
    return ItemSelection(top(VITAL), top(LAB), tuple(flagged.to_list()), n_rows)
