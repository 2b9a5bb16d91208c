"""Write one simulated session as an NWB file in the DANDI 000688 (Perich-Miller) layout.

Objects, as in 000688: a device and an electrode group ``electrode_group_<site>`` per array
(96 channels), the electrodes table with ``location, group, group_name, label, bank, pin,
filtering`` (plus ``x, y, z`` in micrometres for probe sites of the multisite preset), the
units table with ``spike_times``, ``electrodes`` and a doubly ragged int16 ``waveforms``
column (48 samples; by default only the first few spikes of each unit keep a waveform, to
stay small — readers must not need it), the trials table with the center-out or
random-target columns, and ``processing/behavior/{Position/cursor_pos, Velocity/cursor_vel,
Acceleration/cursor_acc}`` at 100 Hz with timestamps, in cm.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np

from rpnt.sim.generate import SimSession

BEHAVIOUR_STEP = 2  #: fine-grid samples per behaviour sample (DT 5 ms -> 100 Hz)
N_WAVEFORM_SAMPLES = 48
_CHICAGO = dt.timezone(dt.timedelta(hours=-6))  # the lab's local time (standard time)

_CO_COLUMNS = {
    "target_on_time": "time the outer target appeared (s); NaN if the trial ended before",
    "go_cue_time": "time of the go cue (s); NaN if the trial was aborted before it",
    "result": "R reward, A abort, F fail, I incomplete",
    "target_dir": "direction of the outer target (rad, 0 = right, counter-clockwise)",
    "target_id": "index of the outer target, 0..7 (NaN when no target was shown)",
    "target_corners": "target square corners (left, top, right, bottom) in cm",
}
_RT_COLUMNS = {
    "go_cue_time_array": "go cue time of each of the 4 targets (s); NaN if not presented",
    "num_attempted": "number of targets attempted",
    "num_targets": "number of targets of the trial",
    "result": "R reward, A abort, F fail, I incomplete",
    "target_dir": "direction from the previous target to each target (rad)",
    "target_id": "grid index (row * 9 + col, 9 x 9 grid over +-8 cm) of each target",
    "target_size": "side of the target squares (cm)",
}


def _waveform_template(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(N_WAVEFORM_SAMPLES)
    trough = -rng.uniform(40, 120) * np.exp(-0.5 * ((t - 14) / rng.uniform(1.5, 3)) ** 2)
    peak = rng.uniform(10, 40) * np.exp(-0.5 * ((t - 22) / rng.uniform(3, 6)) ** 2)
    return trough + peak


def write_nwb(sim: SimSession, path: str | Path, *, waveforms_per_unit: int | None) -> None:
    """Write ``sim`` to ``path`` (an .nwb file; the caller makes the write atomic)."""
    from hdmf.common import DynamicTableRegion, VectorData, VectorIndex
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position
    from pynwb.file import Subject
    from pynwb.misc import Units

    spec, subj = sim.spec, sim.subject
    start = dt.datetime(int(spec.date[:4]), int(spec.date[4:6]), int(spec.date[6:]), 10, 0,
                        tzinfo=_CHICAGO)
    nwb = NWBFile(
        session_description=(
            f"simulated {spec.task_name.replace('_', '-')} reaching session "
            f"(rpnt simulator, preset {sim.preset}, seed {sim.seed})"
        ),
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"rpnt-sim/{sim.seed}/{spec.session_id}")),
        session_start_time=start,
        session_id=spec.session_id,
        experimenter=["Simulator, Rpnt"],
        lab="simulated (layout of the Miller lab, DANDI 000688)",
        institution="rpnt",
        experiment_description=(
            "Monkey controls a cursor with a manipulandum: "
            + ("center-out reaches to 8 targets with an instructed delay."
               if spec.task == "CO" else "sequences of 4 random targets per trial.")
        ),
        keywords=["motor cortex", "reaching", "simulation", spec.task_name],
    )
    nwb.subject = Subject(subject_id=subj.subject_id, species="Macaca mulatta", sex=subj.sex,
                          age=subj.age, description="simulated rhesus macaque")

    # Devices, electrode groups, electrodes.
    multisite = any(s.xyz_um is not None for s in subj.sites)
    model = nwb.create_device_model(
        name="Neuropixels-style probe" if multisite else "Utah array",
        manufacturer="simulated (Imec)" if multisite else "Blackrock Microsystems",
        description="96 recording channels" if not multisite else "96 channels per site",
    )
    for col, desc in (("label", "channel label"), ("bank", "amplifier bank"),
                      ("pin", "connector pin")):
        nwb.add_electrode_column(col, desc)
    groups, elec_offset = [], []
    for site in subj.sites:
        device = nwb.create_device(name=f"array_{site.name}", model=model,
                                   description=f"{site.area} recording {site.name}")
        grp = nwb.create_electrode_group(
            name=f"electrode_group_{site.name}", description=f"{site.area} channels",
            location=site.area, device=device,
        )
        groups.append(grp)
        elec_offset.append(len(nwb.electrodes) if nwb.electrodes is not None else 0)
        for ch in range(site.n_channels):
            kw = {}
            if multisite:
                x0, y0, z0 = site.xyz_um
                # two columns of contacts, 20 um apart, 20 um vertical pitch
                kw = {"x": x0 + 16.0 * (ch % 2), "y": y0, "z": z0 - 20.0 * (ch // 2)}
            nwb.add_electrode(location=site.area, group=grp, group_name=grp.name,
                              label=f"{site.name}-{ch + 1:03d}", bank="ABCD"[ch // 32 % 4],
                              pin=ch % 32 + 1, filtering="250 Hz high-pass (simulated)", **kw)

    # Units: spike trains, their electrode, and a few waveforms each. Columns are built
    # from whole arrays: per-unit add_unit makes hdmf convert every spike time separately.
    wf_rng = np.random.default_rng(np.random.SeedSequence([sim.seed, 7, sim.session_hash]))
    bounds = np.searchsorted(sim.spike_unit, np.arange(sim.n_units + 1))
    n_spk = np.diff(bounds)
    n_wf = n_spk if waveforms_per_unit is None else np.minimum(n_spk, waveforms_per_unit)
    templates = np.stack([_waveform_template(wf_rng) for _ in range(sim.n_units)])
    wf = np.repeat(templates, n_wf, axis=0)
    wf = (wf + wf_rng.normal(0, 8, wf.shape)).astype(np.int16)  # (sum n_wf, 48)
    elec = np.asarray(elec_offset)[sim.unit_site] + sim.unit_channel
    st = VectorData(name="spike_times", description="spike times (s)", data=sim.spike_times)
    el = DynamicTableRegion(name="electrodes", description="electrode of each unit",
                            data=elec.astype(np.int64), table=nwb.electrodes)
    wfd = VectorData(name="waveforms", description="spike waveforms (one electrode)",
                     data=wf)
    wfi = VectorIndex(name="waveforms_index", target=wfd,
                      data=np.arange(1, wf.shape[0] + 1, dtype=np.int64))  # 1 per event
    nwb.units = Units(
        name="units", description="sorted units (simulated)", waveform_rate=30000.0,
        waveform_unit="microvolts", resolution=1 / 30000.0, electrode_table=nwb.electrodes,
        id=np.arange(sim.n_units),
        columns=[
            st, VectorIndex(name="spike_times_index", target=st, data=bounds[1:]),
            el, VectorIndex(name="electrodes_index", target=el,
                            data=np.arange(1, sim.n_units + 1, dtype=np.int64)),
            wfd, wfi,
            VectorIndex(name="waveforms_index_index", target=wfi, data=np.cumsum(n_wf)),
        ],
    )

    _write_trials(nwb, sim)
    _write_behaviour(nwb, sim, BehavioralTimeSeries, Position, TimeSeries)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _write_trials(nwb, sim: SimSession) -> None:
    tr = sim.behaviour.trials
    cols = _CO_COLUMNS if sim.spec.task == "CO" else _RT_COLUMNS
    for name, desc in cols.items():
        nwb.add_trial_column(name=name, description=desc)
    for i in range(tr["start_time"].size):
        row = {name: (str(tr[name][i]) if name == "result" else tr[name][i]) for name in cols}
        nwb.add_trial(start_time=float(tr["start_time"][i]),
                      stop_time=float(tr["stop_time"][i]), **row)


def glitched_kinematics(sim: SimSession) -> tuple[np.ndarray, ...]:
    """Behaviour as recorded: 100 Hz samples with the session's cursor-jump artefacts.

    Returns (timestamps (m,), pos (m, 2), vel (m, 2), acc (m, 2)).
    """
    b = sim.behaviour
    sl = slice(0, None, BEHAVIOUR_STEP)
    ts, pos, vel, acc = b.time[sl], b.pos[sl].copy(), b.vel[sl].copy(), b.acc[sl].copy()
    rng = np.random.default_rng(np.random.SeedSequence([sim.seed, 11, sim.session_hash]))
    step = ts[1] - ts[0]
    # Acquisition clock jitter (~0.1 ms): timestamps are irregular, as in the real files,
    # so readers must use them rather than assume a rate.
    jitter = np.clip(rng.normal(0, 1e-4, ts.size), -4e-4, 4e-4)
    jitter[0] = 0.0  # the recording starts at t = 0
    ts = ts + jitter
    for t0, t1 in b.glitches:
        # The cursor jumps off screen (|x| and |y| >= 12 cm, the 000688 outlier marker is
        # |x| or |y| > 10 cm) and back; velocity and acceleration see the jump as well
        # (|acc| far above 1500 cm/s^2 around its edges).
        inside = (ts >= t0) & (ts < t1)
        jump = rng.choice([-1, 1], 2) * rng.uniform(12, 30, 2)
        off = np.zeros_like(pos)
        off[inside] = jump - pos[inside]
        pos += off
        dv = np.gradient(off, step, axis=0)
        vel += dv
        acc += np.gradient(dv, step, axis=0)
    return ts, pos, vel, acc


def _write_behaviour(nwb, sim: SimSession, BehavioralTimeSeries, Position, TimeSeries) -> None:
    ts, pos, vel, acc = glitched_kinematics(sim)
    mod = nwb.create_processing_module("behavior", "cursor kinematics (manipulandum)")
    position = Position(name="Position")
    position.create_spatial_series(
        name="cursor_pos", data=pos, timestamps=ts, unit="cm",
        reference_frame="center of the screen; x right, y up",
        description="cursor position",
    )
    mod.add(position)
    for cname, sname, data, unit, desc in (
        ("Velocity", "cursor_vel", vel, "cm/s", "cursor velocity"),
        ("Acceleration", "cursor_acc", acc, "cm/s^2", "cursor acceleration"),
    ):
        container = BehavioralTimeSeries(name=cname)
        container.add_timeseries(TimeSeries(name=sname, data=data, timestamps=ts, unit=unit,
                                            description=desc))
        mod.add(container)
