"""A fast writer of large DANDI-000688-layout NWB files for ``rpnt bench ingest``.

Columns are handed to pynwb whole (``VectorData`` / ``VectorIndex``), not row by row, so a
session with 10 M spikes is written in seconds. Spikes are Poisson with per-unit rates
that are log-normally spread; a small ``waveforms`` column (one 48-sample waveform per
unit, with its double index) is present, as in 000688, so that reading it by mistake would
show in the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


@dataclass
class BigSpec:
    n_units: int = 200
    duration_s: float = 3700.0
    mean_rate_hz: float = 14.0
    behaviour_hz: float = 100.0
    trial_s: float = 3.0
    seed: int = 0


def write_big_nwb(path: str | Path, spec: BigSpec | None = None,
                  waveforms_per_spike: bool = False) -> int:
    """Write the file; return its number of spikes.

    ``waveforms_per_spike``: one 48-sample int16 waveform per spike (about 1 GB for 10 M
    spikes, as in DANDI 000688) instead of one per unit.
    """
    from hdmf.common import DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.behavior import BehavioralTimeSeries, Position
    from pynwb.file import Subject
    from pynwb.misc import Units

    spec = spec or BigSpec()
    rng = np.random.default_rng(spec.seed)
    dur, n = spec.duration_s, spec.n_units
    nwb = NWBFile(session_description="rpnt bench ingest", identifier="bench",
                  session_start_time=datetime(2016, 9, 9, tzinfo=UTC),
                  session_id="sub-B_ses-CO-20160909",
                  subject=Subject(subject_id="B", species="Macaca mulatta"))
    dev = nwb.create_device(name="array")
    groups = [nwb.create_electrode_group(name=f"electrode_group_{a}", description=a,
                                         location=a, device=dev) for a in ("M1", "PMd")]
    for u in range(n):
        nwb.add_electrode(group=groups[u % 2], location=groups[u % 2].location)
    rates = spec.mean_rate_hz * rng.lognormal(0.0, 0.5, n) / np.exp(0.125)
    counts = rng.poisson(rates * dur)
    times = rng.uniform(0.0, dur, counts.sum())
    ends = np.cumsum(counts)
    starts = ends - counts
    for u in range(n):  # one sort per unit (a loop over units, not spikes)
        times[starts[u]:ends[u]].sort()
    st = VectorData(name="spike_times", data=times, description="spike times (s)")
    region = DynamicTableRegion(name="electrodes", data=np.arange(n), description="electrode",
                                table=nwb.electrodes)
    n_wf = counts if waveforms_per_spike else np.ones(n, dtype=np.int64)
    wf = VectorData(name="waveforms", description="spike waveforms",
                    data=rng.integers(-100, 100, (int(n_wf.sum()), 48), dtype=np.int16))
    wfi = VectorIndex(name="waveforms_index", data=np.arange(1, int(n_wf.sum()) + 1),
                      target=wf)
    cols = [st, VectorIndex(name="spike_times_index", data=ends, target=st), region,
            VectorIndex(name="electrodes_index", data=np.arange(1, n + 1), target=region),
            wf, wfi,
            VectorIndex(name="waveforms_index_index", data=np.cumsum(n_wf), target=wfi)]
    nwb.units = Units(name="units", id=ElementIdentifiers(name="id", data=np.arange(n)),
                      columns=cols, description="sorted units")
    t = np.arange(0.0, dur + 0.5, 1.0 / spec.behaviour_hz)  # behaviour outlasts the spikes
    pos = np.stack([np.sin(0.3 * t), np.cos(0.2 * t)], axis=1) * 5.0
    vel = np.gradient(pos, t, axis=0)
    beh = nwb.create_processing_module(name="behavior", description="behaviour")
    pc = Position(name="Position")
    pc.create_spatial_series(name="cursor_pos", data=pos, timestamps=t, unit="cm",
                             reference_frame="centre")
    beh.add(pc)
    for name, data in (("Velocity", vel), ("Acceleration", np.gradient(vel, t, axis=0))):
        c = BehavioralTimeSeries(name=name)
        c.create_timeseries(name=f"cursor_{name[:3].lower()}", data=data, timestamps=t,
                            unit="cm/s")
        beh.add(c)
    k = int(dur // spec.trial_s) - 1
    t0 = 1.0 + spec.trial_s * np.arange(k)
    for col in ("go_cue_time", "result", "target_id"):
        nwb.add_trial_column(col, col)
    for i in range(k):
        nwb.add_trial(start_time=t0[i], stop_time=t0[i] + 2.0, go_cue_time=t0[i] + 0.5,
                      result="R" if i % 7 else "A", target_id=float(i % 8))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return int(times.size)
