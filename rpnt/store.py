"""Zarr store schema v1: one session per store (see docs/store-schema.md).

``write_store`` validates a Dataset against the schema and writes it atomically (temporary
sibling, rename); ``open_store`` opens it lazily with xarray; ``load_session`` reads it all
into a :class:`rpnt.data.session.SessionData` of numpy arrays, the only form training,
peers and evaluation consume.

Consolidated metadata: written (so a plain ``xr.open_zarr(path)`` opens the store in one
read and without a fallback warning). It is not part of the Zarr v3 spec, and zarr warns
about that on every write; we silence exactly that warning here, once, deliberately.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.atomic import atomic_path
from rpnt.data.session import SPLIT_CODES, SessionData
from rpnt.errors import RpntError

SCHEMA_VERSION = 1
CHUNK_BYTES = 1 << 21

#: variable -> (dims, dtype kind) every v1 store holds (``position`` is optional).
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


def validate(ds, where: str = "dataset") -> None:
    """Raise RpntError unless ``ds`` (xr.Dataset) follows schema v1."""
    missing = [v for v in VARIABLES if v not in ds.variables]
    missing += [c for c in COORDS if c not in ds.variables]
    missing += [a for a in REQUIRED_ATTRS if a not in ds.attrs]
    if missing:
        raise RpntError(f"{where}: not an rpnt store v1: missing {', '.join(missing)}; "
                        "re-run rpnt ingest")
    if int(ds.attrs["schema_version"]) != SCHEMA_VERSION:
        raise RpntError(f"{where}: store schema version {ds.attrs['schema_version']} is not "
                        f"{SCHEMA_VERSION}; re-run rpnt ingest with this rpnt")
    for name, (dims, kind) in VARIABLES.items():
        var = ds[name]
        ok_kind = var.dtype.kind in ("OUT" if kind == "T" else kind)
        if tuple(var.dims) != dims or not ok_kind:
            raise RpntError(f"{where}: {name} has dims {var.dims} dtype {var.dtype}, schema v1 "
                            f"wants {dims} of kind {kind!r}")


def _encoding(ds) -> dict[str, dict[str, Any]]:
    from zarr.codecs import BloscCodec, BloscShuffle

    # lz4 + bit shuffle: near memory-copy speed; bit shuffle halves the size of the mostly
    # 0/1 uint8 counts compared with byte shuffle (measured: 8 vs 16 MB, 2x faster) and
    # matches it on sorted float64 spike times.
    fast = BloscCodec(cname="lz4", clevel=1, shuffle=BloscShuffle.bitshuffle)
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if var.dtype.kind in "OUT":
            continue
        e: dict[str, Any] = {"compressors": (fast,)}
        # ~2 MB chunks: zarr encodes several chunks at once, each with a raw copy and an
        # encoded buffer, so chunk size bounds the memory a write needs on top of the data.
        row = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:], dtype=np.int64)))
        if var.dims and var.dims[0] in ("spike", "time"):
            e["chunks"] = (max(1, min(var.shape[0], CHUNK_BYTES // row)), *var.shape[1:])
        enc[name] = e
    return enc


def write_store(ds, path: str | Path, *, force: bool = False) -> Path:
    """Validate ``ds`` and write it as a Zarr v3 store at ``path`` (atomic; ``force`` replaces)."""
    path = Path(path)
    validate(ds, str(path))
    with atomic_path(path, force=force) as tmp, warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Consolidated metadata is currently not part")
        # write_empty_chunks: skip zarr's per-chunk "all equal to the fill value?" scan,
        # which costs more than the write itself for uint8 counts.
        ds.to_zarr(tmp, mode="w-", zarr_format=3, consolidated=True, encoding=_encoding(ds),
                   write_empty_chunks=True)
    return path


def open_store(path: str | Path):
    """Open a store lazily as an ``xr.Dataset`` (checked against schema v1)."""
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


def load_session(path: str | Path) -> SessionData:
    """Read a whole store into memory as :class:`SessionData` (numpy arrays)."""
    ds = open_store(path)
    try:
        ds = ds.load()
        attrs = dict(ds.attrs)
        xyz = np.stack([ds["unit_x"].values, ds["unit_y"].values, ds["unit_z"].values],
                       axis=1).astype(np.float64)
        return SessionData(
            session=str(attrs["session"]), subject=str(attrs["subject"]),
            task=str(attrs["task"]), recording_date=str(attrs["recording_date"]),
            dataset=str(attrs["dataset"]), bin_size_s=float(attrs["bin_size_s"]),
            time=ds["time"].values.astype(np.float64),
            spike_counts=ds["spike_counts"].values,
            velocity=ds["velocity"].values.astype(np.float32),
            split=ds["split"].values.astype(np.int8),
            eval_mask=ds["eval_mask"].values.astype(bool),
            unit_id=as_str(ds["unit_id"].values), unit_area=as_str(ds["unit_area"].values),
            unit_site=as_str(ds["unit_site"].values), unit_xyz=xyz,
            trial_start=ds["trial_start"].values.astype(np.float64),
            trial_stop=ds["trial_stop"].values.astype(np.float64),
            trial_split=as_str(ds["trial_split"].values),
            position=(ds["position"].values.astype(np.float32) if "position" in ds else None),
            spike_times=ds["spike_times"].values.astype(np.float64),
            spike_unit=ds["spike_unit"].values.astype(np.int32),
            attrs=attrs,
        )
    finally:
        ds.close()
