"""Vectorised binning of spikes and behaviour onto one time grid.

The grid is ``edges = t0 + bin * arange(n_time + 1)`` (float64); bin ``k`` is the half-open
interval ``[edges[k], edges[k+1])``. Spike bin indices are computed with a multiply and then
corrected against the actual float64 edges, so counts equal ``np.histogram(t, edges)``
exactly (the grid always ends strictly after the last sample, so histogram's closed last
edge never matters).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("rpnt.ingest")


def make_edges(t0: float, t_last: float, bin_s: float) -> np.ndarray:
    """(n_time + 1,) float64 bin edges from ``t0`` with the last edge > ``t_last``."""
    n = int(np.floor((t_last - t0) / bin_s)) + 1
    edges = t0 + bin_s * np.arange(n + 1, dtype=np.float64)
    while edges[-1] <= t_last:  # guard against rounding in the multiply
        edges = np.append(edges, t0 + bin_s * edges.shape[0])
    return edges


def bin_index(t: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n,) int64 index ``k`` with ``edges[k] <= t < edges[k+1]``; t must lie inside the grid.

    Equivalent to ``np.searchsorted(edges, t, side="right") - 1`` but O(n) instead of
    O(n log n_edges): an estimate from the bin width, fixed by one comparison each side.
    """
    bin_s = (edges[-1] - edges[0]) / (edges.shape[0] - 1)
    k = ((t - edges[0]) * (1.0 / bin_s)).astype(np.int64)
    np.clip(k, 0, edges.shape[0] - 2, out=k)
    k -= t < edges[k]
    k += t >= edges[k + 1]
    return k


def count_dtype(max_count: int) -> type:
    """The smallest unsigned integer dtype holding ``max_count`` (uint8 unless > 255)."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_count <= np.iinfo(dt).max:
            return dt
    return np.uint64


def bin_spikes(spike_times: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n_time, n_unit) counts of each unit's spikes in each bin.

    ``spike_times`` is flat with per-unit runs ending at ``ends`` (NWB layout), every time
    inside the grid. One bincount per unit (a loop over units, never over spikes) keeps the
    temporary at one (n_time,) int64 row instead of an (n_time * n_unit) one.
    """
    n_time, n_unit = edges.shape[0] - 1, ends.shape[0]
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    rows = []
    for u in range(n_unit):
        k = bin_index(spike_times[starts[u]:ends[u]], edges)
        c = np.bincount(k, minlength=n_time)
        # keep each row in its own smallest dtype: the int64 rows together would be
        # 8 bytes per bin and unit
        rows.append(c.astype(count_dtype(int(c.max()) if c.size else 0)))
    dt = count_dtype(max((int(np.iinfo(r.dtype).max) for r in rows), default=0))
    out = np.empty((n_time, n_unit), dtype=dt)
    for u in range(n_unit):
        out[:, u] = rows[u]
        rows[u] = None  # free as we go
    return out


def sort_spikes(spike_times: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All spikes in time order: ((n,) float64 times, (n,) int32 unit index).

    ``spike_times`` holds per-unit runs, each sorted. Instead of an argsort of floats (the
    slowest step of ingest), one radix-friendly sort of uint64 keys ``(quantised time <<
    unit_bits) | unit`` orders the spikes; the exact float64 times are then put back by
    unit, which works because each unit's spikes keep their order. Spikes of different units
    within one quantum (<= 2**-36 of the session span) come out in unit order; if that ever
    breaks exact time order, a stable argsort of the times is used instead. Ties (equal
    times) are in unit order.
    """
    n, n_unit = spike_times.shape[0], ends.shape[0]
    if n == 0:
        return np.zeros(0, np.float64), np.zeros(0, np.int32)
    counts = np.diff(np.concatenate([[0], ends]))
    unit_bits = max(1, int(np.ceil(np.log2(max(n_unit, 2)))))
    time_bits = min(52, 64 - unit_bits)
    lo, hi = float(spike_times.min()), float(spike_times.max())
    scale = float(2**time_bits - 1) / (hi - lo) if hi > lo else 0.0
    key = ((spike_times - lo) * scale).astype(np.uint64)
    key <<= np.uint64(unit_bits)
    key |= np.repeat(np.arange(n_unit, dtype=np.uint64), counts)
    key.sort(kind="stable")
    udt = np.int16 if n_unit <= np.iinfo(np.int16).max else np.int32
    units = (key & np.uint64(2**unit_bits - 1)).astype(udt)
    del key
    # positions of each unit's spikes in output order; stable radix sort for int16 units
    where = np.argsort(units, kind="stable")
    times = np.empty_like(spike_times)
    times[where] = spike_times
    del where
    if np.any(times[1:] < times[:-1]):  # two units' spikes within one quantum, misordered
        order = np.argsort(spike_times, kind="stable")
        times = spike_times[order]
        units = np.repeat(np.arange(n_unit, dtype=np.int32), counts)[order]
    return times, units.astype(np.int32)


def bin_behaviour(t: np.ndarray, x: np.ndarray, edges: np.ndarray,
                  max_gap_s: float) -> np.ndarray:
    """(n_time, n_axis) float32: the mean of the samples inside each bin.

    Bins without a sample (bins shorter than the sampling period) get the linear
    interpolation at the bin centre between the neighbouring samples if those are at most
    ``max_gap_s`` apart; otherwise (gaps, before the first or after the last sample) NaN.
    ``t`` is increasing and ``x`` finite (see ``adapters.clean_series``).
    """
    n_time = edges.shape[0] - 1
    inside = (t >= edges[0]) & (t < edges[-1])
    t, x = t[inside], x[inside]
    k = bin_index(t, edges)
    n = np.bincount(k, minlength=n_time)
    out = np.full((n_time, x.shape[1]), np.nan, dtype=np.float64)
    has = n > 0
    for a in range(x.shape[1]):
        s = np.bincount(k, weights=x[:, a], minlength=n_time)
        out[has, a] = s[has] / n[has]
    empty = np.flatnonzero(~has)
    if empty.size and t.shape[0] >= 2:
        centre = edges[empty] + 0.5 * (edges[empty + 1] - edges[empty])
        j = np.searchsorted(t, centre, side="right")  # first sample after the centre
        ok = (j > 0) & (j < t.shape[0])
        j, e, c = j[ok], empty[ok], centre[ok]
        t0, t1 = t[j - 1], t[j]
        close = (t1 - t0) <= max_gap_s
        j, e, c, t0, t1 = j[close], e[close], c[close], t0[close], t1[close]
        w = ((c - t0) / (t1 - t0))[:, None]
        out[e] = (1 - w) * x[j - 1] + w * x[j]
    return out.astype(np.float32)
