"""Pieces of `ehrpredict benchmark` checkable without training a model."""

from ehrpredict.evaluation import paired_delta_auroc
from ehrpredict.experiments.benchmark import _holm_adjust, _TaskOutcome
from ehrpredict.experiments.results import Comparison

# 10 positives, 10 negatives, one row each: model a ranks every positive first, model b every one last,
# so ΔAUROC is 1 in every resample with both classes (and all 199 have both: 2 · 0.5^20 ≈ 2e-6 miss one).
Y = [1] * 10 + [0] * 10
A = [0.9] * 10 + [0.1] * 10
B = [0.1] * 10 + [0.9] * 10
GROUPS = list(range(20))


def test_holm_adjusts_the_bootstrap_p_values_of_every_comparison() -> None:
    outcomes = []
    for task in ("one", "two"):
        paired = paired_delta_auroc(Y, A, B, GROUPS, n_boot=199, seed=0)
        outcomes.append(_TaskOutcome(task, comparisons=[Comparison(
            a="a", b="b", delta_auroc=paired.delta, ci=(paired.ci_low, paired.ci_high), p_value=paired.p_value,
            n_boot=paired.n_boot)]))
    _holm_adjust(outcomes)
    comparisons = [c for outcome in outcomes for c in outcome.result().comparisons]
    # no resample crosses zero: p = 2 / (199 + 1) = 0.01, never 0; Holm over 2 tests: 2 · 0.01 for both
    assert [c.p_value for c in comparisons] == [0.01, 0.01]
    assert [c.p_value_holm for c in comparisons] == [0.02, 0.02]
