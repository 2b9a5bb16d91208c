"""Reading stores: :func:`open_store` (lazily, with xarray) and :func:`load_session` (into
a :class:`rpnt.data.session.SessionData`, the form training, peers and evaluation read),
and :func:`time_order`: a v2 store keeps raw spikes grouped by unit, sessions hold them in
time order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.data.session import SessionData
from rpnt.errors import RpntError
from rpnt.store.schema import validate


def _merge_runs(t: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-unit sorted runs of ``t`` (>= 0): ((n,) float64 times, (n,) unit index).

    One sort of uint64 keys (the time's bits with the unit index in the lowest mantissa
    bits; non-negative float64s order like their bits) orders the spikes; the exact times
    are then put back by unit, as each unit's spikes keep their run order. Equal times come
    out in unit order. Spikes of different units closer than the replaced bits (~1e-10 s at
    1 h) may come out in unit order; that is detected and a stable argsort used instead.
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
    if np.any(times[1:] < times[:-1]):  # two units' spikes within one key quantum
        order = np.argsort(t, kind="stable")
        unit = np.repeat(np.arange(n_unit, dtype=np.int32), np.asarray(ends) - starts)
        return t[order], unit[order]
    return times, units.astype(np.int32)


def time_order(spike_times: np.ndarray, spike_unit: np.ndarray, threads: int = 2,
               block: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Raw spikes in time order (equal times in unit order): ((n,) float64, (n,) int32).

    Schema v2 stores them grouped by unit (each unit's spikes in time order); this merges
    the units' runs, block by block of time (about ``block`` spikes each, so the merge
    works in cache), in ``threads`` threads (numpy's sort releases the GIL); the result
    does not depend on either. Any other order is sorted with a stable argsort.
    """
    t = np.asarray(spike_times, dtype=np.float64)
    u = np.asarray(spike_unit).astype(np.int32, copy=False)
    n = t.shape[0]
    grouped = n and np.all(u[1:] >= u[:-1]) and u[0] >= 0 and t.min() >= 0
    if grouped:
        ends = np.searchsorted(u, np.arange(int(u[-1]) + 1), side="right")
        starts = np.concatenate([[0], ends[:-1]])
        # each unit's run must be in time order (a decrease only where a new unit starts)
        grouped = not np.any(np.isin(np.flatnonzero(t[1:] < t[:-1]) + 1, starts, invert=True))
    if grouped:
        bounds = np.linspace(t.min(), np.nextafter(t.max(), np.inf), max(1, -(-n // block)) + 1)
        # pos[w, b]: first spike of unit w at or after bounds[b]
        pos = np.stack([a + np.searchsorted(t[a:z], bounds) for a, z in
                        zip(starts, ends, strict=True)])  # a loop over units, not spikes
        out_at = np.concatenate([[0], np.cumsum((pos[:, 1:] - pos[:, :-1]).sum(axis=0))])
        times, units = np.empty(n), np.empty(n, dtype=np.int32)

        def merge(b: int) -> None:
            lo, hi = pos[:, b], pos[:, b + 1]
            bt, bu = _merge_runs(np.concatenate([t[x:y] for x, y in zip(lo, hi, strict=True)]),
                                 np.cumsum(hi - lo))
            times[out_at[b]:out_at[b + 1]] = bt
            units[out_at[b]:out_at[b + 1]] = bu

        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(merge, range(bounds.shape[0] - 1)))
        else:
            for b in range(bounds.shape[0] - 1):
                merge(b)
        if not np.any(times[1:] < times[:-1]):
            return times, units
    # Unsorted runs, negative times, or two units' spikes closer than the key's resolution.
    order = np.argsort(t, kind="stable")
    return t[order], u[order]


def open_store(path: str | Path):
    """Open a store lazily as an ``xr.Dataset`` (checked against the schema)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise RpntError(f"{path}: no such store; run rpnt ingest first")
    try:
        ds = xr.open_zarr(path, consolidated=True, zarr_format=3)
    except (OSError, KeyError, ValueError) as exc:
        raise RpntError(f"{path}: cannot open as a Zarr v3 store ({exc}); re-run rpnt "
                        "ingest") from exc
    validate(ds, str(path))
    return ds


def as_str(a) -> np.ndarray:
    """A fixed-width ``<U`` numpy array from a store string array (zarr v3 gives StringDType)."""
    return np.array([str(v) for v in np.asarray(a).tolist()], dtype=str)


def load_session(path: str | Path, lazy: bool = False) -> SessionData:
    """Read a whole store into memory as :class:`SessionData` (numpy arrays; raw spikes in
    time order whatever the schema version).

    ``lazy``: no raw spikes (``spike_times``/``spike_unit`` None), and ``spike_counts`` a
    :class:`rpnt.data.lazy.LazyCounts` that reads windows from the store on demand
    through the process's bounded chunk cache (pretraining over many sessions).
    """
    ds = open_store(path)
    try:
        if lazy:
            ds = ds.drop_vars(["spike_times", "spike_unit", "spike_counts"])
        ds = ds.load()
        attrs = dict(ds.attrs)
        xyz = np.stack([ds["unit_x"].values, ds["unit_y"].values, ds["unit_z"].values],
                       axis=1).astype(np.float64)
        if lazy:
            from rpnt.data.lazy import LazyCounts

            counts: Any = LazyCounts(path)
            spike_times = spike_unit = None
        else:
            counts = ds["spike_counts"].values
            spike_times = ds["spike_times"].values.astype(np.float64)
            spike_unit = ds["spike_unit"].values.astype(np.int32)
            if int(attrs["schema_version"]) >= 2:
                spike_times, spike_unit = time_order(spike_times, spike_unit)
        return SessionData(
            session=str(attrs["session"]), subject=str(attrs["subject"]),
            task=str(attrs["task"]), recording_date=str(attrs["recording_date"]),
            dataset=str(attrs["dataset"]), bin_size_s=float(attrs["bin_size_s"]),
            time=ds["time"].values.astype(np.float64),
            spike_counts=counts,
            velocity=ds["velocity"].values.astype(np.float32),
            split=ds["split"].values.astype(np.int8),
            eval_mask=ds["eval_mask"].values.astype(bool),
            unit_id=as_str(ds["unit_id"].values), unit_area=as_str(ds["unit_area"].values),
            unit_site=as_str(ds["unit_site"].values), unit_xyz=xyz,
            trial_start=ds["trial_start"].values.astype(np.float64),
            trial_stop=ds["trial_stop"].values.astype(np.float64),
            trial_split=as_str(ds["trial_split"].values),
            position=(ds["position"].values.astype(np.float32) if "position" in ds else None),
            trial_condition=(ds["trial_condition"].values.astype(np.int16)
                             if "trial_condition" in ds else None),
            spike_times=spike_times,
            spike_unit=spike_unit,
            axis=as_str(ds["axis"].values),
            attrs=attrs,
        )
    finally:
        ds.close()
