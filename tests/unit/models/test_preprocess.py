"""log1p: sparse stays sparse, float32 stays float32, values below -0.99 are clipped, and the
transformer gives what the function gives."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ehrpredict.models.preprocess import Log1pTransformer, linear_preprocessing, log1p


def test_log1p_by_hand() -> None:
    X = np.array([[0.0, 1.0, np.e - 1, -5.0]])
    assert np.allclose(log1p(X), [[0.0, np.log(2.0), 1.0, np.log1p(-0.99)]])


def test_sparse_counts_stay_sparse_and_float32() -> None:
    X = sp.csr_matrix(np.array([[0, 3, 0], [1, 0, 0]], dtype=np.float32))
    out = Log1pTransformer().fit_transform(X)
    assert sp.issparse(out) and out.dtype == np.float32 and out.nnz == 2
    assert np.array_equal(out.toarray(), log1p(X).toarray())
    assert X[0, 1] == 3  # the input is not modified


def test_linear_preprocessing_steps() -> None:
    assert [name for name, _ in linear_preprocessing()] == ["log1p", "scale", "impute"]
    assert [name for name, _ in linear_preprocessing(log1p=False)] == ["scale", "impute"]
