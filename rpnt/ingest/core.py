"""``ingest_file``: one NWB session -> one Zarr store (schema v1).

Steps: open with h5py (never touching ``waveforms``), adapt the layout to a
:class:`~rpnt.ingest.adapters.Source`, sort unsorted units, lay the bin grid over the
session, drop spikes outside the grid (warn with counts), bin spikes and behaviour on it,
split trials and bins, build the Dataset and write it atomically. The source file's
SHA-256 is computed in a background thread while the rest runs (hashlib releases the GIL).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rpnt.errors import RpntError
from rpnt.ingest import binning, splits
from rpnt.ingest.adapters import Source, load_source
from rpnt.ingest.splits import SplitConfig
from rpnt.store import SPLIT_ATTRS

log = logging.getLogger("rpnt.ingest")


@dataclass
class IngestConfig:
    """Options of one ingest run (recorded in the store's attrs)."""

    bin_ms: float = 20.0
    adapter: str = "auto"  #: auto | perich_miller | nlb | generic
    dataset: str | None = None  #: registry name; default: registry entry, else "local"
    split: SplitConfig = field(default_factory=SplitConfig)
    max_gap_bins: float = 3.0  #: behaviour interpolation bridges gaps up to this x sample dt


def session_end(src: Source) -> float:
    """The session's end T: the last behaviour sample or trial end, whichever is later."""
    ends = [src.velocity.t[-1]]
    if src.position is not None:
        ends.append(src.position.t[-1])
    stops = src.trials.stop[np.isfinite(src.trials.stop)]
    if stops.size:
        ends.append(float(stops.max()))
    return float(max(ends))


def sort_units(src: Source, notes: list[str], fn: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Spike times with every unit's run sorted: (flat times, (n_unit,) end offsets).

    NaN sorts to the end of its unit's run (and is then outside every bin grid).
    """
    fn = fn or src.meta.session
    u = src.units
    t, ends = u.spike_times, u.ends
    starts = np.concatenate([[0], ends[:-1]])
    # Unsorted units: a decrease inside a unit's run (boundaries between units don't count).
    dec = np.flatnonzero(t[1:] < t[:-1]) + 1  # no float temporary, unlike np.diff
    if dec.size:
        dec_in = dec[~np.isin(dec, starts)]
        if dec_in.size:
            bad_units = np.unique(np.searchsorted(ends, dec_in, side="right"))
            t = t.copy()
            for b in bad_units:  # loop over unsorted units only
                t[starts[b]:ends[b]] = np.sort(t[starts[b]:ends[b]])
            msg = (f"{fn}: units/spike_times: {bad_units.size} units had unsorted spike "
                   f"times ({dec_in.size} decreases); sorted them")
            log.warning(msg)
            notes.append(msg)
    return t, ends


def first_spike_from(t: np.ndarray, ends: np.ndarray, lo: float, hi: float) -> float | None:
    """The earliest spike in ``[lo, hi]`` of per-unit sorted runs, or None if there is none."""
    firsts = []
    for a, b in zip(np.concatenate([[0], ends[:-1]]), ends, strict=True):  # units, not spikes
        i = a + int(np.searchsorted(t[a:b], lo))
        if i < b and t[i] <= hi:
            firsts.append(float(t[i]))
    return min(firsts) if firsts else None


def keep_inside(t: np.ndarray, ends: np.ndarray, lo: float, hi: float, notes: list[str],
                fn: str) -> tuple[np.ndarray, np.ndarray]:
    """Drop spikes outside ``[lo, hi)`` (and non-finite ones); warn with counts."""
    keep = t >= lo  # False for NaN too
    keep &= t < hi
    n_out = int(keep.size - np.count_nonzero(keep))
    if n_out:
        unit_of = np.searchsorted(ends, np.flatnonzero(~keep), side="right")
        msg = (f"{fn}: units/spike_times: dropped {n_out} spikes of {np.unique(unit_of).size} "
               f"units outside the session's bin grid [{lo:g}, {hi:g}) s")
        log.warning(msg)
        notes.append(msg)
        csum = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        ends = csum[ends]
        t = t[keep]
    empty = int(np.count_nonzero(np.diff(np.concatenate([[0], ends])) == 0))
    if empty:
        msg = f"{fn}: units: {empty} units have no spikes; kept with zero counts"
        log.warning(msg)
        notes.append(msg)
    return t, ends


def session_grid(src: Source, t: np.ndarray, ends: np.ndarray, bin_s: float) -> np.ndarray:
    """(n_time + 1,) bin edges covering the session ``[t0, T]``.

    ``t0`` is the first behaviour sample or the first spike at or after time 0 (NWB times
    are relative to the session start, so earlier ones are outside), whichever is earlier,
    and never before 0; the last edge is the first one after the session end ``T``
    (:func:`session_end`). Every spike inside the grid is counted, those in the last bin
    after ``T`` included, so each bin's count is that of a full bin.
    """
    end = session_end(src)
    if not end > 0:
        raise RpntError(f"{src.meta.session}: the session ends at {end:g} s (its last behaviour "
                        "sample or trial end), before its start at 0 s; fix the timestamps")
    firsts = [src.velocity.t[0]] + ([src.position.t[0]] if src.position is not None else [])
    spike0 = first_spike_from(t, ends, 0.0, end)
    if spike0 is not None:
        firsts.append(spike0)
    return binning.make_edges(max(0.0, float(min(firsts))), end, bin_s)


def _provenance(nwb: Path, sha: str, entry: dict, asset: dict | None) -> dict[str, Any]:
    import rpnt
    from rpnt.provenance import git_commit, package_versions

    source = entry.get("source") or {}
    asset = asset or {}
    if asset.get("sha256") and asset["sha256"] != sha:
        raise RpntError(f"{nwb}: SHA-256 {sha[:12]}... differs from the asset manifest's "
                        f"{asset['sha256'][:12]}... for {asset.get('path')}; re-download it")
    return {
        "source_path": str(nwb.resolve()),
        "source_sha256": sha,
        "dandiset_id": str(asset.get("dandiset_id") or source.get("dandiset") or ""),
        "dandiset_version": str(asset.get("version") or source.get("version") or ""),
        "asset_id": str(asset.get("asset_id") or ""),
        "asset_path": str(asset.get("path") or ""),
        "rpnt_version": rpnt.__version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }


def _max_gap(s, cfg: IngestConfig) -> float:
    """Largest sample gap bridged by interpolation: max_gap_bins x the median sample interval."""
    return cfg.max_gap_bins * float(np.median(np.diff(s.t))) if s.t.size > 1 else 0.0


def build_dataset(src: Source, cfg: IngestConfig, notes: list[str], fn: str = "",
                  consume: bool = False, threads: int = 1):
    """The schema-v1 ``xr.Dataset`` of one source (without provenance attrs).

    ``consume=True`` drops ``src.units.spike_times`` once the sorted copy exists, so the
    two (8 bytes per spike each) are never held alongside the write buffers. ``threads``
    sorts and counts spikes in parallel; the result does not depend on it.
    """
    import xarray as xr

    bin_s = cfg.bin_ms / 1000.0
    if not bin_s > 0:
        raise RpntError(f"--bin-ms must be positive, got {cfg.bin_ms}")
    t, ends = sort_units(src, notes, fn)
    vel, pos = src.velocity, src.position
    edges = session_grid(src, t, ends, bin_s)
    t, ends = keep_inside(t, ends, float(edges[0]), float(edges[-1]), notes, fn or
                          src.meta.session)
    bin_starts = edges[:-1]
    spike_times, spike_unit, counts = binning.sort_and_count(t, ends, edges, threads=threads)
    del t
    if consume:
        src.units.spike_times = np.zeros(0)
    velocity = binning.bin_behaviour(vel.t, vel.data, edges, _max_gap(vel, cfg))
    n_axis = velocity.shape[1]
    axis = np.array(["x", "y", "z", "w"][:n_axis] if n_axis <= 4
                    else [f"a{i}" for i in range(n_axis)], dtype=object)
    tr = src.trials
    tsplit = splits.trial_splits(tr.valid, cfg.split, tr.file_split)
    split = splits.bin_split(bin_starts, tr.start, tr.stop, tsplit, cfg.split.padding_s)
    emask = splits.eval_mask(bin_starts, tr.eval_start, tr.eval_stop, tr.valid)
    n_valid = int(tr.valid.sum())
    if n_valid == 0:
        msg = (f"{fn}: {src.meta.session}: no valid trials: every trial split is 'none', every bin "
               "is 'train' and eval_mask is empty (the store serves pretraining only)")
        log.warning(msg)
        notes.append(msg)
    u = src.units
    data = {
        "spike_counts": (("time", "unit"), counts),
        "velocity": (("time", "axis"), velocity,
                     {"units": "cm/s", "source": src.velocity_source,
                      "binning": "mean of samples in the bin; empty bins: linear "
                                 "interpolation at the bin centre across gaps <= "
                                 f"{cfg.max_gap_bins:g} sample intervals, else NaN"}),
        "split": (("time",), split, dict(SPLIT_ATTRS)),
        "eval_mask": (("time",), emask, {"period": src.eval_period}),
        "trial_start": (("trial",), tr.start.astype(np.float64)),
        "trial_stop": (("trial",), tr.stop.astype(np.float64)),
        "trial_go_cue": (("trial",), tr.go_cue.astype(np.float64)),
        "trial_result": (("trial",), np.asarray(tr.result, dtype=object).astype(str)
                         .astype(object)),
        "trial_valid": (("trial",), tr.valid.astype(bool)),
        "trial_split": (("trial",), tsplit.astype(object)),
        "spike_times": (("spike",), spike_times, {"units": "s"}),
        "spike_unit": (("spike",), spike_unit, {"description": "index along unit"}),
    }
    if pos is not None:
        p = binning.bin_behaviour(pos.t, pos.data, edges, _max_gap(pos, cfg))
        if p.shape[1] == n_axis:
            data["position"] = (("time", "axis"), p, {"units": "cm", "source": pos.path})
    coords = {
        "time": ("time", bin_starts, {"units": "s", "description": "bin starts; bins are "
                                "[time, time + bin_size_s)"}),
        "axis": ("axis", axis),
        "unit_id": ("unit", u.ids.astype(object)),
        "unit_area": ("unit", u.area.astype(object)),
        "unit_site": ("unit", u.site.astype(object)),
        "unit_x": ("unit", u.xyz[:, 0]),
        "unit_y": ("unit", u.xyz[:, 1]),
        "unit_z": ("unit", u.xyz[:, 2]),
    }
    meta = src.meta
    attrs = {
        "schema_version": 1,
        "session": meta.session, "subject": meta.subject, "task": src.task,
        "recording_date": meta.date, "bin_size_s": bin_s, "adapter": src.adapter,
        "velocity_source": src.velocity_source, "eval_period": src.eval_period,
        "split_seed": cfg.split.seed, "split_fractions": list(cfg.split.fractions),
        "split_padding_s": cfg.split.padding_s,
        "split_source": "file" if cfg.split.use_file_split and tr.file_split is not None
        else "shuffled valid trials",
        "n_valid_trials": n_valid,
        "ingest_config": {k: v for k, v in asdict(cfg).items() if k != "split"},
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def ingest_file(nwb: str | Path, out: str | Path, *, cfg: IngestConfig | None = None,
                registry: str | Path | None = None, asset_manifest: str | Path | None = None,
                force: bool = False, threads: int = 1,
                timings: dict[str, float] | None = None) -> Path:
    """Ingest one NWB file into the store ``out`` (schema v1); return ``out``.

    ``threads``: worker threads for sorting and counting spikes (the store is identical
    for any value). ``timings``, if given, receives the wall time of each phase (s).

    Raises :class:`RpntError` (one line naming file and object) on bad input; nothing is
    left at ``out`` then. An existing ``out`` is an error unless ``force``.
    """
    from rpnt.atomic import check_overwrite
    from rpnt.ingest.nwbio import open_nwb
    from rpnt.ingest.sources import find_asset, load_registry_entry
    from rpnt.provenance import sha256_file
    from rpnt.store import write_store

    cfg = cfg or IngestConfig()
    nwb, out = Path(nwb), Path(out)
    check_overwrite(out, force)
    entry = load_registry_entry(registry, cfg.dataset) if registry else {}
    asset = find_asset(asset_manifest, nwb) if asset_manifest else None
    timings = {} if timings is None else timings
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        f = open_nwb(nwb)
        sha_future = pool.submit(sha256_file, nwb)
        try:
            src = load_source(f, nwb, cfg.adapter, entry)
        finally:
            f.close()
        notes = src.notes
        lap("read")
        ds = build_dataset(src, cfg, notes, str(nwb), consume=True, threads=threads)
        lap("sort, count, bin")
        sha = sha_future.result()
        lap("sha256 wait")
    ds.attrs.update(_provenance(nwb, sha, entry, asset))
    ds.attrs["dataset"] = cfg.dataset or str(entry.get("name") or "") or "local"
    ds.attrs["warnings"] = list(notes)
    write_store(ds, out, force=force)
    lap("write")
    return out
