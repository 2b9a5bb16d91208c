"""Write NWB files in the DANDI 000688 (Perich-Miller) layout from whole arrays.

One skeleton for the two writers of such files, the simulator (:mod:`rpnt.sim.nwb`) and
the generator of ``rpnt bench ingest`` (:mod:`rpnt.bench.bigfile`). It writes the
objects :func:`rpnt.ingest.adapters.perich_miller` reads, at the paths DANDI 000688 has:

- a device and an electrode group ``electrode_group_<site>`` per recording site, and the
  electrodes table (``location, group, group_name, label, bank, pin, filtering``, plus
  ``x, y, z`` in micrometres when the sites have coordinates);
- the units table: ``spike_times`` (+ index), ``electrodes`` (+ index) and the doubly
  ragged int16 ``waveforms`` column (48 samples, any number of waveforms per unit);
- ``processing/behavior/{Position/cursor_pos, Velocity/cursor_vel,
  Acceleration/cursor_acc}`` with timestamps, in cm;
- the trials table, its columns given as whole arrays.

Columns are handed to pynwb whole (``VectorData`` / ``VectorIndex``): per-unit
``add_unit`` makes hdmf convert every spike time separately. pynwb is imported inside
the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

N_WAVEFORM_SAMPLES = 48


class Site(NamedTuple):
    """A recording site (``rpnt.sim.presets.SiteSpec`` has the same fields)."""

    name: str  #: electrode group is ``electrode_group_<name>``
    area: str  #: brain area written to ``location``
    n_channels: int
    xyz_um: tuple[float, float, float] | None = None


def add_sites(nwb, sites: Sequence[Site]) -> np.ndarray:
    """Devices, electrode groups and electrodes of ``sites``; returns (n_site,) the index
    of each site's first electrode."""
    multisite = any(s.xyz_um is not None for s in sites)
    model = nwb.create_device_model(
        name="Neuropixels-style probe" if multisite else "Utah array",
        manufacturer="simulated (Imec)" if multisite else "Blackrock Microsystems",
        description="96 recording channels" if not multisite else "96 channels per site",
    )
    for col, desc in (("label", "channel label"), ("bank", "amplifier bank"),
                      ("pin", "connector pin")):
        nwb.add_electrode_column(col, desc)
    offsets = []
    for site in sites:
        device = nwb.create_device(name=f"array_{site.name}", model=model,
                                   description=f"{site.area} recording {site.name}")
        grp = nwb.create_electrode_group(
            name=f"electrode_group_{site.name}", description=f"{site.area} channels",
            location=site.area, device=device,
        )
        offsets.append(len(nwb.electrodes) if nwb.electrodes is not None else 0)
        for ch in range(site.n_channels):
            kw = {}
            if multisite:
                x0, y0, z0 = site.xyz_um
                # two columns of contacts, 16 um apart, 20 um vertical pitch
                kw = {"x": x0 + 16.0 * (ch % 2), "y": y0, "z": z0 - 20.0 * (ch // 2)}
            nwb.add_electrode(location=site.area, group=grp, group_name=grp.name,
                              label=f"{site.name}-{ch + 1:03d}", bank="ABCD"[ch // 32 % 4],
                              pin=ch % 32 + 1, filtering="250 Hz high-pass (simulated)", **kw)
    return np.asarray(offsets, dtype=np.int64)


def add_units(nwb, spike_times: np.ndarray, n_spikes: np.ndarray, electrode: np.ndarray,
              waveforms: np.ndarray, n_waveforms: np.ndarray, description: str) -> None:
    """The units table from whole arrays.

    ``spike_times`` (n,) float64, each unit's spikes in turn; ``n_spikes`` (n_unit,) spikes
    per unit; ``electrode`` (n_unit,) row of each unit's electrode; ``waveforms``
    (sum(n_waveforms), 48) int16, each unit's in turn, ``n_waveforms`` (n_unit,) of them
    per unit (one per spike in DANDI 000688).
    """
    from hdmf.common import DynamicTableRegion, VectorData, VectorIndex
    from pynwb.misc import Units

    n_unit = n_spikes.shape[0]
    st = VectorData(name="spike_times", description="spike times (s)", data=spike_times)
    el = DynamicTableRegion(name="electrodes", description="electrode of each unit",
                            data=np.asarray(electrode, dtype=np.int64), table=nwb.electrodes)
    wfd = VectorData(name="waveforms", description="spike waveforms (one electrode)",
                     data=waveforms)
    wfi = VectorIndex(name="waveforms_index", target=wfd,  # one waveform per event
                      data=np.arange(1, waveforms.shape[0] + 1, dtype=np.int64))
    nwb.units = Units(
        name="units", description=description, waveform_rate=30000.0,
        waveform_unit="microvolts", resolution=1 / 30000.0, electrode_table=nwb.electrodes,
        id=np.arange(n_unit),
        columns=[
            st, VectorIndex(name="spike_times_index", target=st,
                            data=np.cumsum(n_spikes, dtype=np.int64)),
            el, VectorIndex(name="electrodes_index", target=el,
                            data=np.arange(1, n_unit + 1, dtype=np.int64)),
            wfd, wfi,
            VectorIndex(name="waveforms_index_index", target=wfi,
                        data=np.cumsum(n_waveforms, dtype=np.int64)),
        ],
    )


def add_trials(nwb, start: np.ndarray, stop: np.ndarray,
               columns: dict[str, tuple[str, Sequence[Any]]]) -> None:
    """The trials table: ``columns`` maps a column name to (description, one value per
    trial)."""
    for name, (desc, _) in columns.items():
        nwb.add_trial_column(name=name, description=desc)
    for i in range(len(start)):
        nwb.add_trial(start_time=float(start[i]), stop_time=float(stop[i]),
                      **{name: values[i] for name, (_, values) in columns.items()})


def add_cursor_kinematics(nwb, t: np.ndarray, pos: np.ndarray, vel: np.ndarray,
                          acc: np.ndarray, description: str) -> None:
    """``processing/behavior`` with ``Position/cursor_pos`` (cm), ``Velocity/cursor_vel``
    (cm/s) and ``Acceleration/cursor_acc`` (cm/s^2), all (n, 2) at timestamps ``t``."""
    from pynwb import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries, Position

    mod = nwb.create_processing_module("behavior", description)
    position = Position(name="Position")
    position.create_spatial_series(
        name="cursor_pos", data=pos, timestamps=t, unit="cm",
        reference_frame="center of the screen; x right, y up",
        description="cursor position",
    )
    mod.add(position)
    for cname, sname, data, unit, desc in (
        ("Velocity", "cursor_vel", vel, "cm/s", "cursor velocity"),
        ("Acceleration", "cursor_acc", acc, "cm/s^2", "cursor acceleration"),
    ):
        container = BehavioralTimeSeries(name=cname)
        container.add_timeseries(TimeSeries(name=sname, data=data, timestamps=t, unit=unit,
                                            description=desc))
        mod.add(container)


def write(nwb, path: str | Path) -> None:
    """Write ``nwb`` to ``path`` (the caller makes the write atomic if it must be).

    The same objects give the same bytes: hdmf gives every object a random uuid4
    ``object_id``; here they are redrawn from a generator seeded with the file's
    ``identifier`` (in the order of the object tree), and h5py records no object times.
    A writer that also fixes ``identifier`` and ``file_create_date`` writes the same file
    on every run.
    """
    from hdmf import container
    from pynwb import NWBHDF5IO

    rng = random.Random(f"nwb-object-ids/{nwb.identifier}")  # str seeds: no hash salt
    fresh = container.uuid4
    container.uuid4 = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        nwb.generate_new_id()  # public hdmf API; draws every object's id from uuid4
    finally:
        container.uuid4 = fresh
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
