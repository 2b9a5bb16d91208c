"""Sessions -> RPNT model inputs: windows, per-site unit slots, MRoPE coordinates.

A batch is a dict of CPU tensors (``B`` windows, ``S`` sites, ``T`` bins, ``N`` slots)::

    counts     (B, S, T, N) float32  spike counts of the chosen units, zero in empty slots
    unit_mask  (B, S, N)    bool     True where a slot holds a real unit
    site_mask  (B, S)       bool     True for real sites (sessions with fewer sites are padded)
    coords     {name: (B, S) float32} for the names of RPNTConfig.coords
    readin     (B, S)       int64    row of each site in the per-session read-in (Vocab.readins)
    velocity   (B, T, n_axis) float32, normalised (finetuning and joint pretraining)
    window     (B,)         int64    which drawn window each sample is a copy of
                                     (BatchSampler batches only)

Units: each site's units fill the ``N`` slots **in their session order** (so within a
session slot i keeps meaning the same unit, and a decoder can learn unit tuning). With a
per-session read-in the model has as many slots as the largest site it knows
(:meth:`Vocab.extent`, ``RPNTConfig.fitted``), so every unit reaches it. With the shared
read-in of the released code a site with more than N units is subsampled to N units per
window (a random subset, kept in session order: the released augmentation); ``subsets``
> 1 draws each window that many times with different unit subsets. Random subsets shift
units between slots, which destroys the unit identity a velocity readout needs, so
finetuning defaults to the fixed choice of evaluation (:func:`eval_unit_choice`: all
units, or the N most active when there are more, the same for every window), and
predictions are deterministic. A batch comes from one session, so site ``s`` is the same
recording site in every sample (the site-contrastive loss relies on this).

Coordinates: subject and task through vocabularies (:class:`Vocab`, stored in the
decoder's hparams; task ``center_out`` = 0, ``random_target`` = 1 as in the released
code), recording date in days since 2013-01-01, site x/y/z = mean of the site's
``unit_xyz`` in um (0 when unknown).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rpnt.data.session import SessionData
from rpnt.data.windows import gather_windows, sample_starts, valid_window_starts
from rpnt.errors import RpntError

DATE_ORIGIN = dt.date(2013, 1, 1)
#: Fixed task indices of the released code; other tasks get the next free index.
BASE_TASKS = ("center_out", "random_target")

#: observer(session, bins (B, T) int64, units (B, S, N) int64 indices into session's units,
#: -1 = empty slot); ``session`` is the (unit-filtered) SessionData the batch was cut from.
Observer = Callable[[SessionData, np.ndarray, np.ndarray], None]


def date_coord(iso: str) -> float:
    """Recording date -> days since 2013-01-01 (earlier dates are negative)."""
    try:
        d = dt.date.fromisoformat(str(iso)[:10])
    except ValueError as exc:
        raise RpntError(f"recording date {iso!r} is not an ISO date (YYYY-MM-DD)") from exc
    return float((d - DATE_ORIGIN).days)


def readin_key(session: SessionData, site: str) -> str:
    """The name of one site of one session in :attr:`Vocab.readins`."""
    return f"{session.dataset}/{session.session}/{site}"


def site_positions(session: SessionData) -> np.ndarray:
    """(S, 3) mean x/y/z (um) of each site's units; NaN where no unit has a position."""
    out = np.full((len(session.sites), 3), np.nan)
    for i, site in enumerate(session.sites):
        xyz = np.asarray(session.unit_xyz[session.unit_site == site], float)
        for axis in range(3):
            v = xyz[:, axis][np.isfinite(xyz[:, axis])]
            if v.size:
                out[i, axis] = v.mean()
    return out


@dataclass(frozen=True)
class DataExtent:
    """What a model's size and rotary ranges depend on, over the sessions it knows.

    max_units: units of the largest site; n_subjects / n_tasks: ids known;
    days: (first, last) recording date in days since 2013-01-01, None without sessions;
    spacing: {"site_x"|"site_y"|"site_z": (smallest, largest) non-zero distance in um
    between two sites of one session along that axis}, only axes with such a pair.
    """

    max_units: int = 0
    n_subjects: int = 0
    n_tasks: int = 0
    days: tuple[float, float] | None = None
    spacing: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Vocab:
    """Vocabularies: subject and task name -> MRoPE coordinate (its index), and the
    read-in contexts (one per site of each session: its row of a per-session read-in).

    ``contexts`` records, per read-in context, what model sizes depend on
    (:meth:`extent`): ``{"units": n, "day": days since 2013-01-01, "xyz": [x, y, z] um,
    null where unknown}``.
    """

    subjects: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=lambda: list(BASE_TASKS))
    readins: list[str] = field(default_factory=list)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_sessions(cls, sessions: Sequence[SessionData],
                      base: Vocab | None = None) -> Vocab:
        """Extend ``base`` (or an empty vocabulary) with the sessions' subjects and tasks.

        Existing indices never change, so a pretrained model's coordinates stay valid;
        new names (e.g. a held-out subject at finetuning) get the next indices.
        """
        subjects = list(base.subjects) if base else []
        tasks = list(base.tasks) if base else list(BASE_TASKS)
        readins = list(base.readins) if base else []
        contexts = {k: dict(v) for k, v in base.contexts.items()} if base else {}
        for s in sessions:
            if s.subject not in subjects:
                subjects.append(s.subject)
            if s.task not in tasks:
                tasks.append(s.task)
            xyz = site_positions(s)
            day = date_coord(s.recording_date)
            for i, site in enumerate(s.sites):
                key = readin_key(s, site)
                if key not in readins:
                    readins.append(key)
                contexts.setdefault(key, {
                    "units": int(np.count_nonzero(s.unit_site == site)), "day": day,
                    "xyz": [None if np.isnan(v) else float(v) for v in xyz[i]]})
        return cls(subjects, tasks, readins, contexts)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Vocab:
        return cls(list(d["subjects"]), list(d["tasks"]), list(d.get("readins", [])),
                   {k: dict(v) for k, v in d.get("contexts", {}).items()})

    def to_dict(self) -> dict[str, Any]:
        return {"subjects": list(self.subjects), "tasks": list(self.tasks),
                "readins": list(self.readins),
                "contexts": {k: dict(v) for k, v in self.contexts.items()}}

    def extent(self) -> DataExtent:
        """:class:`DataExtent` of the contexts this vocabulary knows."""
        ctx = list(self.contexts.items())
        days = [float(c["day"]) for _, c in ctx]
        by_session: dict[str, list[list[float | None]]] = {}
        for key, c in ctx:
            by_session.setdefault(key.rsplit("/", 1)[0], []).append(c["xyz"])
        spacing: dict[str, tuple[float, float]] = {}
        for axis, name in enumerate(("site_x", "site_y", "site_z")):
            gaps = []
            for sites in by_session.values():
                v = np.array([p[axis] for p in sites if p[axis] is not None], float)
                d = np.abs(v[:, None] - v[None, :])
                gaps.append(d[d > 0])
            gaps = np.concatenate(gaps) if gaps else np.zeros(0)
            if gaps.size:
                spacing[name] = (float(gaps.min()), float(gaps.max()))
        return DataExtent(max_units=max((int(c["units"]) for _, c in ctx), default=0),
                          n_subjects=len(self.subjects), n_tasks=len(self.tasks),
                          days=(min(days), max(days)) if days else None, spacing=spacing)

    def coords(self, session: SessionData, names: Sequence[str]) -> dict[str, np.ndarray]:
        """{name: (S,) float32} coordinates of the session's sites."""
        sites = session.sites
        n_site = len(sites)
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name == "subject":
                v = np.full(n_site, self.subjects.index(session.subject), np.float32)
            elif name == "task":
                v = np.full(n_site, self.tasks.index(session.task), np.float32)
            elif name == "date":
                v = np.full(n_site, date_coord(session.recording_date), np.float32)
            elif name in ("site_x", "site_y", "site_z"):
                pos = site_positions(session)[:, "xyz".index(name[-1])]
                v = np.nan_to_num(pos, nan=0.0).astype(np.float32)
            else:
                raise RpntError(f"unknown MRoPE coordinate {name!r}")
            out[name] = v
        return out


def velocity_stats(sessions: Sequence[SessionData], masks: Sequence[np.ndarray]) -> tuple[
        np.ndarray, np.ndarray]:
    """Per-axis mean and std (n_axis,) of velocity over the bins where ``masks`` are True."""
    vel = np.concatenate([s.velocity[m] for s, m in zip(sessions, masks, strict=True)])
    vel = vel[np.isfinite(vel).all(axis=1)]
    if vel.shape[0] < 2:
        raise RpntError(f"session {sessions[0].session}: fewer than 2 training bins with "
                        "finite velocity; the store has no usable training data")
    return vel.mean(axis=0).astype(np.float32), np.maximum(vel.std(axis=0), 1e-6).astype(
        np.float32)


class SessionWindows:
    """One session held in memory, ready to cut into model inputs.

    ``allowed`` (n_time,) bool marks the bins windows may cover (default: training bins
    with finite velocity). ``vel_mean`` / ``vel_std`` normalise velocity targets.
    """

    def __init__(self, session: SessionData, vocab: Vocab, coord_names: Sequence[str],
                 n_slots: int, window: int, allowed: np.ndarray | None = None,
                 vel_mean: np.ndarray | None = None, vel_std: np.ndarray | None = None):
        self.session = session
        self.window = window
        self.n_slots = n_slots
        # a numpy array, or rpnt.data.lazy.LazyCounts (windows read on demand)
        counts = session.spike_counts
        self.counts = counts if hasattr(counts, "shape") else np.asarray(counts)
        site_of_unit = session.unit_site
        self.site_units = [np.flatnonzero(site_of_unit == s) for s in session.sites]
        if not self.site_units:
            raise RpntError(f"session {session.session}: no units left after unit selection")
        self.coords = vocab.coords(session, coord_names)
        self.readin = np.array([vocab.readins.index(readin_key(session, site))
                                if readin_key(session, site) in vocab.readins else 0
                                for site in session.sites], dtype=np.int64)
        self.allowed = session.split_bins("train") if allowed is None else np.asarray(allowed, bool)
        self.starts = valid_window_starts(self.allowed, window)
        self.vel_mean, self.vel_std = vel_mean, vel_std
        self._fixed: tuple[int, np.ndarray] | None = None  # cache of eval_unit_choice

    @property
    def n_sites(self) -> int:
        return len(self.site_units)

    def choose_units(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, S, N) int64 unit indices per slot (-1 = empty), random subsets in session order."""
        out = np.full((n, self.n_sites, self.n_slots), -1, dtype=np.int64)
        for j, units in enumerate(self.site_units):
            k = units.size
            if k <= self.n_slots:
                out[:, j, :k] = units
                continue
            keys = rng.random((n, k))
            pick = np.sort(np.argpartition(keys, self.n_slots - 1, axis=1)[:, :self.n_slots],
                           axis=1)
            out[:, j, :] = units[pick]
        return out

    def make_batch(self, starts: np.ndarray, units: np.ndarray, n_sites: int | None = None,
                   with_velocity: bool = True) -> dict[str, Any]:
        """Model inputs for windows ``starts`` (B,) with slot choice ``units`` (B, S, N)."""
        b, t = starts.shape[0], self.window
        s_pad = n_sites or self.n_sites
        win = gather_windows(self.counts, starts, t)  # (B, T, n_unit)
        slot = np.where(units < 0, 0, units)  # (B, S, N)
        # counts[b, s, t, n] = win[b, t, slot[b, s, n]]
        idx = np.broadcast_to(slot.reshape(b, 1, -1), (b, t, slot.shape[1] * slot.shape[2]))
        c = np.take_along_axis(win, idx, axis=2).reshape(b, t, *slot.shape[1:])
        c = c.transpose(0, 2, 1, 3).astype(np.float32)  # (B, S, T, N)
        c[np.broadcast_to((units < 0)[:, :, None, :], c.shape)] = 0.0
        counts = np.zeros((b, s_pad, t, self.n_slots), np.float32)
        counts[:, :self.n_sites] = c
        unit_mask = np.zeros((b, s_pad, self.n_slots), bool)
        unit_mask[:, :self.n_sites] = units >= 0
        site_mask = np.zeros((b, s_pad), bool)
        site_mask[:, :self.n_sites] = True
        coords = {}
        for name, v in self.coords.items():
            full = np.zeros(s_pad, np.float32)
            full[:self.n_sites] = v
            coords[name] = torch.from_numpy(np.broadcast_to(full, (b, s_pad)).copy())
        readin = np.zeros((b, s_pad), np.int64)
        readin[:, :self.n_sites] = self.readin
        batch: dict[str, Any] = {
            "counts": torch.from_numpy(counts), "unit_mask": torch.from_numpy(unit_mask),
            "site_mask": torch.from_numpy(site_mask), "coords": coords,
            "readin": torch.from_numpy(readin),
        }
        if with_velocity:
            vel = gather_windows(self.session.velocity, starts, t).astype(np.float32)
            if self.vel_mean is not None:
                vel = (vel - self.vel_mean) / self.vel_std
            batch["velocity"] = torch.from_numpy(vel)
        return batch


def eval_unit_choice(sw: SessionWindows, n: int, seed: int = 0) -> np.ndarray:
    """The fixed (n, S, N) slot choice of evaluation (and of ``unit_sampling: fixed``).

    Per site: all units when there are <= N, else the N most active units over the
    session's training bins (all bins if it has none), kept in session order; ``seed``
    only breaks ties between equally active units. The same choice for every window, so
    slot i always holds the same unit and a decoder can rely on unit tuning.
    """
    if sw._fixed is None or sw._fixed[0] != seed:
        s = sw.session
        bins = s.split_bins("train", finite_velocity=False)
        rate = (s.spike_counts[bins] if bins.any() else np.asarray(s.spike_counts)).mean(axis=0)
        tie = np.random.default_rng(seed).random(s.n_unit)
        out = np.full((1, sw.n_sites, sw.n_slots), -1, dtype=np.int64)
        for j, units in enumerate(sw.site_units):
            if units.size > sw.n_slots:
                order = np.lexsort((tie[units], -rate[units]))  # most active first
                units = np.sort(units[order[:sw.n_slots]])
            out[0, j, :units.size] = units
        sw._fixed = (seed, out)
    return np.repeat(sw._fixed[1], n, axis=0)


def usable_windows(windows: Sequence[SessionWindows], batch_size: int, subsets: int,
                   unit_sampling: str) -> list[SessionWindows]:
    """The sessions with at least one window start; checks the samplers' settings."""
    usable = [w for w in windows if w.starts.size]
    if not usable:
        names = ", ".join(w.session.session for w in windows) or "(none)"
        raise RpntError(f"no window of {windows[0].window if windows else '?'} "
                        f"consecutive training bins in sessions {names}; use a shorter "
                        "window or sessions with longer trials")
    if subsets < 1 or batch_size < subsets:
        raise RpntError(f"subsets ({subsets}) must be in 1..batch_size ({batch_size})")
    if unit_sampling not in ("random", "fixed"):
        raise RpntError(f"unit_sampling {unit_sampling!r} must be 'random' or 'fixed'")
    return usable


class BatchSampler:
    """Draw training batches from one or many :class:`SessionWindows`.

    Each call picks one session (probability proportional to its number of valid window
    starts), ``batch_size // subsets`` windows in it, and ``subsets`` unit subsets of each
    (``unit_sampling="random"``), or ``batch_size`` windows with the fixed evaluation
    choice of units (``"fixed"``, :func:`eval_unit_choice` with ``seed``; ``subsets`` is
    moot there: every copy would be the same). The batch's ``window`` (B,) int64 names
    the window each sample is a copy of (for the site contrast).
    Deterministic given the ``Generator`` passed in (the trainer checkpoints its state).
    ``observer`` (tests) is told every session, bins and unit slots that reach a batch.
    """

    def __init__(self, windows: Sequence[SessionWindows], batch_size: int, subsets: int = 1,
                 with_velocity: bool = True, observer: Observer | None = None,
                 unit_sampling: str = "random", seed: int = 0):
        self.windows = usable_windows(windows, batch_size, subsets, unit_sampling)
        weights = np.array([w.starts.size for w in self.windows], float)
        self.p = weights / weights.sum()
        self.batch_size, self.subsets = batch_size, subsets
        self.with_velocity, self.observer = with_velocity, observer
        self.unit_sampling, self.seed = unit_sampling, seed

    def __call__(self, rng: np.random.Generator) -> dict[str, Any]:
        k = int(rng.choice(len(self.windows), p=self.p)) if len(self.windows) > 1 else 0
        sw = self.windows[k]
        # The fixed unit choice would make every copy of a window identical: one copy each.
        copies = 1 if self.unit_sampling == "fixed" else self.subsets
        n_win = self.batch_size // copies
        starts = np.repeat(sample_starts(rng, sw.starts, n_win), copies)
        if self.unit_sampling == "fixed":
            units = eval_unit_choice(sw, starts.size, self.seed)
        else:
            units = sw.choose_units(rng, starts.size)
        if self.observer is not None:
            bins = starts[:, None] + np.arange(sw.window)[None, :]
            self.observer(sw.session, bins, units)
        batch = sw.make_batch(starts, units, with_velocity=self.with_velocity)
        batch["window"] = torch.from_numpy(np.repeat(np.arange(n_win), copies))
        return batch
