"""Small NWB files in the DANDI 000688 (Perich-Miller) and NLB layouts, and broken variants.

Tests build their inputs here (never through the simulator), and keep the ground truth the
file was written from (``Truth``) so that binning can be checked against a straightforward
reference. Files are written with pynwb, so the object paths are the real ones:

- 000688: ``processing/behavior/Position/cursor_pos``, ``.../Velocity/cursor_vel``,
  ``.../Acceleration/cursor_acc``; units -> electrodes -> ``location`` / ``group_name``
  (groups ``electrode_group_M1``/``electrode_group_PMd``); CO trials with ``go_cue_time`` and
  ``target_id``, RT trials with ``go_cue_time_array`` (n, 4) and ``num_attempted``; a
  ``waveforms`` column.
- NLB: ``processing/behavior/hand_vel`` and ``hand_pos`` directly in the module; units with
  ``obs_intervals`` and ``heldout``; electrodes with x/y/z; trials with ``split`` and
  ``move_onset_time``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np


@dataclass
class Spec:
    """What to write. Broken variants are switched on by the ``bad_*`` / ``no_*`` fields."""

    layout: str = "perich_miller"  #: "perich_miller" or "nlb"
    task: str = "CO"  #: perich_miller: "CO" or "RT"
    subject: str = "C"
    date: str = "20160909"
    n_units: int = 6
    duration_s: float = 40.0
    rate_hz: float = 15.0
    behaviour_hz: float = 100.0
    n_trials: int = 12
    seed: int = 0
    with_velocity: bool = True  #: False: only Position (velocity must be derived)
    empty_unit: bool = False  #: unit 1 has no spikes
    unsorted_spikes: bool = False  #: shuffle unit 0's spike times in the file
    outside_spikes: bool = False  #: unit 0 gets spikes at -5 s and after the session
    spikes_past_end_s: float = 0.0  #: every unit keeps firing this long after behaviour ends
    no_units: bool = False
    no_behaviour: bool = False
    behaviour_nans: bool = False  #: NaN samples in velocity and position
    nonmonotonic: bool = False  #: a block of timestamps that goes backwards
    no_go_cue: bool = False  #: CO trials table without go_cue_time
    duplicate_ids: bool = False
    zero_valid: bool = False  #: every trial aborted
    outliers: bool = False  #: 000688 outlier segment: position jumps to 50 cm for 5 samples
    extra_sessions_meta: dict = field(default_factory=dict)


@dataclass
class Truth:
    """What the file holds, as plain arrays (spike times as in the file, unsorted variants too)."""

    spikes: list[np.ndarray]
    unit_ids: np.ndarray
    areas: list[str]
    sites: list[str]
    xyz: np.ndarray  #: (n_unit, 3), NaN for 000688
    beh_t: np.ndarray  #: (n_samples,) timestamps as written
    vel: np.ndarray  #: (n_samples, 2) as written (NaNs included)
    pos: np.ndarray  #: (n_samples, 2)
    trial_start: np.ndarray
    trial_stop: np.ndarray
    go_cue: np.ndarray
    result: np.ndarray
    move_onset: np.ndarray | None
    session_id: str


def _kinematics(rng: np.random.Generator, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smooth 2-D cursor position (cm) and its analytic velocity (cm/s): sums of sines."""
    freqs = rng.uniform(0.1, 0.8, size=(3, 2))
    amps = rng.uniform(1.0, 3.0, size=(3, 2))
    phases = rng.uniform(0, 2 * np.pi, size=(3, 2))
    arg = 2 * np.pi * freqs[None] * t[:, None, None] + phases[None]
    pos = (amps[None] * np.sin(arg)).sum(axis=1)
    vel = (amps[None] * 2 * np.pi * freqs[None] * np.cos(arg)).sum(axis=1)
    return pos, vel


def make_truth(spec: Spec) -> Truth:
    """Draw spikes, behaviour and trials for ``spec`` (deterministic in ``spec.seed``)."""
    rng = np.random.default_rng(spec.seed)
    dur = spec.duration_s
    beh_t = np.arange(0.0, dur, 1.0 / spec.behaviour_hz) + 0.0123
    pos, vel = _kinematics(rng, beh_t)
    spikes = []
    for u in range(spec.n_units):
        span = dur + spec.spikes_past_end_s
        n = rng.poisson(spec.rate_hz * (1 + u % 3) * span)
        spikes.append(np.sort(rng.uniform(0.0, span, size=n)))
    if spec.empty_unit and spec.n_units > 1:
        spikes[1] = np.zeros(0)
    if spec.outside_spikes:
        spikes[0] = np.concatenate([[-5.0, -0.5], spikes[0], [dur + 50.0]])
    if spec.unsorted_spikes:
        spikes[0] = rng.permutation(spikes[0])
    if spec.behaviour_nans:
        vel = vel.copy()
        pos = pos.copy()
        vel[100:110] = np.nan
        pos[100:110] = np.nan
    if spec.outliers:
        pos = pos.copy()
        pos[1000:1005] = 50.0
    if spec.nonmonotonic:
        beh_t = beh_t.copy()
        beh_t[500:510] -= 0.2  # ten samples jump back in time
    edges = np.linspace(1.0, dur - 1.0, spec.n_trials + 1)
    trial_start = edges[:-1] + 0.05
    trial_stop = edges[1:] - 0.05
    go_cue = trial_start + 0.3 * (trial_stop - trial_start)
    result = np.array(["R" if k % 5 != 4 else "A" for k in range(spec.n_trials)], dtype=object)
    if spec.zero_valid:
        result[:] = "A"
    move = go_cue + 0.2 if spec.layout == "nlb" else None
    unit_ids = np.arange(spec.n_units) + 100
    if spec.duplicate_ids and spec.n_units > 2:
        unit_ids[2] = unit_ids[1]
    if spec.layout == "nlb":
        areas = ["M1" if u % 2 == 0 else "PMd" for u in range(spec.n_units)]
        sites = ["probe0" if u % 2 == 0 else "probe1" for u in range(spec.n_units)]
        xyz = np.stack([np.arange(spec.n_units) * 10.0, np.ones(spec.n_units),
                        np.arange(spec.n_units) * -20.0], axis=1)
    else:
        areas = ["M1" if u < spec.n_units // 2 else "PMd" for u in range(spec.n_units)]
        sites = [f"electrode_group_{a}" for a in areas]
        xyz = np.full((spec.n_units, 3), np.nan)
    session_id = f"sub-{spec.subject}_ses-{spec.task}-{spec.date}"
    return Truth(spikes, unit_ids, areas, sites, xyz, beh_t, vel, pos, trial_start, trial_stop,
                 go_cue, result, move, session_id)


def write_nwb(path: str | Path, spec: Spec | None = None) -> Truth:
    """Write an NWB file for ``spec`` at ``path``; return the ground truth."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position
    from pynwb.file import Subject

    spec = spec or Spec()
    tr = make_truth(spec)
    start = datetime.strptime(spec.date, "%Y%m%d").replace(tzinfo=UTC)
    nwb = NWBFile(
        session_description="generated for rpnt tests", identifier=tr.session_id,
        session_start_time=start, session_id=tr.session_id,
        subject=Subject(subject_id=spec.subject, species="Macaca mulatta"),
    )
    dev = nwb.create_device(name="array")
    groups = {}
    for site, area in dict.fromkeys(zip(tr.sites, tr.areas, strict=True)):
        groups[site] = nwb.create_electrode_group(
            name=site, description=f"{area} array", location=area, device=dev)
    if spec.layout == "nlb":
        for u in range(spec.n_units):
            x, y, z = tr.xyz[u]
            nwb.add_electrode(group=groups[tr.sites[u]], location=tr.areas[u], x=x, y=y, z=z)
    else:
        for u in range(spec.n_units):
            nwb.add_electrode(group=groups[tr.sites[u]], location=tr.areas[u])
    if not spec.no_units:
        _add_units(nwb, spec, tr)
    if not spec.no_behaviour:
        beh = nwb.create_processing_module(name="behavior", description="behaviour")
        if spec.layout == "nlb":
            beh.add(TimeSeries(name="hand_vel", data=tr.vel, timestamps=tr.beh_t, unit="cm/s"))
            beh.add(TimeSeries(name="hand_pos", data=tr.pos, timestamps=tr.beh_t, unit="cm"))
        else:
            posc = Position(name="Position")
            posc.create_spatial_series(name="cursor_pos", data=tr.pos, timestamps=tr.beh_t,
                                       reference_frame="screen centre", unit="cm")
            beh.add(posc)
            if spec.with_velocity:
                velc = BehavioralTimeSeries(name="Velocity")
                velc.create_timeseries(name="cursor_vel", data=tr.vel, timestamps=tr.beh_t,
                                       unit="cm/s")
                beh.add(velc)
            accc = BehavioralTimeSeries(name="Acceleration")
            accc.create_timeseries(name="cursor_acc", data=np.gradient(tr.vel, axis=0),
                                   timestamps=tr.beh_t, unit="cm/s^2")
            beh.add(accc)
    _add_trials(nwb, spec, tr)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    if spec.duplicate_ids:
        # pynwb may refuse duplicate ids; write them into the file directly.
        with h5py.File(path, "r+") as f:
            f["units/id"][:] = tr.unit_ids
    return tr


def _add_units(nwb, spec: Spec, tr: Truth) -> None:
    if spec.layout == "nlb":
        nwb.add_unit_column(name="heldout", description="held-out neuron (NLB)")
        for u in range(spec.n_units):
            nwb.add_unit(id=int(u + 100), spike_times=tr.spikes[u], electrodes=[u],
                         obs_intervals=[[0.0, spec.duration_s]], heldout=bool(u == 0))
    else:
        rng = np.random.default_rng(spec.seed + 1)
        for u in range(spec.n_units):
            n = len(tr.spikes[u])
            wf = rng.integers(-50, 50, size=(n, 1, 48)).astype(np.int16)
            nwb.add_unit(id=int(u + 100), spike_times=tr.spikes[u], electrodes=[u],
                         waveforms=list(wf) if n else np.zeros((0, 1, 48), np.int16))


def _add_trials(nwb, spec: Spec, tr: Truth) -> None:
    n = spec.n_trials
    if spec.layout == "nlb":
        nwb.add_trial_column("go_cue_time", "go cue")
        nwb.add_trial_column("move_onset_time", "movement onset")
        nwb.add_trial_column("split", "NLB split")
        splits = ["train", "train", "val", "train", "none"]
        for k in range(n):
            nwb.add_trial(start_time=tr.trial_start[k], stop_time=tr.trial_stop[k],
                          go_cue_time=tr.go_cue[k], move_onset_time=tr.move_onset[k],
                          split="none" if spec.zero_valid else splits[k % 5])
        return
    if spec.task == "RT":
        nwb.add_trial_column("go_cue_time_array", "go cues of the 4 targets")
        nwb.add_trial_column("num_attempted", "targets attempted")
        nwb.add_trial_column("result", "R/A/F/I")
        for k in range(n):
            arr = tr.go_cue[k] + np.array([0.0, 0.5, 1.0, 1.5])
            nwb.add_trial(start_time=tr.trial_start[k], stop_time=tr.trial_stop[k],
                          go_cue_time_array=arr, num_attempted=4, result=str(tr.result[k]))
        return
    nwb.add_trial_column("target_on_time", "target on")
    if not spec.no_go_cue:
        nwb.add_trial_column("go_cue_time", "go cue")
    nwb.add_trial_column("result", "R/A/F/I")
    nwb.add_trial_column("target_id", "target index")
    for k in range(n):
        kw = dict(start_time=tr.trial_start[k], stop_time=tr.trial_stop[k],
                  target_on_time=tr.trial_start[k] + 0.1, result=str(tr.result[k]),
                  target_id=float(k % 8))
        if not spec.no_go_cue:
            kw["go_cue_time"] = tr.go_cue[k]
        nwb.add_trial(**kw)
