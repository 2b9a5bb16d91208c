"""Causal lagged ridge regression: the one linear-decoder implementation of rpnt.

Used by the Wiener-filter baseline (counts -> velocity) and by the simulator's noise
ceiling (true rates -> velocity). Closed form: features are standardised on the training
rows, the intercept is the training mean of the targets (never penalised), and the ridge
solutions for all candidate penalties come from one eigendecomposition of X'X, so
choosing the penalty on validation rows costs one small matrix product per candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rpnt.scoring.metrics import r2_per_axis

DEFAULT_LAMBDAS: tuple[float, ...] = tuple(float(v) for v in np.logspace(-1, 7, 17))


def lagged_design(x: np.ndarray, lags: int, *, bias: bool = False) -> np.ndarray:
    """Causal lagged copies of ``x``.

    ``x``: (n_time, n_feat). Returns (n_time, n_feat * (lags + 1) [+ 1]): column block
    ``k`` (k = 0..lags) holds ``x[t - k]`` (zero before the start), so row t only sees
    bins t-lags..t. With ``bias`` a last column of ones is appended.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"lagged_design: x must be (n_time, n_feat), got shape {x.shape}")
    if lags < 0:
        raise ValueError("lagged_design: lags must be >= 0")
    n, f = x.shape
    dtype = np.result_type(x.dtype, np.float32)
    out = np.zeros((n, f * (lags + 1) + int(bias)), dtype=dtype)
    for k in range(lags + 1):  # lags+1 block copies; each is one vectorised slice
        out[k:, k * f:(k + 1) * f] = x[: n - k] if k < n else x[:0]
    if bias:
        out[:, -1] = 1.0
    return out


def ridge_path(X: np.ndarray, Y: np.ndarray, lambdas: Sequence[float]) -> np.ndarray:
    """Ridge weights for each penalty: (n_lambda, n_feat, n_out).

    Solves min ||Y - X W||² + lam ||W||² (no intercept: centre X and Y first) with one
    eigendecomposition of X'X: W(lam) = V diag(1 / (s + lam)) V' X'Y.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    s, V = np.linalg.eigh(X.T @ X)
    s = np.clip(s, 0.0, None)
    B = V.T @ (X.T @ Y)  # (n_feat, n_out)
    lam = np.asarray(lambdas, dtype=np.float64)
    return np.einsum("fk,lk,ko->lfo", V, 1.0 / (s[None, :] + lam[:, None]), B)


@dataclass
class LaggedRidge:
    """A fitted causal lagged ridge decoder (features (n_time, n_feat) -> (n_time, n_out))."""

    lags: int
    lam: float
    mean: np.ndarray  #: (n_feat * (lags + 1),) feature means on the training rows
    scale: np.ndarray  #: (n_feat * (lags + 1),) feature sds (1 where constant)
    weight: np.ndarray  #: (n_feat * (lags + 1), n_out), on standardised features
    intercept: np.ndarray  #: (n_out,)
    valid_r2: dict[float, float] | None = None  #: mean validation R² per candidate penalty

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n_time, n_out) predictions for a whole contiguous sequence ``x``."""
        X = lagged_design(x, self.lags)
        return ((X - self.mean) / self.scale) @ self.weight + self.intercept


def fit_lagged_ridge(x: np.ndarray, y: np.ndarray, train: np.ndarray,
                     valid: np.ndarray | None = None, *, lags: int = 10,
                     lambdas: Sequence[float] = DEFAULT_LAMBDAS) -> LaggedRidge:
    """Fit on rows ``train`` of the lagged design of ``x``; pick the penalty on ``valid``.

    ``x``: (n_time, n_feat) contiguous sequence (lags may reach into non-training bins,
    which is causal and what a decoder running online sees); ``y``: (n_time, n_out);
    ``train``/``valid``: (n_time,) bool masks (rows with non-finite ``y`` are dropped).
    Without validation rows (or a single penalty) the first/only penalty is used.
    Penalties act on standardised features summed over training rows.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    finite = np.isfinite(y).all(1)
    train = np.asarray(train, bool) & finite
    if train.sum() < 2:
        raise ValueError("fit_lagged_ridge: fewer than 2 training rows with finite targets")
    X = lagged_design(x, lags)
    Xt = X[train].astype(np.float64)
    mean = Xt.mean(0)
    scale = Xt.std(0)
    scale[scale < 1e-12] = 1.0
    Xt = (Xt - mean) / scale
    ymean = y[train].mean(0)
    lambdas = [float(v) for v in lambdas]
    path = ridge_path(Xt, y[train] - ymean, lambdas)
    best, scores = 0, None
    if valid is not None and len(lambdas) > 1:
        valid = np.asarray(valid, bool) & finite
        if valid.sum() >= 2:
            Xv = (X[valid] - mean) / scale
            scores = {}
            for i, lam in enumerate(lambdas):
                r2 = r2_per_axis(y[valid], Xv @ path[i] + ymean)
                scores[lam] = float(np.nanmean(r2))
            best = int(np.nanargmax(list(scores.values())))
    return LaggedRidge(lags=lags, lam=lambdas[best], mean=mean, scale=scale,
                       weight=path[best], intercept=ymean, valid_r2=scores)
