"""The streaming interface: one bin in, the covariates of that bin out.

A :class:`StreamingDecoder` wraps a trained :class:`rpnt.decoders.base.Decoder`:

* ``reset(session)``: start a new stream on a session (its metadata: units, sites,
  subject, task, date; the RPNT's unit choice reads the session's training-bin rates, as
  offline scoring does). Every state of the previous stream is dropped.
* ``step(counts)``: counts (n_unit,) of the next bin, in the session's unit order ->
  velocity (n_axis,) float32 in cm/s of that bin.
* ``observe(counts)``: the same bin fed to history only (no output is computed where the
  decoder can skip it).

Semantics: ``step`` after ``reset`` and bins b_0 .. b_i returns exactly what
:meth:`StreamingDecoder.offline` returns at row i for the counts b_0 .. b_i: a causal
function of the bins fed since ``reset`` (nothing before it). ``offline`` is the
vectorised form that scoring uses (``rpnt evaluate --stream``); tests/test_online.py
checks the two agree to 1e-5 for every decoder. What the function is, per kind, is in
docs/online.md.
"""

from __future__ import annotations

import abc
import importlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder, load_decoder
from rpnt.errors import RpntError

#: kind -> (module, class name) of its streaming decoder (imported on demand).
STREAM_CLASSES: dict[str, tuple[str, str]] = {
    "rpnt": ("rpnt.online.rpnt_stream", "RPNTStream"),
    "gru": ("rpnt.online.peers", "GRUStream"),
    "ndt": ("rpnt.online.peers", "NDTStream"),
    "wiener": ("rpnt.online.peers", "WienerStream"),
}
#: kind -> why it has no streaming form.
NOT_STREAMED: dict[str, str] = {
    "poyo": "POYO tokenises raw spike times, and a stream step carries one bin of counts; "
            "score POYO offline (rpnt evaluate without --stream)",
}


class StreamingDecoder(abc.ABC):
    """Base of the streaming decoders (module docstring)."""

    kind: ClassVar[str] = ""

    def __init__(self, decoder: Decoder):
        self.decoder = decoder.eval()
        self.n_unit: int | None = None
        self.n_axis = int(decoder.vel_mean.shape[0]) if hasattr(decoder, "vel_mean") else 2
        self.session: SessionData | None = None
        self.t = 0  #: bins fed since reset

    # -- the stream ---------------------------------------------------------------------
    def reset(self, session: SessionData) -> None:
        """Start a new stream on ``session`` (drops every state of the previous one)."""
        self.session = session
        self.n_unit = session.n_unit
        self.t = 0
        self._reset(session)

    def step(self, counts: np.ndarray) -> np.ndarray:
        """counts (n_unit,) of the next bin -> velocity (n_axis,) float32, cm/s."""
        x = self.check_bin(counts)
        out = self._step(x, True)
        self.t += 1
        return out  # type: ignore[return-value]

    def observe(self, counts: np.ndarray) -> None:
        """Feed a bin to history without asking for its output."""
        x = self.check_bin(counts)
        self._step(x, False)
        self.t += 1

    def check_bin(self, counts: np.ndarray) -> np.ndarray:
        """Refuse a bad bin with one line: wrong unit count, NaN/inf, negative count."""
        if self.n_unit is None:
            raise RpntError(f"{self.kind} stream: step before reset; call "
                            "reset(session) with the session's metadata first")
        x = np.asarray(counts)
        if x.shape != (self.n_unit,):
            raise RpntError(f"{self.kind} stream on session {self.session.session}: a bin "
                            f"must hold counts of its {self.n_unit} units, got shape "
                            f"{x.shape}; pass one row of spike_counts (n_unit,) per step")
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            raise RpntError(f"{self.kind} stream on session {self.session.session}: bin "
                            f"{self.t} has NaN or infinite counts; pass finite spike "
                            "counts (0 for a silent unit)")
        if (x < 0).any():
            raise RpntError(f"{self.kind} stream on session {self.session.session}: bin "
                            f"{self.t} has negative counts; pass spike counts >= 0")
        return x

    # -- what subclasses implement ---------------------------------------------------------
    @abc.abstractmethod
    def _reset(self, session: SessionData) -> None:
        """Set up the state of a new stream on ``session``."""

    @abc.abstractmethod
    def _step(self, counts: np.ndarray, want: bool) -> np.ndarray | None:
        """Advance by one checked bin (n_unit,) float32; return (n_axis,) if ``want``."""

    @abc.abstractmethod
    def offline(self, session: SessionData, counts: np.ndarray) -> np.ndarray:
        """The stream's function, vectorised: counts (n, n_unit) fed after
        ``reset(session)`` -> (n, n_axis) float32 velocity; row i = ``step`` at bin i."""


def stream_decoder(decoder: Decoder, recompute: bool = False,
                   **options: object) -> StreamingDecoder:
    """The streaming decoder of a loaded decoder (by its ``kind``).

    ``recompute``: for RPNT, re-run the window model on the last T bins every bin (the
    offline window model exactly, O(T^2 d) per bin) instead of the cached stream.
    """
    if decoder.kind in NOT_STREAMED:
        raise RpntError(f"{decoder.kind.upper()} stream: {NOT_STREAMED[decoder.kind]}")
    if decoder.kind not in STREAM_CLASSES:
        raise RpntError(f"no streaming decoder for kind {decoder.kind!r}; known: "
                        f"{', '.join(sorted(STREAM_CLASSES))}")
    module, name = STREAM_CLASSES[decoder.kind]
    if recompute and decoder.kind == "rpnt":
        module, name = "rpnt.online.rpnt_window", "RPNTWindowStream"
    cls = getattr(importlib.import_module(module), name)
    return cls(decoder, **options)


def load_stream(model_dir: str | Path, **options: object) -> StreamingDecoder:
    """A streaming decoder from a trained model directory (``rpnt finetune`` / ``baseline``)."""
    return stream_decoder(load_decoder(model_dir), **options)
