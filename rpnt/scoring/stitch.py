"""Stitched predictions: overlapping windows over the scored bins, averaged per bin.

The peers evaluate with windows that overlap by 50 % and average the predictions of every
window covering a bin before scoring. Only bins that are (a) inside a trial of the scored
split (test), (b) in the store's ``eval_mask`` (e.g. go cue to trial end) and (c) have a
finite velocity enter the score; all other bins may still feed a window as context.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from rpnt.data.session import SessionData
from rpnt.data.windows import covering_starts
from rpnt.errors import RpntError
from rpnt.scoring.metrics import r2_report

#: Window length (bins) used when a decoder's hparams do not say (the paper's T = 50).
DEFAULT_WINDOW_BINS = 50


class Predictor(Protocol):
    """What scoring needs of a decoder (:class:`rpnt.decoders.base.Decoder` is one)."""

    kind: str
    hparams: dict[str, Any]

    def predict_windows(self, session: SessionData, starts: np.ndarray,
                        length: int) -> np.ndarray:
        """(n_windows, length, n_axis) velocity in cm/s for windows ``[s, s + length)``."""
        ...


def window_length(decoder: Predictor) -> int:
    """Evaluation window length in bins: the window the decoder was trained on.

    ``hparams["window_bins"]`` (the baselines), else ``decoder.config.window`` (RPNT),
    else :data:`DEFAULT_WINDOW_BINS`.
    """
    if "window_bins" in decoder.hparams:
        return int(decoder.hparams["window_bins"])
    window = getattr(getattr(decoder, "config", None), "window", None)
    return int(window) if window else DEFAULT_WINDOW_BINS


def variance_weighted(session: SessionData) -> bool:
    """Whether scores of ``session`` carry FALCON's variance-weighted R² too: its store
    says so (attribute ``r2_weighting``, written by the FALCON adapter)."""
    return session.attrs.get("r2_weighting") == "variance_weighted"


def scored_mask(session: SessionData, split: str = "test") -> np.ndarray:
    """(n_time,) bool: bins of ``split`` trials, in ``eval_mask``, with finite velocity.

    A bin counts as a ``split`` bin only if both the bin-level ``split`` code and the
    trial table agree, so a bin can never be scored on the strength of one label alone.
    """
    return session.split_bins(split) & session.eval_mask.astype(bool)


def stitch(
    decoder: Predictor,
    session: SessionData,
    mask: np.ndarray,
    length: int,
    stride: int | None = None,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Average the predictions of overlapping windows covering ``mask``.

    Windows of ``length`` bins start every ``stride`` bins (default ``length // 2``, i.e.
    50 % overlap) and cover every True bin of ``mask`` (n_time,). Returns
    ``(pred, count)``: pred (n_time, n_axis) float64, NaN where no window reached;
    count (n_time,) int, the number of windows averaged at each bin.
    """
    stride = max(1, length // 2) if stride is None else int(stride)
    starts = covering_starts(mask, length, stride)
    n_axis = session.velocity.shape[1]
    total = np.zeros((session.n_time, n_axis))
    count = np.bincount(
        (starts[:, None] + np.arange(length)[None, :]).ravel(), minlength=session.n_time
    ) if starts.size else np.zeros(session.n_time, dtype=np.int64)
    for lo in range(0, starts.size, batch_size):
        chunk = starts[lo : lo + batch_size]
        pred = np.asarray(decoder.predict_windows(session, chunk, length), dtype=np.float64)
        if pred.shape != (chunk.size, length, n_axis):
            raise RpntError(f"decoder {decoder.kind!r} returned predictions of shape "
                            f"{pred.shape}, expected {(chunk.size, length, n_axis)}")
        idx = (chunk[:, None] + np.arange(length)[None, :]).ravel()
        # np.add.at accumulates repeated indices (overlapping windows) correctly
        np.add.at(total, idx, pred.reshape(-1, n_axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count[:, None]
    out[count == 0] = np.nan
    return out, count


@dataclass
class SessionScore:
    """The result of scoring one session: metrics plus what is needed for figures."""

    r2: dict[str, float]  #: {<covariate>: .., "mean": ..[, "variance_weighted": ..]}
    n_bins: int  #: scored bins
    n_trials: int  #: trials with at least one scored bin
    split: str
    mask: np.ndarray  #: (n_time,) bool, scored bins
    pred: np.ndarray  #: (n_time, n_axis) stitched prediction (NaN where not predicted)

    def metrics(self) -> dict:
        """The JSON-ready part: r2, n_bins, n_trials, split."""
        return {"r2": self.r2, "n_bins": self.n_bins, "n_trials": self.n_trials,
                "split": self.split}


def evaluate_session(
    decoder: Predictor,
    session: SessionData,
    split: str = "test",
    length: int | None = None,
    stride: int | None = None,
    batch_size: int = 256,
) -> SessionScore:
    """Stitch ``decoder`` over ``session``'s scored bins and compute R² afresh.

    ``length`` defaults to :func:`window_length`. Raises :class:`RpntError` when the
    session has no scored bin (no ``split`` trial inside ``eval_mask``).
    """
    length = window_length(decoder) if length is None else int(length)
    mask = scored_mask(session, split)
    if mask.sum() < 2:
        raise RpntError(f"session {session.session}: no {split} bins inside eval_mask with "
                        "finite velocity to score; check the store's split and eval_mask")
    if session.n_time < length:
        raise RpntError(f"session {session.session} has {session.n_time} bins, fewer than "
                        f"one evaluation window of {length}")
    pred, _ = stitch(decoder, session, mask, length, stride, batch_size)
    y_true = session.velocity[mask].astype(np.float64)
    y_pred = pred[mask]
    r2 = r2_report(y_true, y_pred, session.covariate_names, variance_weighted(session))
    # trials with a scored bin: which trial interval each scored bin falls in
    t = session.time[mask]
    sel = session.trial_split == split
    lo = np.searchsorted(t, session.trial_start[sel], side="left")
    hi = np.searchsorted(t, session.trial_stop[sel], side="left")
    n_trials = int((hi > lo).sum())
    return SessionScore(r2=r2, n_bins=int(mask.sum()), n_trials=n_trials, split=split,
                        mask=mask, pred=pred)
