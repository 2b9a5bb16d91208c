"""Shared machinery of the binned-count baselines (GRU, NDT-style transformer).

A :class:`BinnedDecoder` maps a window of spike counts (B, T, N) to velocity (B, T, A).
It z-scores counts per unit and velocity per axis with statistics of the training bins,
kept as buffers so that a saved decoder carries them (no side files), and its
:meth:`predict_windows` reads only bins inside each window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rpnt.data.session import SessionData
from rpnt.data.windows import gather_windows
from rpnt.decoders.base import Decoder, inference
from rpnt.errors import RpntError


class BinnedDecoder(Decoder):
    """Base of decoders over binned counts; subclasses implement :meth:`forward`.

    ``hparams`` must hold ``n_unit``, ``n_axis`` and ``window_bins``.
    ``forward(x)``: x (B, T, n_unit) z-scored counts -> (B, T, n_axis) z-scored velocity.
    """

    def __init__(self, hparams: dict[str, Any]):
        super().__init__(hparams)
        n_unit, n_axis = int(hparams["n_unit"]), int(hparams["n_axis"])
        self.register_buffer("count_mean", torch.zeros(n_unit))
        self.register_buffer("count_std", torch.ones(n_unit))
        self.register_buffer("vel_mean", torch.zeros(n_axis))
        self.register_buffer("vel_std", torch.ones(n_axis))

    def set_normalisation(self, session: SessionData, mask: np.ndarray) -> None:
        """Statistics of counts and velocity over ``mask`` (n_time,) bins (training bins)."""
        counts = session.spike_counts[mask].astype(np.float64)
        vel = session.velocity[mask].astype(np.float64)
        if counts.shape[0] < 2:
            raise RpntError(f"session {session.session}: fewer than 2 training bins with "
                            "finite velocity; cannot fit a decoder")
        # a silent unit gets std 1 so that it stays at 0 instead of dividing by zero
        c_std = counts.std(0)
        v_std = vel.std(0)
        self.count_mean.copy_(torch.as_tensor(counts.mean(0)))
        self.count_std.copy_(torch.as_tensor(np.where(c_std > 0, c_std, 1.0)))
        self.vel_mean.copy_(torch.as_tensor(vel.mean(0)))
        self.vel_std.copy_(torch.as_tensor(np.where(v_std > 0, v_std, 1.0)))

    def normalise_counts(self, counts: np.ndarray) -> torch.Tensor:
        """(B, T, N) raw counts -> float32 z-scored tensor on the module's device."""
        x = torch.as_tensor(np.asarray(counts, dtype=np.float32), device=self.count_mean.device)
        return (x - self.count_mean) / self.count_std

    def normalise_velocity(self, vel: np.ndarray) -> torch.Tensor:
        """(B, T, A) cm/s -> z-scored float32 tensor on the module's device."""
        v = torch.as_tensor(np.asarray(vel, dtype=np.float32), device=self.vel_mean.device)
        return (v - self.vel_mean) / self.vel_std

    def check_session(self, session: SessionData) -> None:
        if session.n_unit != int(self.hparams["n_unit"]):
            raise RpntError(f"decoder {self.kind!r} was trained on {self.hparams['n_unit']} "
                            f"units but session {session.session} has {session.n_unit}; "
                            "evaluate on the same store (and --scenario) it was trained on")

    @inference
    def predict_windows(
        self, session: SessionData, starts: np.ndarray, length: int
    ) -> np.ndarray:
        """(n_windows, length, n_axis) velocity in cm/s from counts inside each window."""
        self.check_session(session)
        x = self.normalise_counts(gather_windows(session.spike_counts,
                                                 np.asarray(starts), length))
        y = self(x) * self.vel_std + self.vel_mean
        return y.float().cpu().numpy()
