"""Stream scoring: a decoder scored as it would run online (``rpnt evaluate --stream``).

The stream starts at the session's first bin and runs through the whole recording (every
bin feeds history, trial or not, as a closed loop would see it); its outputs on the scored
bins (test trials inside ``eval_mask``, :func:`rpnt.scoring.stitch.scored_mask`) give R²
exactly as offline scoring does. The predictions come from the stream's vectorised
twin (:meth:`StreamingDecoder.offline`, the same function); the first ``latency_bins``
bins are also stepped one at a time on one thread, which times each step and checks the
stepped outputs against the twin (``stream_check_max_abs_diff``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from rpnt.data.session import SessionData
from rpnt.decoders.base import Decoder
from rpnt.errors import RpntError
from rpnt.machine import cpu_model
from rpnt.online.base import stream_decoder
from rpnt.scoring.metrics import r2_report
from rpnt.scoring.stitch import SessionScore, scored_mask, variance_weighted

#: Bins stepped one at a time for the latency fields.
LATENCY_BINS = 500


def stream_session(decoder: Decoder, session: SessionData, split: str = "test",
                   latency_bins: int = LATENCY_BINS) -> tuple[SessionScore, dict[str, Any]]:
    """Score ``decoder`` streamed over ``session``; returns the score and latency fields."""
    mask = scored_mask(session, split)
    if mask.sum() < 2:
        raise RpntError(f"session {session.session}: no {split} bins inside eval_mask with "
                        "finite velocity to score; check the store's split and eval_mask")
    stream = stream_decoder(decoder)
    pred = stream.offline(session, session.spike_counts).astype(np.float64)
    r2 = r2_report(session.velocity[mask].astype(np.float64), pred[mask],
                   session.covariate_names, variance_weighted(session))
    t = session.time[mask]
    sel = session.trial_split == split
    lo = np.searchsorted(t, session.trial_start[sel], side="left")
    hi = np.searchsorted(t, session.trial_stop[sel], side="left")
    score = SessionScore(r2=r2, n_bins=int(mask.sum()), n_trials=int((hi > lo).sum()),
                         split=split, mask=mask, pred=pred)
    return score, stream_latency(stream, session, pred, latency_bins)


def stream_latency(stream: Any, session: SessionData, pred: np.ndarray,
                   n_bins: int) -> dict[str, Any]:
    """Step the first ``n_bins`` bins on one thread: per-bin latency, and the largest
    difference from the vectorised predictions ``pred`` (n_time, n_axis)."""
    n = min(n_bins, session.n_time)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stream.reset(session)
        sec, diff = np.empty(n), 0.0
        for i in range(n):
            t0 = time.perf_counter_ns()
            y = stream.step(session.spike_counts[i])
            sec[i] = (time.perf_counter_ns() - t0) * 1e-9
            diff = max(diff, float(np.abs(y - pred[i]).max()))
    finally:
        torch.set_num_threads(threads)
    ms = sec * 1e3
    return {"scoring": "stream",
            "latency": {"p50_ms": float(np.percentile(ms, 50)),
                        "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
                        "normalized_latency": float(sec.mean() / session.bin_size_s),
                        "bins": n, "threads": 1, "cpu": cpu_model()},
            "stream_check_max_abs_diff": diff}
