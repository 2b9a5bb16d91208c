"""Write one simulated session as an NWB file in the DANDI 000688 (Perich-Miller) layout.

The file skeleton is :mod:`rpnt.nwb.write`, shared with the generator of ``rpnt
bench ingest``; this module maps a :class:`SimSession` onto it. Objects, as in 000688: a
device and an electrode group ``electrode_group_<site>`` per array (96 channels), the
electrodes table with ``location, group, group_name, label, bank, pin, filtering`` (plus
``x, y, z`` in micrometres for probe sites of the multisite preset), the units table with
``spike_times``, ``electrodes`` and a doubly ragged int16 ``waveforms`` column (48
samples; by default only the first few spikes of each unit keep a waveform, to stay small
— readers must not need it), the trials table with the center-out or random-target
columns, and ``processing/behavior/{Position/cursor_pos, Velocity/cursor_vel,
Acceleration/cursor_acc}`` at 100 Hz with timestamps, in cm.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np

from rpnt.nwb import write as nwb_write
from rpnt.nwb.write import N_WAVEFORM_SAMPLES
from rpnt.sim.session import SimSession

BEHAVIOUR_STEP = 2  #: fine-grid samples per behaviour sample (DT 5 ms -> 100 Hz)
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
    from pynwb import NWBFile  # here: a slow import, needed only to write a file
    from pynwb.file import Subject

    spec, subj = sim.spec, sim.subject
    start = dt.datetime(int(spec.date[:4]), int(spec.date[4:6]), int(spec.date[6:]), 10, 0,
                        tzinfo=_CHICAGO)
    # Every field is derived from preset, seed and session (no fresh uuid, no "now"), so
    # regenerating a benchmark gives byte-identical files and the same source checksums.
    nwb = NWBFile(
        session_description=(
            f"simulated {spec.task_name.replace('_', '-')} reaching session "
            f"(rpnt simulator, preset {sim.preset}, seed {sim.seed})"
        ),
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                  f"rpnt-sim/{sim.preset}/{sim.seed}/{spec.session_id}")),
        session_start_time=start,
        file_create_date=start,
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
    elec_offset = nwb_write.add_sites(nwb, subj.sites)

    # Units: spike trains, their electrode, and a few waveforms each.
    wf_rng = np.random.default_rng(np.random.SeedSequence([sim.seed, 7, sim.session_hash]))
    n_spk = np.diff(np.searchsorted(sim.spike_unit, np.arange(sim.n_units + 1)))
    n_wf = n_spk if waveforms_per_unit is None else np.minimum(n_spk, waveforms_per_unit)
    templates = np.stack([_waveform_template(wf_rng) for _ in range(sim.n_units)])
    wf = np.repeat(templates, n_wf, axis=0)
    wf = (wf + wf_rng.normal(0, 8, wf.shape)).astype(np.int16)  # (sum n_wf, 48)
    nwb_write.add_units(nwb, sim.spike_times, n_spk, elec_offset[sim.unit_site] + sim.unit_channel,
                       wf, n_wf, description="sorted units (simulated)")

    tr = sim.behaviour.trials
    cols = _CO_COLUMNS if sim.spec.task == "CO" else _RT_COLUMNS
    nwb_write.add_trials(nwb, tr["start_time"], tr["stop_time"], {
        name: (desc, [str(v) for v in tr[name]] if name == "result" else tr[name])
        for name, desc in cols.items()})
    ts, pos, vel, acc = glitched_kinematics(sim)
    nwb_write.add_cursor_kinematics(nwb, ts, pos, vel, acc, "cursor kinematics (manipulandum)")
    nwb_write.write(nwb, path)


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
