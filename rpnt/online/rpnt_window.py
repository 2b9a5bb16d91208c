"""RPNT re-running its window model every bin: the reference the stream is timed against.

``stream_decoder(decoder, recompute=True)`` gives :class:`RPNTWindowStream`: every bin
re-runs the window model on the last ``span`` bins (shorter right after ``reset``) and
returns its last row, the offline window model exactly, at O(T^2 d) per bin (what
``rpnt bench stream`` compares the cached stream, :mod:`rpnt.online.rpnt_stream`, with).
"""

from __future__ import annotations

import numpy as np
import torch

from rpnt.data.batches import eval_unit_choice
from rpnt.data.session import SessionData
from rpnt.online.rpnt_stream import CHUNK, RPNTStream


class RPNTWindowStream(RPNTStream):
    """``mode="recompute"``: every bin re-runs the window model on the last ``span`` bins
    (shorter right after ``reset``) and returns its last row: the offline window model
    exactly, at O(T^2 d) per bin (the reference of ``rpnt bench stream``)."""

    def _init_cache(self) -> None:
        self.ring = torch.zeros(self.span, self.n_site, self.cfg.n_units)

    @torch.no_grad()
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        c = torch.from_numpy(counts)[torch.from_numpy(self.slots)]  # (S, N)
        self.ring[self.t % self.span] = torch.where(self.real, c, 0.0)
        if not want:
            return None
        w = min(self.t + 1, self.span)
        order = torch.from_numpy((self.t - w + 1 + np.arange(w)) % self.span)
        return self._window(self.ring[order].transpose(0, 1)[None])[0, -1]

    def _window(self, win: torch.Tensor) -> np.ndarray:
        """win (B, S, w, N) slot counts -> velocity (B, w, A) of the window model."""
        b = win.shape[0]
        coords = self._coords
        pred = self.model.velocity(win, self.real[None].expand(b, -1, -1),
                                   {k: v.expand(b, -1) for k, v in coords.items()},
                                   torch.ones(b, self.n_site, dtype=torch.bool),
                                   readin=self.readin.expand(b, -1))
        return (pred * self.decoder.vel_std + self.decoder.vel_mean).float().numpy()

    @torch.no_grad()
    def _reset(self, session: SessionData) -> None:
        sw = self.decoder.windows(session, self.span)
        units = eval_unit_choice(sw, 1, seed=int(self.decoder.hparams.get("eval_seed", 0)))[0]
        self.slots = np.where(units < 0, 0, units)
        self.real = torch.from_numpy(units >= 0)
        self.n_site = units.shape[0]
        self.readin = torch.from_numpy(sw.readin)[None]
        self._coords = {k: torch.from_numpy(np.asarray(v, np.float32))[None]
                        for k, v in sw.coords.items()}
        self._init_cache()

    @torch.no_grad()
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        self.reset(session)
        c = torch.from_numpy(np.asarray(counts, np.float32))[:, torch.from_numpy(self.slots)]
        c = torch.where(self.real, c, 0.0).transpose(0, 1)  # (S, n, N)
        n, t = c.shape[1], self.span
        out = [self._window(c[None, :, :min(n, t)])[0]]
        ends = np.arange(t, n)
        for lo in range(0, ends.size, CHUNK):
            idx = torch.from_numpy(ends[lo:lo + CHUNK, None] - t + 1 + np.arange(t)[None])
            out.append(self._window(c[:, idx].permute(1, 0, 2, 3))[:, -1])
        return np.concatenate(out)
