"""Streaming forms of the peer decoders (Wiener, GRU, NDT, POYO).

* Wiener: a lag buffer of the last ``lags + 1`` bins (zeros before ``reset``), the same
  lagged ridge map as offline (which also runs over the whole recording).
* GRU: the hidden state carried from ``reset`` on (offline: one GRU pass over every bin
  fed since ``reset``, from a zero state).
* NDT: the last ``window_bins`` bins recomputed every bin; the output is the window's last
  row (a causal window ending at the bin; shorter right after ``reset``).
* POYO reads raw spike times, not counts, so a counts stream cannot feed it:
  :func:`rpnt.online.base.stream_decoder` refuses it with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder
from rpnt.errors import RpntError
from rpnt.online.base import StreamingDecoder

#: Windows per forward when the offline form recomputes windows.
CHUNK = 256


class WienerStream(StreamingDecoder):
    """Lagged ridge regression over a ring of the last ``lags + 1`` bins."""

    kind = "wiener"

    def __init__(self, decoder: Decoder, **_: Any):
        super().__init__(decoder)
        self.lags = int(decoder.hparams["lags"])
        self.mean = decoder.mean.cpu().numpy()
        self.scale = decoder.scale.cpu().numpy()
        self.weight = decoder.weight.cpu().numpy()  # (F, A) float64
        self.intercept = decoder.intercept.cpu().numpy()
        self.n_axis = int(self.weight.shape[1])

    def _reset(self, session: SessionData) -> None:
        if session.n_unit != int(self.decoder.hparams["n_unit"]):
            raise RpntError(f"Wiener stream: decoder was fit on {self.decoder.hparams['n_unit']}"
                            f" units, session {session.session} has {session.n_unit}; reset "
                            "with the session (and scenario units) it was trained on")
        # block k holds bin t - k (rpnt.linear.lagged_design): newest first
        self.buf = np.zeros((self.lags + 1, session.n_unit), np.float64)

    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        self.buf[1:] = self.buf[:-1].copy()
        self.buf[0] = counts
        if not want:
            return None
        y = ((self.buf.reshape(-1) - self.mean) / self.scale) @ self.weight + self.intercept
        return y.astype(np.float32)

    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        x = np.asarray(counts, np.float64)
        n = x.shape[0]
        idx = np.arange(n)[:, None] - np.arange(self.lags + 1)[None, :]  # (n, K)
        design = x[np.clip(idx, 0, None)]  # (n, K, N)
        design[idx < 0] = 0.0
        y = ((design.reshape(n, -1) - self.mean) / self.scale) @ self.weight + self.intercept
        return y.astype(np.float32)


class _BinnedStream(StreamingDecoder):
    """Shared by GRU and NDT: z-scoring of counts with the decoder's statistics."""

    def __init__(self, decoder: Decoder, **_: Any):
        super().__init__(decoder)
        self.window = int(decoder.hparams["window_bins"])

    def _reset(self, session: SessionData) -> None:
        self.decoder.check_session(session)

    def norm(self, counts: np.ndarray) -> torch.Tensor:
        """(..., N) counts -> z-scored float32 tensor (same op as the decoder's)."""
        return self.decoder.normalise_counts(counts)

    def denorm(self, y: torch.Tensor) -> np.ndarray:
        return (y * self.decoder.vel_std + self.decoder.vel_mean).float().cpu().numpy()


class GRUStream(_BinnedStream):
    """The GRU's hidden state carried from bin to bin."""

    kind = "gru"

    def _reset(self, session: SessionData) -> None:
        super()._reset(session)
        self.h: torch.Tensor | None = None  # (layers, 1, hidden); None = zeros

    @torch.no_grad()
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        d = self.decoder
        x = d.inp(self.norm(counts[None, None]))  # (1, 1, H)
        out, self.h = d.gru(x, self.h)
        return self.denorm(d.out(out[0, 0])) if want else None

    @torch.no_grad()
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        return self.denorm(self.decoder(self.norm(np.asarray(counts)[None]))[0])


class NDTStream(_BinnedStream):
    """The last ``window_bins`` bins recomputed every bin; the output is the last row."""

    kind = "ndt"

    def _reset(self, session: SessionData) -> None:
        super()._reset(session)
        self.buf = torch.zeros(self.window, session.n_unit)  # ring of z-scored bins

    @torch.no_grad()
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        self.buf[self.t % self.window] = self.norm(counts)
        if not want:
            return None
        w = min(self.t + 1, self.window)
        order = (self.t - w + 1 + np.arange(w)) % self.window  # oldest first
        y = self.decoder(self.buf[torch.from_numpy(order)][None])  # (1, w, A)
        return self.denorm(y[0, -1])

    @torch.no_grad()
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        x = self.norm(np.asarray(counts))  # (n, N)
        n, t = x.shape[0], self.window
        out = [self.decoder(x[None, :min(n, t)])[0]]  # rows < T: the first window, causal
        ends = np.arange(t, n)  # rows >= T: the window ending there, last row
        for lo in range(0, ends.size, CHUNK):
            idx = torch.from_numpy(ends[lo:lo + CHUNK, None] - t + 1 + np.arange(t)[None])
            out.append(self.decoder(x[idx])[:, -1])
        return self.denorm(torch.cat(out))
