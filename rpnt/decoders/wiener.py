"""Wiener-filter baseline: causal lagged ridge regression of velocity on binned counts.

The fit (:func:`rpnt.train.peers.fit_wiener`) is :func:`rpnt.linear.fit_lagged_ridge`,
the one lagged-ridge implementation: closed form on training-trial bins, the ridge
penalty chosen by R² on the valid trials' scored bins. The fitted standardisation and
weights are kept as buffers, so the decoder saves and loads like every other one. A
prediction for bin t uses counts of bins t-lags..t of the session (zeros before its
start), including bins before the window start: the filter is causal and runs over the
whole recording, as it would online.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder, register_decoder
from rpnt.errors import RpntError


@register_decoder
class WienerDecoder(Decoder):
    """hparams: n_unit, n_axis, lags, lam, window_bins. Buffers: ``mean``, ``scale``
    (F,), ``weight`` (F, n_axis), ``intercept`` (n_axis,), F = n_unit * (lags + 1)."""

    kind = "wiener"

    def __init__(self, hparams: dict[str, Any]):
        super().__init__(hparams)
        f = int(hparams["n_unit"]) * (int(hparams["lags"]) + 1)
        a = int(hparams["n_axis"])
        self.register_buffer("mean", torch.zeros(f, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(f, dtype=torch.float64))
        self.register_buffer("weight", torch.zeros(f, a, dtype=torch.float64))
        self.register_buffer("intercept", torch.zeros(a, dtype=torch.float64))

    def design(self, session: SessionData, starts: np.ndarray, length: int) -> np.ndarray:
        """(B, length, F) lagged counts: block k holds counts of bin t - k (0 before the
        session start), the layout of :func:`rpnt.linear.lagged_design`."""
        lags = int(self.hparams["lags"])
        t = np.asarray(starts, dtype=np.int64)[:, None, None] + np.arange(length)[None, :, None]
        idx = t - np.arange(lags + 1)[None, None, :]  # (B, length, lags + 1)
        x = session.spike_counts[np.clip(idx, 0, None)].astype(np.float64)  # (B, L, K, N)
        x[idx < 0] = 0.0
        return x.reshape(idx.shape[0], length, -1)

    def predict_windows(
        self, session: SessionData, starts: np.ndarray, length: int
    ) -> np.ndarray:
        """(n_windows, length, n_axis) velocity in cm/s."""
        if session.n_unit != int(self.hparams["n_unit"]):
            raise RpntError(f"Wiener decoder was fit on {self.hparams['n_unit']} units but "
                            f"session {session.session} has {session.n_unit}; evaluate on "
                            "the store (and --scenario) it was trained on")
        x = self.design(session, starts, length)
        mean, scale = self.mean.cpu().numpy(), self.scale.cpu().numpy()
        y = ((x - mean) / scale) @ self.weight.cpu().numpy() + self.intercept.cpu().numpy()
        return y.astype(np.float32)
