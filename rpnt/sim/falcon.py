"""Write a simulated session in a FALCON layout (M2, M1 or H1), already binned at 20 ms.

The FALCON files hold one covariate sample per 20 ms bin (``rpnt.ingest.falcon`` reads
them as ``falcon_challenge.dataloaders.load_nwb`` does); the simulator's fine-grid
kinematics (5 ms) are averaged per bin and turned into each layout's covariates:

- M2 (``acquisition/finger_vel``, channels ``index`` and ``mrs``): the two velocity
  components (cm/s / 100, "AU"), bins only inside trials (FALCON M2 keeps trial segments,
  so its timestamps jump between trials), timestamps = bin starts;
- M1 (``acquisition/preprocessed_emg``, 16 muscles): rectified mixtures of the
  kinematics, ``|W z|`` with ``z`` = (vx, vy, ax, ay, speed) standardised and ``W``
  fixed per subject (the same muscles every day), low-passed (a first-order filter,
  time constant 40 ms), timestamps = bin ends, contiguous;
- H1 (``acquisition/OpenLoopKinematicsVelocity``, 7 columns): vx, vy and five fixed
  mixtures of z (the simulated arm moves in 2-D: the 7 columns have rank <= 5), bins
  ending at ``k * 0.02`` s from 0 (``OpenLoopKinematics`` timed by ``rate`` 0.02), trials
  as runs of ``TrialNum``.

``eval_mask`` is True inside trials. Units, sites and the trials table are those of the
000688 writer (:mod:`rpnt.nwb.write`).
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from pathlib import Path

import numpy as np

from rpnt.nwb import write as nwb_write
from rpnt.nwb.write import N_WAVEFORM_SAMPLES
from rpnt.sim.kinematics import DT
from rpnt.sim.session import SimSession

BIN_S = 0.02
STEP = round(BIN_S / DT)  #: fine samples per bin
EMG_TAU_S = 0.04
MUSCLES = ("ADM", "APB", "Bicep", "Brach", "ECRb", "ECRl", "ECU", "EDC", "FCR", "FCU",
           "FDI", "FDP", "FDS", "FPB", "OP", "Tricep")  #: sorted: the order FALCON lists them
H1_NAMES = ("vx", "vy", "vz", "rx", "grasp1", "grasp2", "grasp3")


def _features(sim: SimSession) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 20 ms bin from the session start: bin starts (n,), velocity (n, 2) cm/s and
    z (n, 5) = standardised (vx, vy, ax, ay, speed)."""
    b = sim.behaviour
    n = b.time.shape[0] // STEP
    vel = b.vel[: n * STEP].reshape(n, STEP, 2).mean(axis=1)
    acc = b.acc[: n * STEP].reshape(n, STEP, 2).mean(axis=1)
    z = np.concatenate([vel, acc, np.linalg.norm(vel, axis=1, keepdims=True)], axis=1)
    z = (z - z.mean(0)) / np.maximum(z.std(0), 1e-9)
    return b.time[0] + BIN_S * np.arange(n), vel, z


def _mixing(sim: SimSession, rows: int, tag: int) -> np.ndarray:
    """A fixed (rows, 5) mixing of the subject (same on every day)."""
    key = zlib.crc32(sim.subject.subject_id.encode())
    return np.random.default_rng(np.random.SeedSequence([sim.seed, 13, tag, key])).normal(
        size=(rows, 5))


def _in_trials(t: np.ndarray, start: np.ndarray) -> np.ndarray:
    """(n,) trial index of each time (the last trial starting at or before it), and -1
    before the first; callers mask with the trial's stop."""
    return np.searchsorted(start, t, side="right") - 1


def covariates(sim: SimSession, layout: str) -> dict[str, np.ndarray | list[str]]:
    """The layout's arrays: names, data (m, D), stamps (m,), eval_mask (m,), and for H1
    the trial number of each bin."""
    starts, vel, z = _features(sim)
    tr = sim.behaviour.trials
    t_start, t_stop = np.asarray(tr["start_time"]), np.asarray(tr["stop_time"])
    k = _in_trials(starts, t_start)
    inside = (k >= 0) & (starts < t_stop[np.maximum(k, 0)])
    if layout == "m2":
        return {"names": ["index", "mrs"], "data": vel[inside] / 100.0,
                "stamps": starts[inside], "eval_mask": np.ones(int(inside.sum()), bool)}
    if layout == "m1":
        from scipy.signal import lfilter  # here: only the M1 stand-in filters

        a = float(np.exp(-BIN_S / EMG_TAU_S))
        emg = lfilter([1 - a], [1, -a], np.abs(z @ _mixing(sim, len(MUSCLES), 1).T), axis=0)
        return {"names": list(MUSCLES), "data": emg, "stamps": starts + BIN_S,
                "eval_mask": inside}
    mix = np.concatenate([np.eye(2, 5), 0.5 * _mixing(sim, len(H1_NAMES) - 2, 2)])
    data = z @ mix.T
    data[:, :2] = vel / 10.0  # the first two are the velocities themselves (AU)
    # H1 bins end at k * 0.02 (load_nwb: offset 0 + arange(n) * rate): row k is the bin
    # [0.02 (k - 1), 0.02 k), so the rows move down one bin (the first, before 0, repeats)
    def shift(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:1], x[:-1]])
    return {"names": list(H1_NAMES), "data": shift(data), "stamps": starts - starts[0],
            "eval_mask": shift(inside), "trial_num": shift(np.maximum(k, 0))}


def write_falcon_nwb(sim: SimSession, path: str | Path, layout: str) -> None:
    """Write ``sim`` to ``path`` in FALCON's ``layout`` (m2, m1 or h1)."""
    from pynwb import NWBFile, TimeSeries  # here: a slow import, needed only to write
    from pynwb.behavior import BehavioralTimeSeries
    from pynwb.file import Subject

    spec, subj = sim.spec, sim.subject
    start = dt.datetime(int(spec.date[:4]), int(spec.date[4:6]), int(spec.date[6:]), 10, 0,
                        tzinfo=dt.UTC)
    nwb = NWBFile(
        session_description=f"simulated FALCON {layout.upper()} stand-in (rpnt simulator, "
                            f"preset {sim.preset}, seed {sim.seed})",
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                  f"rpnt-sim/{sim.preset}/{sim.seed}/{spec.session_id}")),
        session_start_time=start, file_create_date=start, session_id=spec.session_id,
        lab="simulated (layout of FALCON, Karpowicz, Ye et al. 2024)", institution="rpnt")
    nwb.subject = Subject(subject_id=subj.subject_id, species="Macaca mulatta", sex=subj.sex,
                          age=subj.age, description="simulated")
    elec_offset = nwb_write.add_sites(nwb, subj.sites)
    n_spk = np.diff(np.searchsorted(sim.spike_unit, np.arange(sim.n_units + 1)))
    nwb_write.add_units(nwb, sim.spike_times, n_spk,
                        elec_offset[sim.unit_site] + sim.unit_channel,
                        np.zeros((sim.n_units, N_WAVEFORM_SAMPLES), np.int16),
                        np.ones(sim.n_units, np.int64), description="threshold crossings")
    tr = sim.behaviour.trials
    cov = covariates(sim, layout)
    names, data, stamps = cov["names"], np.asarray(cov["data"]), np.asarray(cov["stamps"])
    if layout == "h1":
        desc = ", ".join(names)
        for name, values in (("OpenLoopKinematics", np.cumsum(data, axis=0) * BIN_S),
                             ("OpenLoopKinematicsVelocity", data)):
            nwb.add_acquisition(TimeSeries(name=name, description=desc, data=values,
                                           unit="AU", starting_time=0.0, rate=BIN_S))
        nwb.add_acquisition(TimeSeries(name="TrialNum", description="trial of each bin",
                                       data=np.asarray(cov["trial_num"]), unit="trial",
                                       starting_time=0.0, rate=BIN_S))
    else:
        nwb_write.add_trials(nwb, tr["start_time"], tr["stop_time"], {})
        bts = BehavioralTimeSeries(name="finger_vel" if layout == "m2" else "preprocessed_emg")
        for i, name in enumerate(names):
            bts.create_timeseries(name=name, data=data[:, i], timestamps=stamps,
                                  unit="AU" if layout == "m2" else "mV",
                                  comments=f"columns=[{name}]")
        nwb.add_acquisition(bts)
    emask = np.asarray(cov["eval_mask"], bool)
    nwb.add_acquisition(
        TimeSeries(name="eval_mask", description="Timesteps to keep covariates",
                   data=emask, unit="bool", timestamps=stamps) if layout != "h1" else
        TimeSeries(name="eval_mask", description="Timesteps to keep covariates",
                   data=emask, unit="bool", starting_time=0.0, rate=BIN_S))
    nwb_write.write(nwb, path)
