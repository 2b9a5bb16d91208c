"""Coefficient of determination (R²) per output, then averaged, as the peers report it,
or weighted by each output's variance, as FALCON scores a session."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Default names of the behaviour axes (velocity x, y).
AXIS_NAMES: tuple[str, ...] = ("vx", "vy")
#: How a record's covariates are summarised: ``mean`` (every key of the peers' tables)
#: and ``variance_weighted`` (FALCON's metric) -> the key in a record's ``r2``.
WEIGHTINGS = ("mean", "variance_weighted")


def r2_per_axis(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """R² of each column: ``1 - SS_res / SS_tot`` with SS_tot around the column mean.

    ``y_true``, ``y_pred``: (n_bins, n_axis) (or (n_bins,) for one axis). Returns
    (n_axis,) float64. Equals ``sklearn.metrics.r2_score(..., multioutput="raw_values")``
    except for a constant target column, where R² is undefined: this returns NaN for that
    column (sklearn would report 1.0 or 0.0 by convention), so that a broken split (e.g.
    a test set without movement) can never pass as a perfect or neutral score.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"R²: shapes differ or are not (n_bins, n_axis): "
                         f"{y_true.shape} vs {y_pred.shape}")
    if y_true.shape[0] < 2:
        raise ValueError(f"R² needs at least 2 bins, got {y_true.shape[0]}")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("R²: inputs contain NaN or inf; select finite bins first")
    ss_res, ss_tot, ok = _sums(y_true, y_pred)
    out = np.full(y_true.shape[1], np.nan)
    out[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return out


def _sums(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: residual and total sums of squares, and whether the target varies."""
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0)
    # "constant" relative to the signal's scale, so float round-off counts as constant
    scale = np.maximum(np.abs(y_true).max(0), 1e-300)
    ok = ss_tot > (1e-12 * scale) ** 2 * y_true.shape[0]
    return ss_res, ss_tot, ok


def r2_variance_weighted(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """FALCON's per-session score: the columns' R² averaged with weights ``SS_tot`` (each
    column's variance), i.e. ``1 - sum(SS_res) / sum(SS_tot)`` over the columns whose
    target varies; ``sklearn.metrics.r2_score(..., multioutput="variance_weighted")``.
    NaN when no column varies. Shapes and checks as :func:`r2_per_axis`.
    """
    r2_per_axis(y_true, y_pred)  # the input checks
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    ss_res, ss_tot, ok = _sums(y_true, y_pred)
    if not ok.any():
        return float("nan")
    return float(1.0 - ss_res[ok].sum() / ss_tot[ok].sum())


def r2_report(
    y_true: np.ndarray, y_pred: np.ndarray, axis_names: Sequence[str] = AXIS_NAMES,
    variance_weighted: bool = False,
) -> dict[str, float]:
    """``{"vx": r2, "vy": r2, "mean": average}`` for (n_bins, n_axis) arrays: one key per
    covariate (``axis_names``, else ``v0``, ``v1``, ...), then ``mean``, the plain
    average of the per-axis R² (NaN if any axis is undefined), and with
    ``variance_weighted`` FALCON's score under that key (:func:`r2_variance_weighted`).
    """
    per = r2_per_axis(y_true, y_pred)
    if len(axis_names) != per.size:
        axis_names = [f"v{i}" for i in range(per.size)]
    clash = set(axis_names) & set(WEIGHTINGS)
    if clash:
        raise ValueError(f"R²: covariate names {sorted(clash)} clash with the summary keys")
    rep = {name: float(v) for name, v in zip(axis_names, per, strict=True)}
    rep["mean"] = float(per.mean())
    if variance_weighted:
        rep["variance_weighted"] = r2_variance_weighted(y_true, y_pred)
    return rep
