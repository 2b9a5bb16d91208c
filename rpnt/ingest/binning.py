"""Vectorised binning of spikes and behaviour onto one time grid.

The grid is ``edges = t0 + bin * arange(n_time + 1)`` (float64); bin ``k`` is the half-open
interval ``[edges[k], edges[k+1])``. Spike bin indices are computed with a multiply and then
corrected against the actual float64 edges, so counts equal ``np.histogram(t, edges)``
exactly (the grid always ends strictly after the last sample, so histogram's closed last
edge never matters).
"""

from __future__ import annotations

import itertools
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
    """(n,) intp index ``k`` with ``edges[k] <= t < edges[k+1]``; t must lie inside the grid.

    Equivalent to ``np.searchsorted(edges, t, side="right") - 1`` but O(n) instead of
    O(n log n_edges): an estimate from the bin width, checked against the float64 edges
    wherever it lies within rounding distance of an edge.
    """
    n_bins = edges.shape[0] - 1
    x = np.subtract(t, edges[0])
    x *= n_bins / (edges[-1] - edges[0])
    k = x.astype(np.intp)  # truncation is floor: t >= edges[0]
    np.minimum(k, n_bins - 1, out=k)
    # The estimate can be off by one only where t is within rounding of an edge; check the
    # float64 edges there (fractional position near 0 or 1), not everywhere.
    x -= k
    x -= 0.5
    np.abs(x, out=x)
    near = np.flatnonzero(x > 0.5 - 1e-6)
    if near.size:
        kn, tn = k[near], t[near]
        kn -= tn < edges[kn]
        kn += tn >= edges[kn + 1]
        k[near] = kn
    return k


def count_dtype(max_count: int) -> type:
    """The smallest unsigned integer dtype holding ``max_count`` (uint8 unless > 255)."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_count <= np.iinfo(dt).max:
            return dt
    return np.uint64


def _run(fn, items, threads: int) -> None:
    """``fn(item)`` for every item, in ``threads`` threads (in order, inline, if 1)."""
    if threads <= 1:
        for it in items:
            fn(it)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fn, items):  # re-raises a worker's exception here
            pass


def _slices(weights: np.ndarray, n: int) -> list[tuple[int, int]]:
    """``n`` contiguous index ranges over ``weights`` with about equal sums (non-empty)."""
    cum = np.concatenate([[0], np.cumsum(weights, dtype=np.float64)])
    cuts = np.searchsorted(cum, np.linspace(0, cum[-1], n + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], cuts, [weights.shape[0]]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def count_spikes(spike_times: np.ndarray, ends: np.ndarray, edges: np.ndarray,
                 threads: int = 1) -> np.ndarray:
    """(n_time, n_unit) spike counts, straight from per-unit sorted runs (no time sort).

    ``spike_times`` holds each unit's spikes, sorted, ending at ``ends`` (n_unit,), all
    inside ``[edges[0], edges[-1])``. Each unit's bin indices (:func:`bin_index`, exact at
    the float64 edges, so counts equal ``np.histogram(unit_times, edges)``) are counted
    with one bincount into that unit's row of a (n_unit, n_time) array; the result is
    that array's transpose, a view (the store writer copies it out chunk by chunk, so no
    second full-size array is made). The dtype is uint8, widened only if a bin holds more
    than 255 spikes of one unit. ``threads`` split the units; the result does not depend
    on it.
    """
    n_unit, n_time = ends.shape[0], edges.shape[0] - 1
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    rows = np.empty((n_unit, n_time), dtype=np.uint8)
    wide: dict[int, np.ndarray] = {}  # units with a bin > 255 (rare), written below

    def count(span: tuple[int, int]) -> None:
        for u in range(*span):  # a loop over units, not spikes
            k = bin_index(spike_times[starts[u]:ends[u]], edges)  # sorted
            c = np.bincount(k, minlength=n_time)
            if k.shape[0] > 255 and np.any(k[255:] == k[:-255]):  # a bin holds > 255
                wide[u] = c
            rows[u] = c

    _run(count, _slices(ends - starts + 1, threads), threads)
    if wide:
        rows = rows.astype(count_dtype(max(int(c.max()) for c in wide.values())))
        for u, c in wide.items():
            rows[u] = c
    return rows.T


def count_on_edges(spike_times: np.ndarray, ends: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n_bin, n_unit) counts on any increasing ``edges`` (not necessarily evenly spaced),
    exactly ``np.histogram(unit_times, edges)`` per unit: the last bin includes its right
    edge. ``spike_times`` holds each unit's sorted spikes ending at ``ends``, all inside
    ``[edges[0], edges[-1]]``. uint8 unless a bin holds more than 255 spikes."""
    n_bin = edges.shape[0] - 1
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    rows = np.zeros((ends.shape[0], n_bin), dtype=np.int64)
    for u in range(ends.shape[0]):  # a loop over units, not spikes
        k = np.searchsorted(edges, spike_times[starts[u]:ends[u]], side="right") - 1
        k[k == n_bin] = n_bin - 1  # a spike on the last edge: the closed last bin
        rows[u] = np.bincount(k[k >= 0], minlength=n_bin)
    return rows.T.astype(count_dtype(int(rows.max(initial=0))))


def bin_behaviour(t: np.ndarray, x: np.ndarray, edges: np.ndarray,
                  max_gap_s: float) -> np.ndarray:
    """(n_time, n_axis) float32: the mean of the samples inside each bin.

    Bins without a sample (bins shorter than the sampling period) get the linear
    interpolation at the bin centre between the neighbouring samples if those are at most
    ``max_gap_s`` apart; otherwise (gaps, before the first or after the last sample) NaN.
    ``t`` is increasing and ``x`` finite (see ``behaviour.clean_series``).
    """
    n_time = edges.shape[0] - 1
    lo, hi = np.searchsorted(t, edges[[0, -1]], side="left")  # the samples inside the grid
    t, x = t[lo:hi], x[lo:hi]
    k = bin_index(t, edges)  # non-decreasing: t increases
    out = np.full((n_time, x.shape[1]), np.nan, dtype=np.float64)
    has = np.zeros(n_time, dtype=bool)
    if k.shape[0]:
        first = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))  # each bin's first
        kk = k[first]
        n = np.diff(np.append(first, k.shape[0]))
        out[kk] = np.add.reduceat(x, first, axis=0) / n[:, None]
        has[kk] = True
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
