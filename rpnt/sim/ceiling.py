"""Noise ceiling of a simulated session: decode velocity from the *true* firing rates.

The ceiling is the R² a causal lagged ridge decoder reaches when it is given the rates
that generated the spikes (binned exactly like the session) instead of the spike counts:
fitted on training bins, penalty chosen on validation bins, scored on the test trials'
evaluation bins. Count-based decoders should sit below it; the gap is the Poisson (and
refractory) noise of spiking.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.data.session import SessionData
from rpnt.errors import RpntError
from rpnt.linear import fit_lagged_ridge
from rpnt.scoring.metrics import r2_report
from rpnt.scoring.stitch import scored_mask, variance_weighted

CEILING_LAGS = 10  #: bins of rate history (200 ms at 20 ms bins; covers M1/PMd leads)


def load_truth(path: str | Path, keys: Sequence[str] | None = None
               ) -> dict[str, np.ndarray]:
    """The ground-truth arrays of one session (plain npz, no pickles): all of them, or
    only ``keys`` (those the file has; the fine-grid rates are most of its bytes)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files if keys is None or k in keys}
    except (OSError, ValueError) as exc:
        raise RpntError(f"{path}: not a simulator ground-truth .npz ({exc}); "
                        "pass derivatives/ground-truth/<session>.npz") from None
    for key in ("time", "rates", "dt", "session_id"):
        if key not in out and (keys is None or key in keys):
            raise RpntError(f"{path}: ground-truth file lacks array {key!r}; regenerate it "
                            "with rpnt simulate")
    return out


def bin_rates(time: np.ndarray, rates: np.ndarray, dt: float, bin_start: np.ndarray,
              bin_size: float) -> np.ndarray:
    """Mean rate over each bin [b, b + bin_size) of piecewise-constant rates.

    ``time``: (n,) regular grid starts (step ``dt``); ``rates``: (n, u), constant on
    [t, t + dt). Exact: the cumulative integral is piecewise linear, so interpolating it
    at the bin edges gives the integral over any bin. Returns (n_bin, u) float64.
    """
    rates = np.asarray(rates, dtype=np.float64)
    cum = np.concatenate([np.zeros((1, rates.shape[1])), np.cumsum(rates * dt, axis=0)])
    # position of each bin edge on the fine grid, clipped to the simulated span
    pos = np.clip((np.concatenate([bin_start, [bin_start[-1] + bin_size]]) - time[0]) / dt,
                  0, len(time))
    i = np.minimum(np.floor(pos).astype(np.int64), len(time) - 1)
    frac = (pos - i)[:, None]
    c = cum[i] + frac * (cum[i + 1] - cum[i])
    return np.diff(c, axis=0) / bin_size


def _truth_columns(session: SessionData, n_truth: int, path: Path) -> np.ndarray:
    """Truth columns matching the session's units (unit ids are NWB unit indices)."""
    try:
        ids = np.array([int(u) for u in session.unit_id])
    except ValueError:
        ids = None
    if ids is not None and ids.size and ids.min() >= 0 and ids.max() < n_truth:
        return ids
    if session.n_unit == n_truth:
        return np.arange(n_truth)
    raise RpntError(f"{path}: cannot match the session's {session.n_unit} units to the "
                    f"{n_truth} ground-truth units; use the truth file of {session.session}")


def noise_ceiling(session: SessionData, truth_npz_path: str | Path, *,
                  lags: int = CEILING_LAGS) -> dict[str, Any]:
    """R² (per covariate, mean) of lagged ridge on the true rates; also n_bins, n_trials, lambda.

    Train on ``split == train`` bins, choose the penalty on ``split == valid`` bins,
    score on the bins every decoder is scored on (:func:`rpnt.scoring.stitch.scored_mask`:
    test trials, ``eval_mask``, finite velocity).
    """
    path = Path(truth_npz_path)
    truth = load_truth(path)
    if str(truth["session_id"]) != session.session:
        raise RpntError(f"{path}: ground truth of {truth['session_id']}, but the store holds "
                        f"{session.session}; pass the matching truth file")
    cols = _truth_columns(session, truth["rates"].shape[1], path)
    rates = bin_rates(truth["time"], truth["rates"][:, cols], float(truth["dt"]),
                      session.time, session.bin_size_s)
    vel = session.velocity
    test = scored_mask(session, "test")
    if test.sum() < 2:
        raise RpntError(f"session {session.session}: no test evaluation bins; the ceiling "
                        "needs a store with test trials")
    model = fit_lagged_ridge(rates, vel, session.split_mask("train"),
                             session.split_mask("valid"), lags=lags)
    pred = model.predict(rates)
    rep = r2_report(vel[test], pred[test], session.covariate_names, variance_weighted(session))
    return {"r2": rep, "n_bins": int(test.sum()),
            "n_trials": int((session.trial_split == "test").sum()),
            "lambda": model.lam, "lags": lags}
