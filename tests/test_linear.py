"""rpnt.linear: causal lagged design and closed-form ridge with penalty selection."""

import numpy as np
import pytest

from rpnt.linear import fit_lagged_ridge, lagged_design, ridge_path


def test_lagged_design_matches_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 3))
    lags = 4
    X = lagged_design(x, lags, bias=True)
    assert X.shape == (30, 3 * 5 + 1)
    for t in range(30):
        for k in range(lags + 1):
            ref = x[t - k] if t - k >= 0 else np.zeros(3)
            np.testing.assert_array_equal(X[t, 3 * k:3 * (k + 1)], ref)
    assert (X[:, -1] == 1).all()
    assert lagged_design(x, 0).shape == (30, 3)


def test_lagged_design_is_causal():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    x2 = x.copy()
    x2[30:] += 5.0  # change the future of t = 29
    np.testing.assert_array_equal(lagged_design(x, 6)[:30], lagged_design(x2, 6)[:30])
    assert not np.array_equal(lagged_design(x, 6)[30], lagged_design(x2, 6)[30])


def test_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 5)) * np.array([1, 2, 3, 0.5, 1])
    y = np.column_stack([x[:, 0] - 2 * np.roll(x[:, 1], 2), x[:, 3]]) + rng.normal(0, .3, (400, 2))
    train = np.arange(400) < 300
    for lam in (0.1, 10.0, 1000.0):
        m = fit_lagged_ridge(x, y, train, lags=3, lambdas=[lam])
        X = lagged_design(x, 3)
        Xs = (X[train] - X[train].mean(0)) / X[train].std(0)
        ref = Ridge(alpha=lam, fit_intercept=True).fit(Xs, y[train])
        np.testing.assert_allclose(m.weight, ref.coef_.T, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(m.intercept, ref.intercept_, rtol=1e-6, atol=1e-9)
        Xall = (X - X[train].mean(0)) / X[train].std(0)
        np.testing.assert_allclose(m.predict(x), ref.predict(Xall), rtol=1e-6, atol=1e-8)


def test_ridge_path_equals_direct_solve():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(100, 8)), rng.normal(size=(100, 2))
    lams = [0.5, 5.0]
    path = ridge_path(X, Y, lams)
    for i, lam in enumerate(lams):
        direct = np.linalg.solve(X.T @ X + lam * np.eye(8), X.T @ Y)
        np.testing.assert_allclose(path[i], direct, rtol=1e-8, atol=1e-10)


def test_recovers_lagged_filter_and_selects_penalty():
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.normal(size=(n, 4))
    y = (2.0 * np.concatenate([[0, 0], x[:-2, 1]]))[:, None] + rng.normal(0, 0.2, (n, 1))
    idx = np.arange(n)
    m = fit_lagged_ridge(x, y, idx < 2000, (idx >= 2000) & (idx < 2500), lags=4,
                         lambdas=[1e-2, 1.0, 1e6])
    assert m.lam != 1e6  # an absurd penalty must lose on validation
    assert m.valid_r2[m.lam] == max(m.valid_r2.values())
    w = np.abs(m.weight[:, 0]).reshape(5, 4)  # (lag, feature)
    assert np.unravel_index(w.argmax(), w.shape) == (2, 1)
    pred = m.predict(x)[2500:]
    r2 = 1 - ((pred - y[2500:]) ** 2).sum() / ((y[2500:] - y[2500:].mean()) ** 2).sum()
    assert r2 > 0.95
    # pure noise features: the largest penalty should win
    m2 = fit_lagged_ridge(rng.normal(size=(n, 20)), rng.normal(size=(n, 1)), idx < 300,
                          (idx >= 2000), lags=2, lambdas=[1e-3, 1e7])
    assert m2.lam == 1e7


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        lagged_design(np.zeros(10), 2)
    with pytest.raises(ValueError):
        fit_lagged_ridge(np.zeros((10, 2)), np.full((10, 1), np.nan), np.ones(10, bool))
