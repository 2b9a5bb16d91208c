"""Direct h5py access to the parts of an NWB file that ingest needs.

pynwb builds whole table rows (and decompresses the ragged ``waveforms`` column of DANDI
000688 on every ``units[i]``), so ingest reads the few datasets it needs with h5py: the flat
``units/spike_times`` plus its ``spike_times_index`` (end offsets), ids, the electrodes
region, behaviour series and trial columns. ``waveforms`` is never opened.

Every failure is raised as :class:`rpnt.errors.RpntError` naming the file and object path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from rpnt.errors import RpntError

ELECTRODES = "general/extracellular_ephys/electrodes"
TRIALS = "intervals/trials"
BEHAVIOUR = "processing/behavior"

_SESSION_RE = re.compile(r"sub-(?P<subject>[A-Za-z0-9]+)_ses-(?P<code>[A-Za-z]+)-(?P<date>\d{8})")
TASK_CODES = {"CO": "center_out", "RT": "random_target"}


def open_nwb(path: str | Path) -> h5py.File:
    """Open ``path`` read-only, with a one-line error for non-HDF5 and truncated files."""
    path = Path(path)
    if not path.is_file():
        raise RpntError(f"{path}: no such file")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise RpntError(f"{path}: cannot read the file ({exc})") from exc
    if not is_h5:
        raise RpntError(f"{path}: not an HDF5/NWB file (no HDF5 signature at /); "
                        "re-download it or check the path")
    try:
        f = h5py.File(path, "r")
        list(f.keys())
    except (OSError, KeyError, RuntimeError) as exc:
        raise RpntError(f"{path}: cannot open as HDF5 at / ({exc}); the file is probably "
                        "truncated or corrupt: re-download it") from exc
    return f


def read(f: h5py.File, name: str, sel=slice(None)) -> np.ndarray:
    """Read dataset ``name`` (strings decoded to str objects); errors name the object."""
    try:
        ds = f[name]
        if ds.dtype.kind in "OS" or h5py.check_string_dtype(ds.dtype) is not None:
            return np.asarray(ds.asstr()[sel], dtype=object)
        if sel == slice(None) and ds.ndim:
            out = np.empty(ds.shape, dtype=ds.dtype)  # read straight into one buffer
            ds.read_direct(out)
            return out
        return np.asarray(ds[sel])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RpntError(f"{f.filename}: cannot read {name} ({exc}); the file is probably "
                        "truncated or corrupt: re-download it") from exc


def scalar_str(f: h5py.File, name: str) -> str | None:
    """A scalar string dataset (e.g. ``general/session_id``), or None if absent."""
    if name not in f:
        return None
    v = read(f, name, ())
    v = v.item() if isinstance(v, np.ndarray) else v
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass
class Series:
    """A behaviour series: (n_samples,) timestamps and (n_samples, n_axis) data, float64."""

    path: str
    t: np.ndarray
    data: np.ndarray


def read_series(f: h5py.File, path: str) -> Series:
    """Read a TimeSeries group: ``data`` (scaled by conversion/offset) and its timestamps.

    Timestamps come from ``timestamps`` or from ``starting_time`` and its ``rate``.
    """
    data_ds = f[f"{path}/data"]
    data = read(f, f"{path}/data").astype(np.float64, copy=False)
    conv = float(data_ds.attrs.get("conversion", 1.0))
    off = float(data_ds.attrs.get("offset", 0.0))
    if conv != 1.0 or off != 0.0:
        data = data * conv + off
    if data.ndim == 1:
        data = data[:, None]
    if f"{path}/timestamps" in f:
        t = read(f, f"{path}/timestamps").astype(np.float64, copy=False)
    elif f"{path}/starting_time" in f:
        st = f[f"{path}/starting_time"]
        rate = float(st.attrs["rate"])
        t = float(st[()]) + np.arange(data.shape[0]) / rate
    else:
        raise RpntError(f"{f.filename}: {path} has neither timestamps nor starting_time; "
                        "it is not a valid NWB TimeSeries")
    if t.shape[0] != data.shape[0]:
        raise RpntError(f"{f.filename}: {path} has {data.shape[0]} samples but "
                        f"{t.shape[0]} timestamps; fix the file")
    return Series(path, t, data)


def is_series(f: h5py.File, path: str) -> bool:
    """True if ``path`` is a group holding a ``data`` dataset (a TimeSeries)."""
    obj = f.get(path)
    return isinstance(obj, h5py.Group) and isinstance(obj.get("data"), h5py.Dataset)


@dataclass
class Units:
    """Units table, flat: spikes of unit ``u`` are ``spike_times[ends[u-1]:ends[u]]``."""

    spike_times: np.ndarray  #: (n_spike_total,) float64, per-unit runs
    ends: np.ndarray  #: (n_unit,) int64 end offsets (NWB spike_times_index)
    ids: np.ndarray  #: (n_unit,) str
    area: np.ndarray  #: (n_unit,) str
    site: np.ndarray  #: (n_unit,) str
    xyz: np.ndarray  #: (n_unit, 3) float64, NaN when unknown


# Long anatomical names seen in NWB electrode tables, mapped to the short area labels that
# scenario selectors use.
_AREA_ALIASES = {
    "primary motor cortex": "M1", "m1": "M1", "motor cortex": "M1",
    "dorsal premotor cortex": "PMd", "pmd": "PMd", "premotor cortex": "PMd",
    "primary somatosensory cortex": "S1", "area 2": "S1",
}


def _area(location: str, group_name: str) -> str:
    loc = (location or "").strip()
    if loc.lower() in _AREA_ALIASES:
        return _AREA_ALIASES[loc.lower()]
    if loc and loc.lower() not in {"unknown", "none", "n/a", "nan"}:
        return loc
    g = (group_name or "").strip()
    if g.startswith("electrode_group_"):
        return g[len("electrode_group_"):]
    return g or "unknown"


def read_units(f: h5py.File) -> Units:
    """Read spikes, ids and each unit's first electrode (area, site, x/y/z)."""
    fn = f.filename
    if "units" not in f:
        raise RpntError(f"{fn}: no units table at /units; this file has no sorted spikes "
                        "(an NLB test-split file?) and cannot be ingested")
    for name in ("units/spike_times", "units/spike_times_index"):
        if name not in f:
            raise RpntError(f"{fn}: /units has no {name.split('/')[1]}; fix the file")
    times = read(f, "units/spike_times").astype(np.float64, copy=False)
    ends = read(f, "units/spike_times_index").astype(np.int64)
    n = ends.shape[0]
    if n and (np.any(np.diff(ends) < 0) or ends[-1] != times.shape[0] or ends[0] < 0):
        raise RpntError(f"{fn}: units/spike_times_index is inconsistent with "
                        f"units/spike_times ({times.shape[0]} spikes); fix the file")
    ids = read(f, "units/id") if "units/id" in f else np.arange(n)
    ids = np.array([str(i) for i in ids.tolist()], dtype=object)
    if ids.shape[0] != n:
        raise RpntError(f"{fn}: units/id has {ids.shape[0]} rows but units/spike_times_index "
                        f"has {n}; fix the file")
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        dup = ", ".join(uniq[counts > 1][:5].tolist())
        raise RpntError(f"{fn}: units/id has duplicate ids ({dup}); unit identity would be "
                        "ambiguous: give every unit a unique id")
    area = np.full(n, "unknown", dtype=object)
    site = np.full(n, "unknown", dtype=object)
    xyz = np.full((n, 3), np.nan)
    if "units/electrodes" in f and ELECTRODES in f and n:
        region = read(f, "units/electrodes").astype(np.int64)
        if "units/electrodes_index" in f:
            eends = read(f, "units/electrodes_index").astype(np.int64)
            starts = np.concatenate([[0], eends[:-1]])
            has = eends > starts
        else:
            starts, has = np.arange(n), np.ones(n, bool)
        first = region[np.minimum(starts, max(region.shape[0] - 1, 0))]
        loc, grp = _electrode_labels(f)
        for i in np.flatnonzero(has):  # one iteration per unit, not per spike
            e = first[i]
            area[i] = _area(loc[e], grp[e])
            site[i] = grp[e] or "unknown"
        for k, ax in enumerate("xyz"):
            name = f"{ELECTRODES}/{ax}"
            if name in f:
                col = read(f, name).astype(np.float64)
                xyz[has, k] = col[first[has]]
    return Units(times, ends, ids, area, site, xyz)


def _electrode_labels(f: h5py.File) -> tuple[np.ndarray, np.ndarray]:
    n = f[f"{ELECTRODES}/id"].shape[0]
    loc = (read(f, f"{ELECTRODES}/location") if f"{ELECTRODES}/location" in f
           else np.full(n, "", dtype=object))
    if f"{ELECTRODES}/group_name" in f:
        grp = read(f, f"{ELECTRODES}/group_name")
    elif f"{ELECTRODES}/group" in f:
        refs = f[f"{ELECTRODES}/group"][:]
        grp = np.array([f[r].name.rsplit("/", 1)[-1] for r in refs], dtype=object)
    else:
        grp = np.full(n, "", dtype=object)
    return loc, grp


def trial_columns(f: h5py.File) -> set[str]:
    """Names of the trials table's columns (empty if there is no trials table)."""
    if TRIALS not in f:
        return set()
    return {k for k in f[TRIALS] if isinstance(f[TRIALS][k], h5py.Dataset)}


def trial_col(f: h5py.File, name: str) -> np.ndarray:
    return read(f, f"{TRIALS}/{name}")


@dataclass
class Meta:
    session: str
    subject: str
    task_code: str | None
    date: str  #: ISO date or ""


def read_meta(f: h5py.File, path: Path) -> Meta:
    """Session id, subject and date from NWB metadata, else from the file name (not the path)."""
    sid = scalar_str(f, "general/session_id")
    name_match = _SESSION_RE.search(Path(path).name)
    m = _SESSION_RE.search(sid) if sid else None
    m = m or name_match
    session = sid or (name_match.group(0) if name_match else Path(path).stem)
    subject = scalar_str(f, "general/subject/subject_id") or (m.group("subject") if m else "")
    date = ""
    start = scalar_str(f, "session_start_time")
    if m:
        d = m.group("date")
        date = f"{d[:4]}-{d[4:6]}-{d[6:]}"
    elif start:
        date = start[:10]
    return Meta(session, subject or "unknown", m.group("code") if m else None, date)
