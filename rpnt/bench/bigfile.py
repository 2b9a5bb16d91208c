"""Large DANDI-000688-layout NWB files for ``rpnt bench ingest``.

The file skeleton is :mod:`rpnt.nwb.write` (shared with the simulator); this module
draws the arrays: Poisson spikes with log-normally spread per-unit rates, units
alternating between an M1 and a PMd array, a smooth cursor trajectory at 100 Hz (ending
``behaviour_tail_s`` after the spikes), 3-s trials. A ``waveforms`` column is present, as
in 000688: one 48-sample waveform per unit, or one per spike (about 1 GB for 10 M
spikes), so that reading it by mistake would show in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rpnt.nwb import write as nwb_write


@dataclass
class BigSpec:
    n_units: int = 200
    duration_s: float = 3700.0
    mean_rate_hz: float = 14.0
    behaviour_hz: float = 100.0
    trial_s: float = 3.0
    seed: int = 0
    #: behaviour ends this long after the spikes; negative: before them, as in DANDI
    #: 000688 files, where spikes go on past the last behaviour sample (rpnt bench ingest)
    behaviour_tail_s: float = 0.5


def write_big_nwb(path: str | Path, spec: BigSpec | None = None,
                  waveforms_per_spike: bool = False) -> int:
    """Write the file; return its number of spikes.

    ``waveforms_per_spike``: one 48-sample int16 waveform per spike (about 1 GB for 10 M
    spikes, as in DANDI 000688) instead of one per unit.
    """
    from pynwb import NWBFile  # here: a slow import, needed only to write a file
    from pynwb.file import Subject

    spec = spec or BigSpec()
    rng = np.random.default_rng(spec.seed)
    dur, n = spec.duration_s, spec.n_units
    nwb = NWBFile(session_description="rpnt bench ingest", identifier="bench",
                  session_start_time=datetime(2016, 9, 9, tzinfo=UTC),
                  session_id="sub-B_ses-CO-20160909",
                  subject=Subject(subject_id="B", species="Macaca mulatta"))
    sites = [nwb_write.Site("M1", "M1", n - n // 2), nwb_write.Site("PMd", "PMd", n // 2)]
    first = nwb_write.add_sites(nwb, sites)
    unit = np.arange(n)
    electrode = first[unit % 2] + unit // 2  # units alternate between the two arrays
    rates = spec.mean_rate_hz * rng.lognormal(0.0, 0.5, n) / np.exp(0.125)
    counts = rng.poisson(rates * dur)
    times = rng.uniform(0.0, dur, counts.sum())
    ends = np.cumsum(counts)
    for u in range(n):  # one sort per unit (a loop over units, not spikes)
        times[ends[u] - counts[u]:ends[u]].sort()
    n_wf = counts if waveforms_per_spike else np.ones(n, dtype=np.int64)
    waveforms = rng.integers(-100, 100, (int(n_wf.sum()), nwb_write.N_WAVEFORM_SAMPLES),
                             dtype=np.int16)
    nwb_write.add_units(nwb, times, counts, electrode, waveforms, n_wf, "sorted units")
    t = np.arange(0.0, dur + spec.behaviour_tail_s, 1.0 / spec.behaviour_hz)
    pos = np.stack([np.sin(0.3 * t), np.cos(0.2 * t)], axis=1) * 5.0
    vel = np.gradient(pos, t, axis=0)
    nwb_write.add_cursor_kinematics(nwb, t, pos, vel, np.gradient(vel, t, axis=0), "behaviour")
    k = int(dur // spec.trial_s) - 1
    t0 = 1.0 + spec.trial_s * np.arange(k)
    nwb_write.add_trials(nwb, t0, t0 + 2.0, {
        "go_cue_time": ("go cue (s)", t0 + 0.5),
        "result": ("R reward, A abort", ["R" if i % 7 else "A" for i in range(k)]),
        "target_id": ("target index", (np.arange(k) % 8).astype(float)),
    })
    nwb_write.write(nwb, path)
    return int(times.size)
