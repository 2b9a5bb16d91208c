"""What a store holds (schema v2, docs/store-schema.md): its variables, coordinates and
attributes, the in-memory form the writer takes (:class:`StoreData` of :class:`Var` and
:class:`Runs`), and :func:`validate`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from rpnt.data.session import SPLIT_CODES
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
