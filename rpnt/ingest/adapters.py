"""Adapters: turn one NWB layout into the layout-free :class:`Source` that binning consumes.

- ``perich_miller`` (DANDI 000688): ``processing/behavior/{Position/cursor_pos,
  Velocity/cursor_vel}``; CO trials (``go_cue_time``, ``target_id``, ``result``) or RT trials
  (``go_cue_time_array`` (n, 4), ``num_attempted``). Valid CO trial: result R, finite
  target id, finite go cue, 0.5-6 s; valid RT trial: result R, 4 targets attempted, 2-10 s.
  Scored: CO go cue -> trial end; RT the whole trial.
- ``nlb`` (000128/000129/000127): ``processing/behavior/{hand,finger,cursor}_{vel,pos}``
  directly in the module; trials with ``split`` (valid = not "none") and
  ``move_onset_time``. Scored: move onset -250..+450 ms (whole trial without move onset).
  Task: the registry entry's ``task`` (``maze`` for MC_Maze), else from the trial columns.
- ``generic``: a dataset config mapping names the series and trial columns (see
  docs/store-schema.md).
- ``falcon`` (000941 M1, 000953 M2, 000954 H1): bins, covariates and ``eval_mask`` as the
  file gives them (:mod:`rpnt.ingest.falcon`); every trial valid, scored on ``eval_mask``.

``auto`` decides by content (which objects exist), never by the file path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from rpnt.errors import RpntError
from rpnt.ingest import falcon as fal
from rpnt.ingest.behaviour import mask_outliers, read_behaviour
from rpnt.nwb import read as nwb_read
from rpnt.nwb.read import BEHAVIOUR, Meta, Series, Units

log = logging.getLogger("rpnt.ingest")

ADAPTERS = ("perich_miller", "nlb", "generic", "falcon")
PM_VEL = f"{BEHAVIOUR}/Velocity/cursor_vel"
PM_POS = f"{BEHAVIOUR}/Position/cursor_pos"
PM_ACC = f"{BEHAVIOUR}/Acceleration/cursor_acc"
#: 000688 outlier segments (datasets.md): |x| or |y| > 10 cm, or |acceleration| > 1500 cm/s^2
PM_OUTLIERS = {"pos_cm": 10.0, "acc": 1500.0}
NLB_VEL = ("hand_vel", "finger_vel", "cursor_vel")
NLB_POS = ("hand_pos", "finger_pos", "cursor_pos")
NLB_EVAL_S = (-0.25, 0.45)


@dataclass
class Trials:
    """Per-trial arrays, all (n_trial,)."""

    start: np.ndarray
    stop: np.ndarray
    go_cue: np.ndarray  #: NaN if absent
    result: np.ndarray  #: str, "" if absent
    valid: np.ndarray  #: bool
    eval_start: np.ndarray  #: scored period start (s)
    eval_stop: np.ndarray  #: scored period end (s)
    file_split: np.ndarray | None = None  #: str train/valid/test/none from the file (NLB)
    #: (n_trial, k) int condition labels, -1 = none (center-out: the target; random
    #: target: the direction octant of each attempted reach); None when the layout has none
    condition: np.ndarray | None = None


@dataclass
class Source:
    """Everything ingest needs from one NWB file, independent of its layout."""

    meta: Meta
    task: str
    units: Units
    velocity: Series  #: (n, n_axis), cleaned (finite, increasing timestamps)
    position: Series | None
    velocity_source: str  #: object path, or "derived from <path>"
    trials: Trials
    adapter: str
    eval_period: str
    notes: list[str] = field(default_factory=list)
    #: bins given by the file (FALCON): the store keeps them instead of its own grid
    grid: fal.FileGrid | None = None
    axis_names: list[str] | None = None  #: the covariates' names (default x, y, ...)
    attrs: dict[str, Any] = field(default_factory=dict)  #: extra store attributes


def detect(f: h5py.File, entry: dict[str, Any] | None = None) -> str:
    """Pick an adapter by the objects present in the file."""
    if nwb_read.is_series(f, PM_VEL) or nwb_read.is_series(f, PM_POS):
        return "perich_miller"
    if any(nwb_read.is_series(f, f"{BEHAVIOUR}/{n}") for n in NLB_VEL + NLB_POS):
        return "nlb"
    if fal.detect_layout(f):
        return "falcon"
    if entry and entry.get("generic"):
        return "generic"
    if entry and entry.get("adapter") in ADAPTERS:
        return str(entry["adapter"])
    raise RpntError(
        f"{f.filename}: cannot tell the layout: neither {PM_VEL} / {PM_POS} (DANDI 000688) "
        f"nor {BEHAVIOUR}/hand_vel|finger_vel|... (NLB) exists; pass --adapter generic with a "
        "registry entry whose 'generic' mapping names the velocity series")


def direction_octant(angle: np.ndarray) -> np.ndarray:
    """Directions (radians, any shape) -> octant 0..7, octant k centred on k x 45 degrees
    (0 = rightwards, counter-clockwise); -1 where the angle is not finite."""
    a = np.asarray(angle, dtype=np.float64)
    out = np.full(a.shape, -1, dtype=np.int16)
    ok = np.isfinite(a)
    out[ok] = np.round(np.mod(a[ok], 2 * np.pi) / (np.pi / 4)).astype(np.int16) % 8
    return out


def condition_ids(values: np.ndarray) -> np.ndarray:
    """A trial column of condition ids (n_trial,) or (n_trial, k) -> (n_trial, k) int16,
    -1 where the value is not a finite non-negative number."""
    v = np.asarray(values, dtype=np.float64).reshape(values.shape[0], -1)
    ok = np.isfinite(v) & (v >= 0)
    return np.where(ok, np.nan_to_num(v), -1).astype(np.int16)


def _base_trials(f: h5py.File) -> tuple[set[str], np.ndarray, np.ndarray]:
    cols = nwb_read.trial_columns(f)
    if not {"start_time", "stop_time"} <= cols:
        raise RpntError(f"{f.filename}: no trials table with start_time/stop_time at "
                        f"{nwb_read.TRIALS}; splits and scoring need trials")
    start = nwb_read.trial_col(f, "start_time").astype(np.float64)
    stop = nwb_read.trial_col(f, "stop_time").astype(np.float64)
    return cols, start, stop


def _col(f: h5py.File, cols: set[str], name: str | None, n: int, fill=np.nan) -> np.ndarray:
    if name and name in cols:
        return nwb_read.trial_col(f, name)
    return np.full(n, fill, dtype=object if isinstance(fill, str) else np.float64)


def _no_go_cue(fn: str, notes: list[str]) -> str:
    msg = (f"{fn}: {nwb_read.TRIALS} has no go_cue_time column; scoring whole trials "
           "instead of go cue -> trial end")
    log.warning(msg)
    notes.append(msg)
    return "trial (no go cue in the file)"


def perich_miller(f: h5py.File, meta: Meta, entry: dict) -> Source:
    notes: list[str] = []
    fn = f.filename
    units = nwb_read.read_units(f)
    vel, pos, vsrc = read_behaviour(f, PM_VEL, PM_POS, notes)
    thr = entry.get("outliers", PM_OUTLIERS)
    if thr:
        vel, pos = mask_outliers(f, vel, pos, thr, notes, PM_ACC)
    cols, start, stop = _base_trials(f)
    n, dur = start.shape[0], stop - start
    result = _col(f, cols, "result", n, "").astype(str).astype(object)
    rt = "go_cue_time_array" in cols or "num_attempted" in cols
    task = entry.get("task") or nwb_read.TASK_CODES.get(meta.task_code or "") or (
        "random_target" if rt else "center_out")
    if task == "random_target":
        go = (nwb_read.trial_col(f, "go_cue_time_array").astype(np.float64)[:, 0]
              if "go_cue_time_array" in cols else _col(f, cols, "go_cue_time", n))
        att = _col(f, cols, "num_attempted", n, np.nan).astype(np.float64)
        valid = (result == "R") & (dur >= 2.0) & (dur <= 10.0)
        if "num_attempted" in cols:
            valid &= att == 4
        cond = None
        if "target_dir" in cols:
            # one condition per attempted reach: the octant of its direction
            dirs = nwb_read.trial_col(f, "target_dir").astype(np.float64).reshape(n, -1)
            attempted = np.arange(dirs.shape[1])[None, :] < np.where(
                np.isfinite(att), att, dirs.shape[1])[:, None]
            cond = np.where(attempted, direction_octant(dirs), -1)
        return Source(meta, task, units, vel, pos, vsrc,
                      Trials(start, stop, go, result, valid, start.copy(), stop.copy(),
                             condition=cond),
                      "perich_miller", "trial", notes)
    valid = (result == "R") & (dur >= 0.5) & (dur <= 6.0)
    cond = None
    if "target_id" in cols:
        target = nwb_read.trial_col(f, "target_id").astype(np.float64)
        valid &= np.isfinite(target)
        cond = condition_ids(target)
    if "go_cue_time" in cols:
        go = nwb_read.trial_col(f, "go_cue_time").astype(np.float64)
        valid &= np.isfinite(go)
        ev0, period = go.copy(), "go cue to trial end"
    else:
        go, ev0, period = np.full(n, np.nan), start.copy(), _no_go_cue(fn, notes)
    return Source(meta, task, units, vel, pos, vsrc,
                  Trials(start, stop, go, result, valid, ev0, stop.copy(), condition=cond),
                  "perich_miller", period, notes)


def _nlb_task(cols: set[str], vel_name: str) -> str:
    """The task of an NLB session without a registry ``task``, from its trial columns.

    MC_Maze trials describe the maze (``maze_id``, barrier columns); MC_RTT moves a finger
    (``finger_vel``). Anything else is plain ``reaching``. The registry entries of the NLB
    datasets name their task, so this is only the fallback for unregistered files.
    """
    if "maze_id" in cols or any("barrier" in c for c in cols):
        return "maze"
    return "random_target" if vel_name == "finger_vel" else "reaching"


def nlb(f: h5py.File, meta: Meta, entry: dict) -> Source:
    notes: list[str] = []
    units = nwb_read.read_units(f)
    vel_name = next((n for n in NLB_VEL if nwb_read.is_series(f, f"{BEHAVIOUR}/{n}")), NLB_VEL[0])
    pos_name = next((n for n in NLB_POS if n.split("_")[0] == vel_name.split("_")[0]
                     and nwb_read.is_series(f, f"{BEHAVIOUR}/{n}")), None)
    pos_name = pos_name or next((n for n in NLB_POS if nwb_read.is_series(f, f"{BEHAVIOUR}/{n}")),
                                None)
    vel, pos, vsrc = read_behaviour(f, f"{BEHAVIOUR}/{vel_name}",
                                f"{BEHAVIOUR}/{pos_name}" if pos_name else None, notes)
    cols, start, stop = _base_trials(f)
    n = start.shape[0]
    fsplit = None
    valid = np.ones(n, bool)
    if "split" in cols:
        raw = nwb_read.trial_col(f, "split").astype(str)
        fsplit = np.array([{"val": "valid"}.get(s, s) for s in raw.tolist()], dtype=object)
        valid &= fsplit != "none"
    result = _col(f, cols, "result", n, "").astype(str).astype(object)
    go = _col(f, cols, "go_cue_time", n).astype(np.float64)
    if "move_onset_time" in cols:
        mo = nwb_read.trial_col(f, "move_onset_time").astype(np.float64)
        valid &= np.isfinite(mo)
        ev0, ev1, period = mo + NLB_EVAL_S[0], mo + NLB_EVAL_S[1], "move onset -250..+450 ms"
    else:
        msg = f"{f.filename}: {nwb_read.TRIALS} has no move_onset_time; scoring whole trials"
        log.warning(msg)
        notes.append(msg)
        ev0, ev1, period = start.copy(), stop.copy(), "trial (no move onset in the file)"
    task = entry.get("task") or _nlb_task(cols, vel_name)
    return Source(meta, task, units, vel, pos, vsrc,
                  Trials(start, stop, go, result, valid, ev0, ev1, fsplit), "nlb", period, notes)


def generic(f: h5py.File, meta: Meta, entry: dict) -> Source:
    """Layout described by ``entry["generic"]`` (keys in docs/store-schema.md)."""
    g = entry.get("generic") or {}
    if not (g.get("velocity") or g.get("position")):
        raise RpntError(f"{f.filename}: the generic adapter needs a registry entry with "
                        "generic: {velocity: <TimeSeries path>} (or position:)")
    notes: list[str] = []
    units = nwb_read.read_units(f)
    vel, pos, vsrc = read_behaviour(f, g.get("velocity"), g.get("position"), notes)
    cols, start, stop = _base_trials(f)
    n, dur = start.shape[0], stop - start
    result = _col(f, cols, g.get("result", "result"), n, "").astype(str).astype(object)
    go = _col(f, cols, g.get("go_cue"), n).astype(np.float64)
    if go.ndim == 2:
        go = go[:, 0]
    valid = np.ones(n, bool)
    if g.get("valid_results") is not None:
        valid &= np.isin(result, [str(r) for r in g["valid_results"]])
    if g.get("duration_s") is not None:
        lo, hi = g["duration_s"]
        valid &= (dur >= float(lo)) & (dur <= float(hi))
    ev = g.get("eval") or {}
    off0, off1 = ev.get("offset_s", (0.0, 0.0))
    ev0 = _col(f, cols, ev.get("start", "start_time"), n).astype(np.float64)
    ev1 = _col(f, cols, ev.get("stop", "stop_time"), n).astype(np.float64)
    ev0, ev1 = (ev0[:, 0] if ev0.ndim == 2 else ev0) + off0, (ev1[:, 0] if ev1.ndim == 2
                                                               else ev1) + off1
    valid &= np.isfinite(ev0) & np.isfinite(ev1)
    period = f"{ev.get('start', 'start_time')}{off0:+g}s -> {ev.get('stop', 'stop_time')}{off1:+g}s"
    task = g.get("task") or entry.get("task") or nwb_read.TASK_CODES.get(meta.task_code or "",
                                                                      "unknown")
    cond = None
    if g.get("condition"):
        cond = condition_ids(_col(f, cols, g["condition"], n).astype(np.float64))
    return Source(meta, task, units, vel, pos, vsrc,
                  Trials(start, stop, go, result, valid, ev0, ev1, condition=cond),
                  "generic", period, notes)


def falcon(f: h5py.File, path, entry: dict) -> Source:
    """A FALCON file: the file's bins, covariates, eval_mask and split (every trial valid)."""
    layout, meta, split, names, data, grid, trials = fal.read_falcon(f, path, entry)
    obj, _starts, units, task = fal.LAYOUTS[layout]
    start, stop = trials if trials is not None else _base_trials(f)[1:]
    n = start.shape[0]
    trials = Trials(start, stop, np.full(n, np.nan), np.full(n, "", dtype=object),
                    np.ones(n, bool), start.copy(), stop.copy())
    attrs = {"falcon_layout": layout, "falcon_split": split, "covariate_units": units,
             "r2_weighting": "variance_weighted",
             "grid": "the file's bins (FALCON bin_units: each bin the 20 ms before its "
                     "end; padding bins over gaps dropped)"}
    return Source(meta, entry.get("task") or task, nwb_read.read_units(f),
                  fal.series_of(names, data, grid, obj), None, obj, trials, "falcon",
                  "FALCON eval_mask", [], grid=grid, axis_names=names, attrs=attrs)


def load_source(f: h5py.File, path, adapter: str, entry: dict | None) -> Source:
    """Run the chosen adapter (``auto``: by content) on an open NWB file."""
    entry = entry or {}
    if adapter == "auto":
        adapter = detect(f, entry)
    if adapter not in ADAPTERS:
        raise RpntError(f"unknown adapter {adapter!r}; choose one of auto, {', '.join(ADAPTERS)}")
    if adapter == "falcon":
        return falcon(f, path, entry)
    meta = nwb_read.read_meta(f, path)
    return {"perich_miller": perich_miller, "nlb": nlb, "generic": generic}[adapter](
        f, meta, entry)
