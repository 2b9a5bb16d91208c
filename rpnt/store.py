"""Zarr store schema v2: one session per store (see docs/store-schema.md).

``write_store`` validates a store's content against the schema and writes it atomically
(temporary sibling, rename) as a Zarr v3 group that ``xr.open_zarr`` opens with its
consolidated metadata; ``open_store`` opens it lazily with xarray; ``load_session`` reads
it all into a :class:`rpnt.data.session.SessionData` of numpy arrays, the only form
training, peers and evaluation consume. Stores of schema v1 (raw spikes in time order)
are still read.

The writer writes the Zarr v3 format itself (JSON metadata and Blosc-compressed chunk
files, exactly the layout xarray's ``to_zarr`` produces, consolidated metadata included)
instead of going through xarray and zarr: importing those two costs a fresh ``rpnt
ingest`` process more than the ingest itself. Content is handed over as a
:class:`StoreData` (plain numpy arrays) or an ``xr.Dataset``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from rpnt.atomic import atomic_path
from rpnt.data.session import SPLIT_CODES, SessionData
from rpnt.errors import RpntError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  #: v1 keeps the raw spikes in time order, v2 grouped by unit
CHUNK_BYTES = 1 << 22  #: uncompressed bytes per chunk along ``time`` / ``spike``

#: variable -> (dims, dtype kind) every store holds (``position`` is optional).
VARIABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "spike_counts": (("time", "unit"), "u"),
    "velocity": (("time", "axis"), "f"),
    "split": (("time",), "i"),
    "eval_mask": (("time",), "b"),
    "trial_start": (("trial",), "f"),
    "trial_stop": (("trial",), "f"),
    "trial_go_cue": (("trial",), "f"),
    "trial_result": (("trial",), "T"),
    "trial_valid": (("trial",), "b"),
    "trial_split": (("trial",), "T"),
    "spike_times": (("spike",), "f"),
    "spike_unit": (("spike",), "i"),
}
COORDS = ("time", "axis", "unit_id", "unit_area", "unit_site", "unit_x", "unit_y", "unit_z")
REQUIRED_ATTRS = (
    "schema_version", "dataset", "session", "subject", "task", "recording_date", "bin_size_s",
    "source_path", "source_sha256", "dandiset_id", "dandiset_version", "adapter",
    "rpnt_version", "git_commit", "split_seed", "split_fractions", "split_padding_s",
)
SPLIT_ATTRS = {
    "flag_values": [SPLIT_CODES[k] for k in ("none", "train", "valid", "test")],
    "flag_meanings": "none train valid test",
}


class Var(NamedTuple):
    """One variable: dimension names, a numpy array of that many dims, attributes."""

    dims: tuple[str, ...]
    data: np.ndarray
    attrs: dict[str, Any] | None = None


class Runs:
    """A 1-D array made of runs (``values[i]`` repeated ``counts[i]`` times), built slice by
    slice: the writer asks for one chunk at a time, so ingest never holds the whole
    ``spike_unit`` (4 bytes per spike, one run per unit) in memory."""

    def __init__(self, values: np.ndarray, counts: np.ndarray) -> None:
        self.values = np.asarray(values)
        self.counts = np.asarray(counts, dtype=np.int64)
        self.ends = np.cumsum(self.counts)
        self.dtype = self.values.dtype
        self.shape = (int(self.ends[-1]) if self.ends.size else 0,)
        self.ndim, self.size = 1, self.shape[0]

    def __getitem__(self, sl: slice) -> np.ndarray:
        lo, hi, step = sl.indices(self.size)
        if step != 1:
            raise IndexError("Runs supports contiguous slices only")
        r0 = int(np.searchsorted(self.ends, lo, side="right"))  # first run ending after lo
        r1 = int(np.searchsorted(self.ends, hi, side="left")) + 1  # up to the run holding hi-1
        ends = np.minimum(self.ends[r0:r1], hi)
        starts = np.maximum(self.ends[r0:r1] - self.counts[r0:r1], lo)
        return np.repeat(self.values[r0:r1], np.maximum(ends - starts, 0))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.repeat(self.values, self.counts).astype(dtype or self.dtype, copy=False)


@dataclass
class StoreData:
    """A store's content as numpy arrays (or :class:`Runs`), what :func:`write_store`
    writes (no xarray)."""

    data_vars: dict[str, Var]
    coords: dict[str, Var]
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dataset(cls, ds) -> StoreData:
        """From an ``xr.Dataset`` (values loaded)."""
        def conv(v):
            return Var(tuple(v.dims), np.asarray(v.values), dict(v.attrs))
        return cls({n: conv(v) for n, v in ds.data_vars.items()},
                   {n: conv(v) for n, v in ds.coords.items()}, dict(ds.attrs))

    def to_dataset(self):
        """As an ``xr.Dataset``."""
        import xarray as xr

        def conv(v: Var):
            return v.dims, np.asarray(v.data), dict(v.attrs or {})
        return xr.Dataset({n: conv(v) for n, v in self.data_vars.items()},
                          coords={n: conv(v) for n, v in self.coords.items()},
                          attrs=dict(self.attrs))


def validate(ds, where: str = "dataset") -> None:
    """Raise RpntError unless ``ds`` (``xr.Dataset`` or :class:`StoreData`) follows the
    schema of a readable version (its ``schema_version`` attribute)."""
    if isinstance(ds, StoreData):
        variables = {n: (v.dims, v.data.dtype) for n, v in {**ds.coords, **ds.data_vars}.items()}
    else:
        variables = {n: (tuple(v.dims), v.dtype) for n, v in ds.variables.items()}
    missing = [v for v in VARIABLES if v not in variables]
    missing += [c for c in COORDS if c not in variables]
    missing += [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing:
        raise RpntError(f"{where}: not an rpnt store: missing {', '.join(missing)}; "
                        "re-run rpnt ingest")
    if int(ds.attrs["schema_version"]) not in READABLE_VERSIONS:
        raise RpntError(f"{where}: store schema version {ds.attrs['schema_version']} is not "
                        f"one this rpnt reads ({', '.join(map(str, READABLE_VERSIONS))}); "
                        "re-run rpnt ingest with this rpnt")
    for name, (dims, kind) in VARIABLES.items():
        vdims, dtype = variables[name]
        ok_kind = dtype.kind in ("OUT" if kind == "T" else kind)
        if tuple(vdims) != dims or not ok_kind:
            raise RpntError(f"{where}: {name} has dims {vdims} dtype {dtype}, the schema "
                            f"wants {dims} of kind {kind!r}")


# ---- Zarr v3 writer ----------------------------------------------------------------------

_NAN_FILL = "AAAAAAAA+H8="  # xarray's _FillValue attribute for floats: base64 of float64 NaN


def _json(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays turned into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _is_str(a: np.ndarray) -> bool:
    return a.dtype.kind in "OUT"


def _chunk_rows(a: np.ndarray) -> int:
    """Rows per chunk along the first dimension: about CHUNK_BYTES of raw data."""
    if a.ndim == 0 or _is_str(a):
        return max(1, a.shape[0] if a.ndim else 1)
    row = max(1, a.dtype.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)))
    return max(1, min(a.shape[0], CHUNK_BYTES // row))


def _codecs(a: np.ndarray) -> list[dict]:
    if _is_str(a):
        return [{"name": "vlen-utf8", "configuration": {}}]
    size = a.dtype.itemsize
    raw = ({"name": "bytes"} if size == 1 else
           {"name": "bytes", "configuration": {"endian": "little"}})
    # lz4 level 1: near memory-copy speed. Bit shuffle for 1-byte types (the mostly 0/1
    # uint8 counts shrink 2.4x more than with byte shuffle), byte shuffle for the rest
    # (the same size for spike times and unit indices, at less CPU).
    shuffle = "bitshuffle" if size == 1 else "shuffle"
    return [raw, {"name": "blosc", "configuration": {
        "typesize": size, "cname": "lz4", "clevel": 1, "shuffle": shuffle, "blocksize": 0}}]


def _array_meta(v: Var, coordinates: str | None) -> dict:
    a = v.data
    attrs = _json(dict(v.attrs or {}))
    if a.dtype.kind == "f":
        attrs["_FillValue"] = _NAN_FILL
        fill: Any = "NaN"
    elif a.dtype.kind == "b":
        fill = False
    elif _is_str(a):
        fill = ""
    else:
        fill = 0
    if coordinates:
        attrs["coordinates"] = coordinates
    return {
        "shape": list(a.shape),
        "data_type": "string" if _is_str(a) else a.dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {
            "chunk_shape": [_chunk_rows(a), *a.shape[1:]]}},
        # "." keeps every chunk file directly in the array's folder (c.0, c.0.0): "/" (what
        # xarray writes) makes a folder per chunk row, about 40 more to create per store
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
        "fill_value": fill, "codecs": _codecs(a), "attributes": attrs,
        "dimension_names": list(v.dims), "zarr_format": 3, "node_type": "array",
        "storage_transformers": [],
    }


def _vlen_utf8(a: np.ndarray) -> bytes:
    """Zarr's vlen-utf8 encoding: item count, then (byte length, UTF-8 bytes) per item."""
    items = [str(s).encode() for s in a.tolist()]
    out = [np.uint32(len(items)).tobytes()]
    for b in items:
        out += [np.uint32(len(b)).tobytes(), b]
    return b"".join(out)


def _encode(a: np.ndarray, blosc) -> bytes:
    if _is_str(a):
        return _vlen_utf8(a)
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    shuffle = blosc.BITSHUFFLE if a.dtype.itemsize == 1 else blosc.SHUFFLE
    return blosc.compress(a, b"lz4", 1, shuffle)


def _write_zarr(content: StoreData, root: Path, threads: int) -> None:
    """Write ``content`` as a Zarr v3 group at ``root`` (the layout of ``xr.to_zarr``)."""
    from numcodecs import blosc

    variables = {**content.coords, **content.data_vars}
    dim_names = {d for v in variables.values() for d in v.dims}
    aux = {n: v for n, v in content.coords.items() if n not in dim_names}  # non-index coords
    used: set[str] = set()
    metas = {}
    for name, v in variables.items():
        coords = None
        if name in content.data_vars:
            mine = sorted(c for c, cv in aux.items() if set(cv.dims) <= set(v.dims))
            used.update(mine)
            coords = " ".join(mine) or None
        metas[name] = _array_meta(v, coords)
    attrs = _json(dict(content.attrs))
    if set(aux) - used:
        attrs["coordinates"] = " ".join(sorted(set(aux) - used))
    jobs = []
    for name, v in variables.items():
        d = root / name
        d.mkdir(parents=True)
        (d / "zarr.json").write_text(json.dumps(metas[name]))
        a, rows = v.data, metas[name]["chunk_grid"]["configuration"]["chunk_shape"][0]
        if a.size == 0:
            continue
        for i, lo in enumerate(range(0, a.shape[0], rows)):
            key = ".".join(["c", str(i)] + ["0"] * (a.ndim - 1))
            chunk = a[lo:lo + rows]
            if chunk.shape[0] < rows:  # Zarr stores edge chunks whole, padded with the fill
                pad = np.full((rows, *a.shape[1:]), np.nan if a.dtype.kind == "f" else 0,
                              dtype=a.dtype)
                pad[:chunk.shape[0]] = chunk
                chunk = pad
            jobs.append((d / key, chunk))

    def write_chunk(job) -> None:
        path, chunk = job
        path.write_bytes(_encode(chunk, blosc))

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(write_chunk, jobs))  # re-raises a worker's exception
    else:
        for job in jobs:
            write_chunk(job)
    group = {"attributes": attrs, "zarr_format": 3, "node_type": "group",
             "consolidated_metadata": {"kind": "inline", "must_understand": False,
                                       "metadata": metas}}
    (root / "zarr.json").write_text(json.dumps(group))


def write_store(ds, path: str | Path, *, force: bool = False, threads: int = 1) -> Path:
    """Validate ``ds`` (:class:`StoreData` or ``xr.Dataset``) and write it as a Zarr v3
    store at ``path`` (atomic; ``force`` replaces; ``threads`` compress chunks in
    parallel, the bytes written do not depend on it)."""
    path = Path(path)
    content = ds if isinstance(ds, StoreData) else StoreData.from_dataset(ds)
    validate(content, str(path))
    with atomic_path(path, force=force) as tmp:
        _write_zarr(content, tmp, max(1, threads))
    return path


# ---- readers -----------------------------------------------------------------------------

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
