"""Behaviour series of an NWB file, cleaned for binning: non-finite samples and
timestamps that go back in time masked, velocity derived from position when the file has
none, outlier segments dropped; every masking is logged and noted for the store."""

from __future__ import annotations

import logging

import h5py
import numpy as np

from rpnt.errors import RpntError
from rpnt.nwb import read as nwb_read
from rpnt.nwb.read import Series

log = logging.getLogger("rpnt.ingest")


def clean_series(fn: str, s: Series, notes: list[str]) -> Series:
    """Drop samples with non-finite values or timestamps that do not increase; warn with counts.

    A timestamp is kept only if it is larger than every earlier one, so a block that jumps
    back in time is masked rather than reordered into the wrong place.
    """
    t, x = s.t, s.data
    finite = np.isfinite(t)
    for a in range(x.shape[1]):  # column by column: a reduction along a short axis is slow
        finite &= np.isfinite(x[:, a])
    increasing = np.ones(t.shape[0], bool)
    if finite.all() and np.all(t[1:] > t[:-1]):  # the usual case: nothing to mask
        return s
    prev_max = np.maximum.accumulate(np.where(np.isfinite(t), t, -np.inf))
    increasing[1:] = t[1:] > prev_max[:-1]
    keep = finite & increasing
    n_nan, n_back = int((~finite).sum()), int((finite & ~increasing).sum())
    if n_nan:
        msg = f"{fn}: {s.path}: masked {n_nan} of {t.shape[0]} samples with NaN values"
        log.warning(msg)
        notes.append(msg)
    if n_back:
        msg = (f"{fn}: {s.path}/timestamps: masked {n_back} samples whose timestamps do not "
               "increase")
        log.warning(msg)
        notes.append(msg)
    if not keep.any():
        raise RpntError(f"{fn}: {s.path} has no finite samples with increasing timestamps")
    if keep.all():
        return s
    return Series(s.path, t[keep], x[keep])


def derive_velocity(pos: Series) -> Series:
    """Velocity (units/s) from position by central differences on its own timestamps."""
    if pos.t.shape[0] < 2:
        raise RpntError(f"{pos.path}: too few samples to derive a velocity")
    return Series(pos.path, pos.t, np.gradient(pos.data, pos.t, axis=0))


def read_behaviour(f: h5py.File, vel_path: str | None, pos_path: str | None,
                   notes: list[str]) -> tuple[Series, Series | None, str]:
    """(velocity, position or None, where the velocity came from) of a file: the velocity
    series when it exists, else derived from the position; samples cleaned
    (:func:`clean_series`), every masking noted in ``notes``."""
    fn = f.filename
    pos = None
    if pos_path and nwb_read.is_series(f, pos_path):
        pos = clean_series(fn, nwb_read.read_series(f, pos_path), notes)
    if vel_path and nwb_read.is_series(f, vel_path):
        vel = clean_series(fn, nwb_read.read_series(f, vel_path), notes)
        return vel, pos, vel_path
    if pos is not None:
        msg = f"{fn}: no velocity series ({vel_path}); velocity derived from {pos_path}"
        log.warning(msg)
        notes.append(msg)
        return derive_velocity(pos), pos, f"derived from {pos_path}"
    raise RpntError(f"{fn}: no behaviour series: neither {vel_path} nor {pos_path} exists; "
                    "a session without behaviour cannot be decoded (NLB test files hold "
                    "spikes only)")


def mask_outliers(f: h5py.File, vel: Series, pos: Series | None, thr: dict,
                  notes: list[str], acc_path: str) -> tuple[Series, Series | None]:
    """Drop behaviour samples in outlier segments (position above ``thr["pos_cm"]`` or
    the acceleration series at ``acc_path`` above ``thr["acc"]``; 000688's).

    Samples are matched by timestamp across the position, acceleration and velocity series
    (they share timestamps in 000688).
    """
    def above(x: np.ndarray, limit: float) -> np.ndarray:
        out = np.zeros(x.shape[0], bool)
        for a in range(x.shape[1]):  # column by column: a reduction along a short axis is slow
            out |= np.abs(x[:, a]) > limit
        return out

    bad = []
    if pos is not None and thr.get("pos_cm") is not None:
        bad.append(pos.t[above(pos.data, float(thr["pos_cm"]))])
    if thr.get("acc") is not None and nwb_read.is_series(f, acc_path):
        acc = nwb_read.read_series(f, acc_path)
        bad.append(acc.t[above(acc.data, float(thr["acc"]))])
    bad_t = np.concatenate(bad) if bad else np.zeros(0)
    if not bad_t.size:
        return vel, pos
    out = []
    for s in (vel, pos):
        if s is None:
            out.append(None)
            continue
        drop = np.isin(s.t, bad_t)
        if drop.any():
            msg = (f"{f.filename}: {s.path}: masked {int(drop.sum())} of {s.t.shape[0]} samples "
                   f"in outlier segments (|position| > {thr.get('pos_cm')} cm or "
                   f"|acceleration| > {thr.get('acc')})")
            log.warning(msg)
            notes.append(msg)
            s = Series(s.path, s.t[~drop], s.data[~drop])
        out.append(s)
    if out[0].t.shape[0] == 0:
        raise RpntError(f"{f.filename}: {vel.path}: every sample is in an outlier segment")
    return out[0], out[1]
