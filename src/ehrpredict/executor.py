"""The per-shard map behind ingestion, labeling, featurizing and embedding.

Every stage that works shard by shard hands its per-shard function to an :class:`Executor` instead of
looping itself, so where the work runs is one decision made by the caller: here, in this process, one
shard at a time (:class:`LocalExecutor`, the default: memory follows one shard); later on a Ray
cluster, by an implementation in ``ehrpredict.distributed`` that the stages never import.

A per-shard function must be a module-level function (or a ``functools.partial`` of one) over
picklable arguments: a distributed executor ships it to another process. Results come back in the
order of the items, so a stage's output does not depend on which shard finished first.

    >>> list(LocalExecutor().map(abs, [-2, 1, -3]))
    [2, 1, 3]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Apply ``fn`` to every item; results in the items' order, as they become available."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]: ...


class LocalExecutor:
    """In this process, one item at a time, lazily: the caller holds one result at a time if it wants."""

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


def local() -> Executor:
    """The default executor."""
    return LocalExecutor()
