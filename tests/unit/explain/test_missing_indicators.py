"""A linear head's missing-value indicators are folded into the feature they flag: contributions keep
one column per feature and still sum to the raw score."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ehrpredict.explain.contributions import _linear_contributions
from ehrpredict.models.heads import make_head


def test_indicator_contributions_are_folded_into_their_feature() -> None:
    rng = np.random.default_rng(0)
    X = (sp.random(600, 40, density=0.2, random_state=0, format="csr", dtype=np.float32) * 5).tolil()
    X[::7, 3] = np.nan  # e.g. age without a birth event
    X[::5, 39] = np.nan
    X = X.tocsr()
    y = (rng.uniform(size=600) < 0.4).astype(int)
    head = make_head("lr", seed=0).fit(X[:400], y[:400], X_val=X[400:], y_val=y[400:])
    assert head["head"].model_.coef_.shape[1] == 42  # two indicator columns behind the 40 features
    base, values = _linear_contributions(head, X)
    assert values.shape == (600, 40)
    score = head[:-1].transform(X).astype(np.float64) @ head["head"].model_.coef_.ravel().astype(np.float64)
    np.testing.assert_allclose(base + np.asarray(values.sum(axis=1)).ravel(),
                               score + float(head["head"].model_.intercept_[0]), rtol=0, atol=1e-6)
    # a row whose feature 3 is missing: its contribution is the indicator's coefficient (imputed value 0)
    coef = head["head"].model_.coef_.ravel()
    assert abs(values[0, 3] - coef[40]) < 1e-9
