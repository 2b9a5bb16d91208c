"""Helpers for the simulator tests: SessionData built straight from a simulated session.

Binning is done here with ``np.histogram`` (not through ingest), so these tests check the
simulator and the ceiling on their own. Splits reuse ``rpnt.ingest.splits`` (the one rule).
"""

from __future__ import annotations

import numpy as np

from rpnt.data.session import SessionData
from rpnt.ingest.splits import SplitConfig, bin_split, eval_mask, trial_splits
from rpnt.sim.ceiling import bin_rates
from rpnt.sim.kinematics import DT
from rpnt.sim.presets import PRESETS, Preset, SessionSpec
from rpnt.sim.session import SimSession


def preset_with(session: SessionSpec, base: str = "default") -> Preset:
    """A one-session preset using the subjects of ``base``."""
    p = PRESETS[base]
    return Preset(name=f"{base}-one", description="test", subjects=p.subjects,
                  sessions=(session,), waveforms_per_unit=2)


def session_data(sim: SimSession, bin_s: float = 0.02) -> SessionData:
    """Bin a simulated session like the benchmark does (20 ms, 70/10/20 valid trials)."""
    b = sim.behaviour
    t_end = b.time[-1]
    edges = np.arange(0.0, t_end + bin_s / 2, bin_s)
    time = edges[:-1]
    counts = np.stack([
        np.histogram(sim.spike_times[sim.spike_unit == u], bins=edges)[0]
        for u in range(sim.n_units)
    ], axis=1).astype(np.uint16)
    vel = bin_rates(b.time, b.vel, DT, time, bin_s).astype(np.float32)
    tr = b.trials
    start, stop = tr["start_time"], tr["stop_time"]
    dur = stop - start
    if sim.spec.task == "CO":
        valid = (tr["result"] == "R") & np.isfinite(tr["target_id"]) & (dur > 0.5) & (dur < 6)
        ev_start = tr["go_cue_time"]
    else:
        valid = (tr["result"] == "R") & (tr["num_attempted"] == 4) & (dur > 2) & (dur < 10)
        ev_start = start
    cfg = SplitConfig()
    tsplit = trial_splits(valid, cfg).astype(str)
    split = bin_split(time, start, stop, tsplit, cfg.padding_s)
    scored = eval_mask(time, ev_start, stop, valid)
    areas = np.array([sim.subject.sites[s].area for s in sim.unit_site])
    sites = np.array([sim.subject.sites[s].name for s in sim.unit_site])
    return SessionData(
        session=sim.spec.session_id, subject=sim.spec.subject, task=sim.spec.task_name,
        recording_date=sim.spec.iso_date, dataset="sim", bin_size_s=bin_s, time=time,
        spike_counts=counts, velocity=vel, split=split.astype(np.int8),
        eval_mask=scored, unit_id=np.array([str(i) for i in range(sim.n_units)]),
        unit_area=areas, unit_site=sites, unit_xyz=np.full((sim.n_units, 3), np.nan),
        trial_start=start, trial_stop=stop, trial_split=tsplit,
    )
