from hypothesis import given, settings
from hypothesis import strategies as st

from ehrpredict.ingest.shards import ShardLayout, assign_splits, split_of


def test_split_fractions_are_close_to_80_10_10() -> None:
    splits = assign_splits(list(range(20_000)), seed=7)
    share = dict(splits.group_by("split").len().iter_rows())
    assert abs(share["train"] / 20_000 - 0.8) < 0.02
    assert abs(share["tuning"] / 20_000 - 0.1) < 0.02
    assert abs(share["held_out"] / 20_000 - 0.1) < 0.02


@given(st.sets(st.integers(1, 10**9), min_size=1, max_size=200), st.sets(st.integers(1, 10**9), max_size=50))
def test_a_subjects_split_depends_only_on_its_id_and_the_seed(ids: set[int], more: set[int]) -> None:
    before = dict(assign_splits(sorted(ids), seed=1).iter_rows())
    after = dict(assign_splits(sorted(ids | more), seed=1).iter_rows())
    assert all(after[i] == before[i] for i in ids)  # adding subjects never moves existing ones


def test_seed_changes_the_assignment() -> None:
    ids = range(1000)
    assert [split_of(i, 0) for i in ids] != [split_of(i, 1) for i in ids]


@settings(max_examples=50)
@given(st.sets(st.integers(1, 10**6), min_size=1, max_size=300), st.integers(1, 50))
def test_layout_puts_each_subject_in_one_shard_of_its_split(ids: set[int], per_shard: int) -> None:
    splits = assign_splits(sorted(ids), seed=3)
    layout = ShardLayout.plan(splits, per_shard)
    assignment = layout.assignment.join(splits, on="subject_id")
    assert assignment.height == len(ids)
    assert assignment.get_column("subject_id").n_unique() == len(ids)
    for shard, split in assignment.select("_shard", "split").unique().iter_rows():
        assert layout.names[shard].split("/")[0] == split
    sizes = assignment.group_by("_shard").len().get_column("len")
    assert sizes.max() <= per_shard
