"""The in-memory form of one ingested session (one Zarr store, schema v2).

Sessions are small (minutes to an hour of 20 ms bins), so training and evaluation hold
them in memory as plain numpy arrays: no per-step Zarr reads. ``rpnt.store.load_session``
builds a :class:`SessionData` from a store; tests may build one directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: Names of the two velocity axes of a store whose ``axis`` coordinate is x, y (or unknown).
VELOCITY_NAMES: tuple[str, ...] = ("vx", "vy")
#: Axis names that mean "velocity along this spatial axis": covariate ``v<name>``.
SPATIAL_AXES = ("x", "y", "z", "w")

#: Bin-level split codes of ``split(time)`` in the store (labels in its attrs).
SPLIT_CODES: dict[str, int] = {"none": -1, "train": 0, "valid": 1, "test": 2}


@dataclass
class SessionData:
    """One session's binned data.

    Shapes: ``n_time`` bins, ``n_unit`` units, ``n_axis`` behaviour axes, ``n_trial`` trials.
    """

    session: str  #: e.g. "sub-C_ses-CO-20160909"
    subject: str  #: e.g. "C"
    task: str  #: "center_out", "random_target", "maze", ...
    recording_date: str  #: ISO date, "2016-09-09"
    dataset: str  #: registry name of the dataset
    bin_size_s: float
    time: np.ndarray  #: (n_time,) float64 bin starts, seconds
    spike_counts: np.ndarray  #: (n_time, n_unit) unsigned integer counts
    velocity: np.ndarray  #: (n_time, n_axis) float32, NaN where no behaviour
    split: np.ndarray  #: (n_time,) int8, codes in SPLIT_CODES
    eval_mask: np.ndarray  #: (n_time,) bool, bins on which decoding is scored
    unit_id: np.ndarray  #: (n_unit,) str
    unit_area: np.ndarray  #: (n_unit,) str, e.g. "M1", "PMd"
    unit_site: np.ndarray  #: (n_unit,) str, electrode group / array / probe site
    unit_xyz: np.ndarray  #: (n_unit, 3) float, NaN when unknown
    trial_start: np.ndarray  #: (n_trial,) float64 s
    trial_stop: np.ndarray  #: (n_trial,) float64 s
    trial_split: np.ndarray  #: (n_trial,) str: train / valid / test / none
    position: np.ndarray | None = None  #: (n_time, n_axis) float32 or None
    #: (n_trial, k) int16 condition labels (-1 = none), or None when the store has none
    #: (stores ingested before it was kept; layouts without conditions)
    trial_condition: np.ndarray | None = None
    spike_times: np.ndarray | None = None  #: (n_spike,) float64 s, sorted
    spike_unit: np.ndarray | None = None  #: (n_spike,) int32 unit index
    #: (n_axis,) str, the store's ``axis`` coordinate: x, y (velocity) or the covariates'
    #: own names (FALCON: finger groups, muscles, arm dimensions); None when unknown
    axis: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  #: all store attributes

    @property
    def n_time(self) -> int:
        return int(self.spike_counts.shape[0])

    @property
    def n_unit(self) -> int:
        return int(self.spike_counts.shape[1])

    @property
    def n_axis(self) -> int:
        return int(self.velocity.shape[1])

    @property
    def covariate_names(self) -> list[str]:
        """Names of the decoded covariates, one per column of ``velocity``.

        Spatial axes (x, y, z, w) name velocities ``vx``, ``vy``, ...; other axis names
        (a store of finger velocities, EMG channels, ...) are used as they are. Without
        names: ``vx``, ``vy`` for two columns, else ``v0``, ``v1``, ...
        """
        names = [] if self.axis is None else [str(a) for a in self.axis]
        if len(names) == self.n_axis and names:
            if all(n in SPATIAL_AXES for n in names):
                return [f"v{n}" for n in names]
            return names
        if self.n_axis == len(VELOCITY_NAMES):
            return list(VELOCITY_NAMES)
        return [f"v{i}" for i in range(self.n_axis)]

    @property
    def contiguous(self) -> bool:
        """Whether the bins follow each other without gaps (every store rpnt bins itself;
        a FALCON file's own bins may jump between trials)."""
        return bool(np.allclose(np.diff(self.time), self.bin_size_s))

    @property
    def sites(self) -> list[str]:
        """Distinct sites in order of first appearance."""
        return list(dict.fromkeys(self.unit_site.tolist()))

    def split_mask(self, name: str) -> np.ndarray:
        """(n_time,) bool: bins whose split is ``name``."""
        return self.split == SPLIT_CODES[name]

    def split_bins(self, split: str, finite_velocity: bool = True) -> np.ndarray:
        """(n_time,) bool: the bins of ``split`` (train / valid / test) that a stage may
        fit, select or score on.

        A bin counts only if both its bin-level ``split`` code and the trial table say
        ``split`` (so a training bin is never inside a valid or test trial, nor in the
        padding around one), and, with ``finite_velocity``, if every velocity axis is
        finite there. Scoring further restricts this to ``eval_mask``
        (:func:`rpnt.scoring.stitch.scored_mask`).
        """
        ok = self.split_mask(split) & self.trial_bins(split)
        if finite_velocity:
            ok &= np.isfinite(self.velocity).all(axis=1)
        return ok

    def trial_bins(self, which: str) -> np.ndarray:
        """(n_time,) bool: bins inside trials whose ``trial_split`` is ``which``."""
        return self.bins_of_trials(np.flatnonzero(self.trial_split == which))

    def bins_of_trials(self, trials: np.ndarray) -> np.ndarray:
        """(n_time,) bool: bins whose start lies in ``[trial_start, trial_stop)`` of any of
        the trials with indices ``trials``."""
        lo = np.searchsorted(self.time, self.trial_start[trials], side="left")
        hi = np.searchsorted(self.time, self.trial_stop[trials], side="left")
        # Difference array: +1 at each start, -1 at each stop, cumulative sum > 0 inside.
        delta = np.zeros(self.n_time + 1, dtype=np.int64)
        np.add.at(delta, lo, 1)
        np.add.at(delta, hi, -1)
        return np.cumsum(delta[:-1]) > 0

    def select_units(self, keep: np.ndarray) -> SessionData:
        """A copy restricted to units where ``keep`` (n_unit,) is True.

        Raw spikes are filtered and re-indexed too, so spike-token models see the same
        units as binned models.
        """
        keep = np.asarray(keep, dtype=bool)
        new_index = np.cumsum(keep) - 1
        spike_times, spike_unit = self.spike_times, self.spike_unit
        if spike_times is not None and spike_unit is not None:
            sel = keep[spike_unit]
            spike_times = spike_times[sel]
            spike_unit = new_index[spike_unit[sel]].astype(np.int32)
        return replace(
            self,
            spike_counts=self.spike_counts[:, keep],
            unit_id=self.unit_id[keep],
            unit_area=self.unit_area[keep],
            unit_site=self.unit_site[keep],
            unit_xyz=self.unit_xyz[keep],
            spike_times=spike_times,
            spike_unit=spike_unit,
        )
