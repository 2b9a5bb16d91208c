"""Spike counts read from a Zarr store on demand, through one bounded chunk cache.

A :class:`LazyCounts` stands for a store's ``spike_counts`` (n_time, n_unit) array where
training reads windows of it: indexing it with bin indices (any shape, or a bool mask
over bins) decodes only the chunks those bins fall in, and decoded chunks are kept in a
least-recently-used cache shared by every lazy array of the process, bounded in bytes
(:data:`CACHE`, ``RPNT_STORE_CACHE_MB``, default 64 MB). Pretraining over many sessions
thus holds at most the cache, not every session's counts (docs/speed.md).

``counts[:, keep]`` selects units without reading anything (a held-out area removed);
``np.asarray(counts)`` reads the whole array (for code that needs it all at once).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.errors import RpntError


class ChunkCache:
    """Decoded chunks by (array path, chunk index), least recently used evicted first."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.bytes = 0
        self.reads = 0  #: chunks decoded (cache misses)
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int], load: Any) -> np.ndarray:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        chunk = load()
        with self._lock:
            self.reads += 1
            self._items[key] = chunk
            self.bytes += chunk.nbytes
            while self.bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self.bytes -= old.nbytes
        return chunk

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


#: The process's cache of decoded count chunks.
CACHE = ChunkCache(int(float(os.environ.get("RPNT_STORE_CACHE_MB", "64")) * 2**20))


class LazyCounts:
    """``spike_counts`` of the store at ``path`` (a ``.zarr`` directory), read on demand.

    ``units``: indices of the units this view shows (None: all).
    """

    def __init__(self, path: str | Path, units: np.ndarray | None = None,
                 cache: ChunkCache | None = None):
        import zarr

        self.path = str(Path(path) / "spike_counts")
        try:
            self._array = zarr.open_array(self.path, mode="r")
        except Exception as exc:
            raise RpntError(f"{path}: cannot read spike_counts lazily ({exc}); re-run "
                            "rpnt ingest") from exc
        self._rows = int(self._array.chunks[0])
        n_time, n_unit = self._array.shape
        self.units = None if units is None else np.asarray(units, np.int64)
        self.shape = (int(n_time), n_unit if units is None else int(self.units.size))
        self.dtype = self._array.dtype
        self.ndim = 2
        self.cache = CACHE if cache is None else cache

    def __len__(self) -> int:
        return self.shape[0]

    def _chunk(self, k: int) -> np.ndarray:
        def load() -> np.ndarray:
            return np.asarray(self._array[k * self._rows:(k + 1) * self._rows])
        return self.cache.get((self.path, k), load)

    def _rows_of(self, idx: np.ndarray) -> np.ndarray:
        """Counts at bin indices ``idx`` (any shape): (*idx.shape, n_unit)."""
        flat = idx.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= self.shape[0]):
            raise IndexError(f"bin index out of range 0..{self.shape[0] - 1}")
        out = np.empty((flat.size, self._array.shape[1]), self.dtype)
        which = flat // self._rows
        for k in np.unique(which):
            sel = which == k
            out[sel] = self._chunk(int(k))[flat[sel] - k * self._rows]
        if self.units is not None:
            out = out[:, self.units]
        return out.reshape(*idx.shape, self.shape[1])

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            rows, cols = (*key, slice(None))[:2]
            if isinstance(rows, slice) and rows == slice(None):
                cols_idx = np.arange(self.shape[1])[cols]
                base = np.arange(self._array.shape[1]) if self.units is None else self.units
                return LazyCounts(Path(self.path).parent, base[cols_idx], self.cache)
            return self[rows][..., cols]
        if isinstance(key, slice):
            key = np.arange(self.shape[0])[key]
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (self.shape[0],):
                raise IndexError(f"bool mask of shape {key.shape} for {self.shape[0]} bins")
            key = np.flatnonzero(key)
        elif key.ndim == 0:
            return self._rows_of(key.reshape(1))[0]
        return self._rows_of(key.astype(np.int64))

    def astype(self, dtype: Any) -> np.ndarray:
        """The whole array, read, as ``dtype``."""
        return self.__array__(dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # read straight from the store, not chunk by chunk through the shared cache,
        # which would push out the chunks training is reading
        whole = np.asarray(self._array[:])
        if self.units is not None:
            whole = whole[:, self.units]
        return whole if dtype is None else whole.astype(dtype, copy=False)
