"""Small NWB files in the three FALCON layouts, written with pynwb from the layouts as
FALCON documents and writes them (never through the simulator):

- M2 (000953, ``preproc/m2_preproc.py``): ``acquisition/finger_vel`` and ``finger_pos``,
  BehavioralTimeSeries of the channels ``index`` and ``mrs`` sharing timestamps that jump
  between trial segments (not evenly spaced); ``acquisition/eval_mask``; trials with
  ``tgt_loc`` and ``trial_num``; one unit per electrode.
- M1 (000941, ``preproc/m1_reachgrasp_preprocv2.py``): ``acquisition/preprocessed_emg``,
  one TimeSeries per muscle on ``arange(first spike, last spike, 0.02).round(4)``;
  ``eval_mask`` True inside trials; trials with go cue / move onset columns.
- H1 (000954, ``data_demos/h1.ipynb``): ``acquisition/OpenLoopKinematicsVelocity`` (n, 7)
  and ``OpenLoopKinematics`` (labels comma-separated in its description, timed by
  ``starting_time`` with ``rate`` 0.02 used as the period), ``eval_mask``, ``TrialNum``.

Spikes include ones exactly on bin edges, inside gaps and on the last edge, where a
binning rule that differs from ``bin_units`` would show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

M1_MUSCLES = ["ECRb", "ECRl", "ECU", "EDC", "FCR", "FCU", "FDP", "FDS", "APB", "FPB",
              "OP", "ADM", "FDI", "Brach", "Bicep", "Tricep"]
H1_LABELS = ["x", "y", "z", "rx", "g1", "g2", "g3"]


@dataclass
class FalconTruth:
    """What a file holds: spikes per unit, bin ends, covariates (n, D), eval mask, trials."""

    spikes: list[np.ndarray]
    bin_ends: np.ndarray
    covariates: np.ndarray
    names: list[str]
    eval_mask: np.ndarray
    trial_start: np.ndarray
    trial_stop: np.ndarray


def _nwb(session_id: str, subject: str):
    from pynwb import NWBFile
    from pynwb.file import Subject

    nwb = NWBFile(session_description="FALCON-layout test file", identifier=session_id,
                  session_start_time=datetime(2020, 10, 19, tzinfo=UTC),
                  session_id=session_id)
    nwb.subject = Subject(subject_id=subject, species="Macaca mulatta")
    return nwb


def _units(nwb, spikes: list[np.ndarray]) -> None:
    dev = nwb.create_device(name="array")
    group = nwb.create_electrode_group(name="M1 array", description="Utah array",
                                       location="M1", device=dev)
    for _ in spikes:
        nwb.add_electrode(location="M1", group=group)
    for i, s in enumerate(spikes):
        nwb.add_unit(id=i, spike_times=s, electrodes=[i])


def _spikes(rng: np.random.Generator, n_units: int, t0: float, t1: float,
            edges: np.ndarray) -> list[np.ndarray]:
    """Poisson-ish spikes plus spikes placed on bin edges (the last one included)."""
    out = []
    for u in range(n_units):
        s = np.sort(rng.uniform(t0, t1, int(rng.integers(40, 120))))
        on_edges = rng.choice(edges, size=5, replace=False)
        if u == 0:
            on_edges = np.append(on_edges, edges[-1])
        out.append(np.unique(np.concatenate([s, on_edges])))
    return out


def _channels(nwb, name: str, names: list[str], data: np.ndarray, t: np.ndarray,
              unit: str) -> None:
    """A BehavioralTimeSeries ``name``: one TimeSeries per channel on timestamps ``t``
    (falcon-challenge's ``create_multichannel_timeseries``)."""
    from pynwb.behavior import BehavioralTimeSeries

    bts = BehavioralTimeSeries(name=name)
    for i, ch in enumerate(names):
        bts.create_timeseries(name=ch, data=data[:, i], unit=unit, timestamps=t,
                              comments=f"columns=[{ch}]")
    nwb.add_acquisition(bts)


def _write(nwb, path: Path) -> None:
    from pynwb import NWBHDF5IO

    path.parent.mkdir(parents=True, exist_ok=True)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def write_m2(path: str | Path, seed: int = 0, n_units: int = 5,
             session_id: str = "sub-MonkeyN-held-in-calib_ses-2020-10-19-Run1") -> FalconTruth:
    from pynwb import TimeSeries

    rng = np.random.default_rng(seed)
    # three trial segments of 20 ms samples: a gap of 0.3 s, then one of 0.013 s (short)
    segs = [np.arange(60) * 0.02 + 1.0, np.arange(50) * 0.02 + 2.5, np.arange(40) * 0.02 + 3.493]
    t = np.concatenate(segs)
    n = t.size
    vel = np.cumsum(rng.normal(size=(n, 2)), axis=0) * 0.01
    emask = rng.random(n) > 0.2
    nwb = _nwb(session_id, "MonkeyN")
    nwb.add_trial_column(name="tgt_loc", description="target location (0-1 AU)")
    nwb.add_trial_column(name="trial_num", description="trial number")
    starts = np.array([s[0] for s in segs])
    stops = np.array([s[-1] + 0.02 for s in segs])
    for i, (a, b) in enumerate(zip(starts, stops, strict=True)):
        nwb.add_trial(start_time=a, stop_time=b, tgt_loc=[0.5, 0.2], trial_num=i)
    spikes = _spikes(rng, n_units, 0.9, t[-1] + 0.05, np.concatenate([t, t + 0.02]))
    _units(nwb, spikes)
    for name, data in (("finger_pos", np.cumsum(vel, axis=0)), ("finger_vel", vel)):
        _channels(nwb, name, ["index", "mrs"], data, t, "AU")
    nwb.add_acquisition(TimeSeries(name="eval_mask", description="Timesteps to keep",
                                   timestamps=t, data=emask, unit="bool"))
    _write(nwb, Path(path))
    return FalconTruth(spikes, t + 0.02, vel, ["index", "mrs"], emask, starts, stops)


def write_m1(path: str | Path, seed: int = 1, n_units: int = 6,
             session_id: str = "sub-MonkeyL-held-out-calib_ses-20121004") -> FalconTruth:
    from pynwb import TimeSeries

    rng = np.random.default_rng(seed)
    first, last = 0.4137, 6.2
    t = np.arange(first, last, 1 / 50).round(4)
    n = t.size
    emg = np.abs(rng.normal(size=(n, len(M1_MUSCLES)))).cumsum(axis=0) % 3.0
    starts = np.array([0.6, 2.2, 4.0])
    stops = np.array([1.8, 3.6, 5.6])
    emask = np.zeros(n, bool)
    for a, b in zip(starts, stops, strict=True):
        emask[np.searchsorted(t, a):np.searchsorted(t, b)] = True
    nwb = _nwb(session_id, "MonkeyL")
    for col in ("gocue_time", "move_onset_time"):
        nwb.add_trial_column(name=col, description=col)
    for a, b in zip(starts, stops, strict=True):
        nwb.add_trial(start_time=a, stop_time=b, gocue_time=a + 0.2, move_onset_time=a + 0.4)
    spikes = _spikes(rng, n_units, first, last, np.concatenate([t, t - 0.02]))
    spikes[1] = np.append(spikes[1], [first - 0.5, last + 1.0])  # outside every bin
    _units(nwb, spikes)
    _channels(nwb, "preprocessed_emg", M1_MUSCLES, emg, t, "mV")
    nwb.add_acquisition(TimeSeries(name="eval_mask", description="Timesteps to KEEP",
                                   timestamps=t, data=emask, unit="bool"))
    _write(nwb, Path(path))
    order = np.argsort(M1_MUSCLES)  # a BehavioralTimeSeries lists its channels by name
    return FalconTruth(spikes, t, emg[:, order], [M1_MUSCLES[i] for i in order], emask,
                       starts, stops)


def write_h1(path: str | Path, seed: int = 2, n_units: int = 4,
             session_id: str = "sub-HumanPitt-held-in-calib_ses-19250108T110520"
             ) -> FalconTruth:
    from pynwb import TimeSeries

    rng = np.random.default_rng(seed)
    n, offset = 220, 0.0
    ends = offset + np.arange(n) * 0.02
    vel = rng.normal(size=(n, 7))
    trial_num = np.repeat(np.arange(4), [50, 60, 50, 60])
    emask = rng.random(n) > 0.1
    nwb = _nwb(session_id, "HumanPitt")
    spikes = _spikes(rng, n_units, 0.0, ends[-1], ends)
    spikes[2] = np.append(spikes[2], -0.1)  # before the first bin: dropped
    _units(nwb, spikes)
    desc = ", ".join(H1_LABELS)
    nwb.add_acquisition(TimeSeries(name="OpenLoopKinematics", description=desc,
                                   data=np.cumsum(vel, axis=0), unit="AU",
                                   starting_time=0.0, rate=0.02))
    nwb.add_acquisition(TimeSeries(name="OpenLoopKinematicsVelocity", description=desc,
                                   data=vel, unit="AU", starting_time=0.0, rate=0.02))
    nwb.add_acquisition(TimeSeries(name="eval_mask", data=emask.astype(np.int8), unit="bool",
                                   starting_time=0.0, rate=0.02, description="eval"))
    nwb.add_acquisition(TimeSeries(name="TrialNum", data=trial_num, unit="trial",
                                   starting_time=0.0, rate=0.02, description="trial"))
    _write(nwb, Path(path))
    first = np.concatenate([[0], np.flatnonzero(np.diff(trial_num)) + 1])
    last = np.concatenate([first[1:], [n]]) - 1
    return FalconTruth(spikes, ends, vel, H1_LABELS, emask, ends[first] - 0.02, ends[last])
