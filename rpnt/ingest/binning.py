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
    O(n log n_edges): an estimate from the bin width, checked against the float64 edges
    wherever it lies within rounding distance of an edge.
    """
    bin_s = (edges[-1] - edges[0]) / (edges.shape[0] - 1)
    x = np.subtract(t, edges[0])
    x *= 1.0 / bin_s
    k = x.astype(np.int64)
    np.clip(k, 0, edges.shape[0] - 2, out=k)
    # The estimate can be off by one only where t is within rounding of an edge; check the
    # float64 edges there (fractional position near 0 or 1), not everywhere.
    x -= k
    near = np.flatnonzero((x < 1e-6) | (x > 1 - 1e-6))
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


def bin_spikes(times: np.ndarray, units: np.ndarray, edges: np.ndarray, n_unit: int,
               chunk: int = 4096) -> np.ndarray:
    """(n_time, n_unit) counts of spikes in each bin, from time-sorted spikes.

    ``times`` (n,) sorted float64 and ``units`` (n,) int unit index, all inside the grid.
    ``np.searchsorted(times, edges)`` gives each bin's slice of the sorted spikes exactly
    (``edges[k] <= t < edges[k+1]``, as ``np.histogram``); a bincount of
    ``bin * n_unit + unit`` over ``chunk`` bins at a time keeps the int64 temporaries
    small. The output is uint8, widened only if a bin holds more than 255 spikes of one unit.
    """
    n_time = edges.shape[0] - 1
    pos = np.searchsorted(times, edges, side="left")
    out = np.zeros((n_time, n_unit), dtype=np.uint8)
    for a in range(0, n_time, chunk):
        b = min(a + chunk, n_time)
        key = np.repeat(np.arange(b - a, dtype=np.int64) * n_unit, np.diff(pos[a:b + 1]))
        key += units[pos[a]:pos[b]]
        c = np.bincount(key, minlength=(b - a) * n_unit).reshape(b - a, n_unit)
        if c.size and c.max() > np.iinfo(out.dtype).max:  # rare: widen for everyone
            out = out.astype(count_dtype(int(c.max())))
        out[a:b] = c
    return out


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


def _sort_runs(t: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-unit sorted runs of ``t`` (>= 0): ((n,) float64 times, (n,) unit index).

    One sort of uint64 keys (the time's bits with the unit index in the lowest mantissa
    bits; non-negative float64s order like their bits) orders the spikes; the exact times
    are then put back by unit, as each unit's spikes keep their run order. Spikes of
    different units closer than the replaced bits (~1e-10 s at 1 h) may come out in unit
    order; that is detected and then a stable argsort of the times is used instead.
    """
    n_unit = ends.shape[0]
    starts = np.concatenate([[0], ends[:-1]])
    unit_bits = max(1, int(np.ceil(np.log2(max(n_unit, 2)))))
    mask = np.uint64(2**unit_bits - 1)
    key = np.add(t, 0.0).view(np.uint64)  # +0.0 turns -0.0 into 0.0
    key &= ~mask
    for u in range(n_unit):  # a loop over units, not spikes
        key[starts[u]:ends[u]] |= np.uint64(u)
    key.sort(kind="stable")  # timsort: the per-unit runs are already sorted
    units = (key & mask).astype(np.int16 if n_unit <= 2**15 - 1 else np.int32)
    where = np.argsort(units, kind="stable")  # output positions grouped by unit, in order
    times = key.view(np.float64)  # reuse the key buffer for the output
    times[where] = t
    if np.any(times[1:] < times[:-1]):  # two units' spikes within one quantum, misordered
        order = np.argsort(t, kind="stable")
        return t[order], np.repeat(np.arange(n_unit), np.diff(np.append(0, ends)))[order]
    return times, units


def sort_and_count(spike_times: np.ndarray, ends: np.ndarray, edges: np.ndarray,
                   block: int = 1 << 18, threads: int = 1
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All spikes in time order and their bin counts, in one pass over the spikes.

    ``spike_times`` holds per-unit sorted runs ending at ``ends`` (n_unit,), all >= 0 and
    inside ``[edges[0], edges[-1])``. Returns ((n,) float64 times, (n,) int32 unit index,
    (n_time, n_unit) counts as :func:`bin_spikes`). Equal times come out in unit order.

    The grid is cut into blocks of whole bins holding about ``block`` spikes; each block's
    per-unit slices are merged by :func:`_sort_runs`, copied to their place in the output
    and counted there, so temporaries stay at block size and ``threads`` > 1 works on
    blocks in parallel (numpy's sort and ufuncs release the GIL).
    """
    n, n_unit, n_time = spike_times.shape[0], ends.shape[0], edges.shape[0] - 1
    times = np.empty(n, dtype=np.float64)
    units = np.empty(n, dtype=np.int32)
    counts = np.zeros((n_time, n_unit), dtype=np.uint8)
    if n == 0:
        return times, units, counts
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    n_blocks = int(np.clip(-(-n // block), 1, n_time))
    kb = np.unique(np.linspace(0, n_time, n_blocks + 1).round().astype(np.int64))
    # pos[u, b]: first spike of unit u at or after edges[kb[b]] (as bin_spikes' searchsorted)
    pos = np.empty((n_unit, kb.shape[0]), dtype=np.int64)
    for u in range(n_unit):
        pos[u] = starts[u] + np.searchsorted(spike_times[starts[u]:ends[u]], edges[kb])
    if not (np.array_equal(pos[:, 0], starts) and np.array_equal(pos[:, -1], ends)):
        raise ValueError("spikes outside the bin grid")  # callers clip to the session first
    out_at = np.concatenate([[0], np.cumsum((pos[:, 1:] - pos[:, :-1]).sum(axis=0))])
    wide: list[tuple[int, np.ndarray]] = []  # blocks with a count > 255 (rare)

    def merge(b: int) -> None:
        a, z = pos[:, b], pos[:, b + 1]
        blk = np.concatenate([spike_times[a[u]:z[u]] for u in range(n_unit)])
        bt, bu = _sort_runs(blk, np.cumsum(z - a))
        times[out_at[b]:out_at[b + 1]] = bt
        units[out_at[b]:out_at[b + 1]] = bu
        c = bin_spikes(bt, bu, edges[kb[b]:kb[b + 1] + 1], n_unit)
        if c.dtype == counts.dtype:
            counts[kb[b]:kb[b + 1]] = c
        else:
            wide.append((int(kb[b]), c))  # list.append is atomic; written below

    _run(merge, range(kb.shape[0] - 1), threads)
    if wide:
        counts = counts.astype(count_dtype(max(int(c.max()) for _, c in wide)))
        for k, c in wide:
            counts[k:k + c.shape[0]] = c
    return times, units, counts


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
