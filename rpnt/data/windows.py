"""Windows of T consecutive bins: where they may start, and how they are drawn."""

from __future__ import annotations

import numpy as np


def valid_window_starts(ok: np.ndarray, length: int) -> np.ndarray:
    """Start indices ``s`` such that ``ok[s:s+length]`` is all True.

    ``ok`` is a (n_time,) bool mask, e.g. training bins with finite behaviour. Vectorised
    with a cumulative sum, so it is O(n_time) whatever the window length.
    """
    ok = np.asarray(ok, dtype=bool)
    n = ok.shape[0]
    if length <= 0:
        raise ValueError("window length must be positive")
    if n < length:
        return np.zeros(0, dtype=np.int64)
    c = np.concatenate([[0], np.cumsum(ok, dtype=np.int64)])
    full = (c[length:] - c[:-length]) == length  # (n - length + 1,)
    return np.flatnonzero(full).astype(np.int64)


def sample_starts(rng: np.random.Generator, starts: np.ndarray, n: int) -> np.ndarray:
    """Draw ``n`` window starts uniformly (with replacement) from ``starts``."""
    if starts.size == 0:
        raise ValueError("no valid window start: the session has no run of training bins "
                         "as long as one window")
    return starts[rng.integers(0, starts.size, size=n)]


def evenly_spaced(starts: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``starts``, evenly spaced over them (first and last included).

    Fixed validation windows: the same ones at every evaluation, spread over the split.
    """
    if starts.size == 0:
        return starts
    pick = np.linspace(0, starts.size - 1, min(n, starts.size)).round().astype(int)
    return starts[np.unique(pick)]


def gather_windows(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Stack ``x[s:s+length]`` for each start: (n_windows, length, *x.shape[1:])."""
    idx = starts[:, None] + np.arange(length)[None, :]
    return x[idx]


def covering_starts(mask: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Starts of windows (step ``stride``) that cover every True bin of ``mask``.

    Used for evaluation: windows overlap by ``length - stride`` bins and predictions are
    averaged per bin ("stitched"). Windows are clipped to the session, so the last one
    may start earlier than the stride grid.
    """
    mask = np.asarray(mask, dtype=bool)
    n = mask.shape[0]
    if n < length:
        raise ValueError(f"session of {n} bins is shorter than one window of {length}")
    hits = np.flatnonzero(mask)
    if hits.size == 0:
        return np.zeros(0, dtype=np.int64)
    grid = np.arange(0, n - length + 1, stride, dtype=np.int64)
    if grid[-1] != n - length:
        grid = np.append(grid, n - length)
    # keep grid windows that contain at least one masked bin
    c = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    keep = (c[grid + length] - c[grid]) > 0
    return grid[keep]
