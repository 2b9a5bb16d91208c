"""The FALCON layouts (DANDI 000941 M1, 000953 M2, 000954 H1) as a :class:`Source`.

FALCON files are already binned at 20 ms: one covariate sample per bin, with the bins'
timestamps. The store keeps exactly FALCON's own reading
(``falcon_challenge.dataloaders.load_nwb``):

- M2: ``acquisition/finger_vel``, a BehavioralTimeSeries of one TimeSeries per finger
  group (columns in the container's order, i.e. by name), whose timestamps are bin
  *starts*;
- M1: ``acquisition/preprocessed_emg``, one TimeSeries per muscle (16), timestamps are
  bin *ends*;
- H1: ``acquisition/OpenLoopKinematicsVelocity`` (n, 7); the bins end at
  ``offset + arange(n) * rate`` of ``acquisition/OpenLoopKinematics`` (the data's
  ``offset`` and the ``starting_time``'s ``rate`` attribute, used as a period, as
  ``load_nwb`` does); trials are the runs of ``acquisition/TrialNum``.

``acquisition/eval_mask`` (H1 files of the older format: not ``Blacklist``) is the
store's ``eval_mask``. Spike counts follow ``bin_units``: bin ``k`` is
``[end_k - 0.02, end_k)`` (the last one closed, like ``np.histogram``); where two bin ends
are further apart than 0.02 s the gap gets a padding bin that is counted and dropped,
so each bin holds the 20 ms before its end. The file's split is in its name
(``sub-MonkeyN-held-out-calib_ses-...``) and is checked against the registry entry's
held-in / held-out session keys (those of ``falcon_challenge/evaluator.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from rpnt.errors import RpntError
from rpnt.nwb import read as nwb_read
from rpnt.nwb.read import Meta, Series
from rpnt.registry.naming import parse_session_id, session_id_from_asset_path

FALCON_BIN_S = 0.02  #: FALCON's bin width (falcon_challenge FalconConfig.bin_size_ms)
ACQ = "acquisition"
#: layout -> (covariate object, its timestamps are bin starts, store units, task)
LAYOUTS: dict[str, tuple[str, bool, str, str]] = {
    "m2": (f"{ACQ}/finger_vel", True, "AU/bin", "finger"),
    "m1": (f"{ACQ}/preprocessed_emg", False, "mV (rectified, filtered)", "reach_grasp"),
    "h1": (f"{ACQ}/OpenLoopKinematicsVelocity", False, "AU/bin", "open_loop_7d"),
}


@dataclass
class FileGrid:
    """Bins given by the file: ``edges`` (m + 1,) over all bins, padding included, and
    ``keep`` (m,) bool (False for a padding bin); ``eval_mask`` per kept bin."""

    edges: np.ndarray
    keep: np.ndarray
    eval_mask: np.ndarray


def detect_layout(f: h5py.File) -> str | None:
    """``m2`` / ``m1`` / ``h1`` by the covariate object present, else None."""
    return next((k for k, (path, *_rest) in LAYOUTS.items() if path in f), None)


def bin_edges(stamps: np.ndarray, bin_s: float = FALCON_BIN_S,
              stamps_are_starts: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Edges (m + 1,) and ``keep`` (m,) of ``bin_units``' bins for sample ``stamps``.

    Bin ends are the stamps (plus ``bin_s`` when they are starts). If not every interval
    between ends is close to ``bin_s``, an interval longer than ``bin_s`` gets a padding
    bin ending ``bin_s`` before the next end (kept False), so every kept bin is the
    ``bin_s`` before its end; shorter intervals stay short bins.
    """
    ends = np.asarray(stamps, dtype=np.float64) + (bin_s if stamps_are_starts else 0.0)
    if ends.ndim != 1 or ends.size == 0:
        raise RpntError("FALCON bins: no timestamps")
    gaps = np.diff(ends)
    if (gaps <= 0).any():
        raise RpntError("FALCON bins: the bin timestamps do not increase")
    keep = np.ones(ends.size, bool)
    if not np.allclose(gaps, bin_s):
        pad = np.flatnonzero(~np.isclose(gaps, bin_s) & (gaps > bin_s)) + 1
        ends = np.insert(ends, pad, ends[pad] - bin_s)
        keep = np.insert(keep, pad, False)
    return np.concatenate([[ends[0] - bin_s], ends]), keep


def _container(f: h5py.File, path: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A BehavioralTimeSeries: channel names (by name, as pynwb lists them), data (n, D)
    as stored, and the timestamps of its first and last channel."""
    names = sorted(k for k in f[path] if isinstance(f[path][k], h5py.Group)
                   and "data" in f[path][k])
    if not names:
        raise RpntError(f"{f.filename}: {path} holds no TimeSeries")
    cols = [nwb_read.read(f, f"{path}/{n}/data") for n in names]
    if len({c.shape for c in cols}) != 1 or cols[0].ndim != 1:
        raise RpntError(f"{f.filename}: the channels of {path} differ in length")
    stamps = [nwb_read.read(f, f"{path}/{n}/timestamps").astype(np.float64)
              for n in (names[0], names[-1])]
    return names, np.stack(cols, axis=1), np.stack(stamps)


def _h1(f: h5py.File) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """H1: (names, data (n, 7), bin ends (n,), eval_mask (n,))."""
    path = LAYOUTS["h1"][0]
    data = nwb_read.read(f, f"{path}/data")
    kin = f"{ACQ}/OpenLoopKinematics"
    if f"{ACQ}/eval_mask/data" in f:
        emask = nwb_read.read(f, f"{ACQ}/eval_mask/data").astype(bool)
        offset = float(f[f"{kin}/data"].attrs.get("offset", 0.0)) if f"{kin}/data" in f else 0.0
        if f"{kin}/starting_time" not in f:
            raise RpntError(f"{f.filename}: {kin}/starting_time is missing; the H1 bins are "
                            "timed from its rate")
        period = float(f[f"{kin}/starting_time"].attrs["rate"])
    elif f"{ACQ}/Blacklist/data" in f:  # the older format of load_nwb
        emask = ~nwb_read.read(f, f"{ACQ}/Blacklist/data").astype(bool)
        offset = float(f[f"{kin}/data"].attrs.get("offset", 0.0)) if f"{kin}/data" in f else 0.0
        period = FALCON_BIN_S
    else:
        raise RpntError(f"{f.filename}: neither {ACQ}/eval_mask nor {ACQ}/Blacklist exists")
    n = data.shape[0]
    data = data.reshape(n, -1)
    names = [f"v{i}" for i in range(data.shape[1])]
    for obj in (path, kin):  # the labels, comma-separated in a description (data_demos/h1)
        desc = nwb_read.scalar_str(f, f"{obj}/description") or ""
        if obj in f and not desc:
            desc = str(f[obj].attrs.get("description", ""))
        labels = [x.strip() for x in desc.split(",")]
        if len(labels) == data.shape[1] and len(set(labels)) == len(labels) and all(labels):
            names = labels
            break
    return names, data, offset + np.arange(n) * period, emask


def _trials_from_runs(trial_num: np.ndarray, edges: np.ndarray, keep: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Trials as runs of equal ``TrialNum`` over the kept bins: (start, stop) seconds."""
    lo, hi = edges[:-1][keep], edges[1:][keep]
    change = np.flatnonzero(np.diff(trial_num) != 0) + 1
    first = np.concatenate([[0], change])
    last = np.concatenate([change, [trial_num.size]]) - 1
    return lo[first], hi[last]


def file_key(layout: str, date: str, run: str | None) -> str:
    """The evaluator's session key of a file: ``Run1_20201019`` (M2), ``20120924``."""
    d = date.replace("-", "")
    return f"{run}_{d}" if layout == "m2" and run else d


def read_falcon(f: h5py.File, path, entry: dict) -> tuple:
    """(layout, meta, split, names, data (n, D), FileGrid, (trial start, stop) or None
    where the trials table holds them)."""
    layout = (entry.get("falcon") or {}).get("layout") or detect_layout(f)
    if layout not in LAYOUTS:
        raise RpntError(f"{f.filename}: not a FALCON layout: none of "
                        f"{', '.join(v[0] for v in LAYOUTS.values())} exists")
    obj, starts, _units, _task = LAYOUTS[layout]
    if obj not in f:
        raise RpntError(f"{f.filename}: FALCON {layout.upper()} file without {obj}")
    if layout == "h1":
        names, data, stamps, emask = _h1(f)
    else:
        names, data, both = _container(f, obj)
        stamps = both[-1] if layout == "m2" else both[0]  # the channel load_nwb times by
        emask = nwb_read.read(f, f"{ACQ}/eval_mask/data").astype(bool)
    if not (data.shape[0] == stamps.shape[0] == emask.shape[0]):
        raise RpntError(f"{f.filename}: {obj} has {data.shape[0]} samples, its timestamps "
                        f"{stamps.shape[0]} and eval_mask {emask.shape[0]}; fix the file")
    try:
        edges, keep = bin_edges(stamps, FALCON_BIN_S, starts)
    except RpntError as exc:
        raise RpntError(f"{f.filename}: {obj}: {exc}") from None
    trials = None  # M1, M2: the trials table (read by the adapter)
    if layout == "h1":
        trial_num = nwb_read.read(f, f"{ACQ}/TrialNum/data")
        trials = _trials_from_runs(np.asarray(trial_num).ravel(), edges, keep)
    sid = session_id_from_asset_path(str(path))
    parsed = parse_session_id(sid)
    nwb_meta = nwb_read.read_meta(f, path)
    if parsed.get("split") is None:  # a renamed file: the NWB metadata, split unknown
        meta, split = nwb_meta, ""
    else:
        meta = Meta(sid, str(parsed["subject"]), None, str(parsed["date"]))
        split = str(parsed["split"])
        run = sid.rsplit("-", 1)[-1] if sid.rsplit("-", 1)[-1].startswith("Run") else None
        _check_split(f.filename, entry, layout, split, file_key(layout, meta.date, run))
    return (layout, meta, split, names, data, FileGrid(edges, keep, emask), trials)


def _check_split(fn: str, entry: dict, layout: str, split: str, key: str) -> None:
    """The file's split (from its name) must agree with the evaluator's session keys."""
    fal = entry.get("falcon") or {}
    side = "held_in" if split.startswith("held_in") else "held_out"
    if not fal.get(side):
        return
    if key not in [str(k) for k in fal[side]]:
        other = "held_out" if side == "held_in" else "held_in"
        where = (f"it is listed {other}" if key in [str(k) for k in fal.get(other, [])]
                 else "it is in neither list")
        raise RpntError(f"{fn}: the file name says {split} but session key {key!r} is not "
                        f"among the registry entry's falcon.{side} keys ({where}); fix the "
                        "file name or the entry")


def series_of(names: list[str], data: np.ndarray, grid: FileGrid, obj: str) -> Series:
    """The covariates as a Series on the kept bins' starts (float64 copy of the data)."""
    return Series(obj, grid.edges[:-1][grid.keep], np.asarray(data, dtype=np.float64))
