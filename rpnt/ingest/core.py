"""``ingest_file``: one NWB session -> one Zarr store (schema v2).

Steps: open with h5py (never touching ``waveforms``), adapt the layout to a
:class:`~rpnt.ingest.adapters.Source`, sort unsorted units, lay the bin grid over the
session, drop spikes outside the grid (warn with counts), bin spikes and behaviour on it,
split trials and bins, build the store's arrays and write them atomically (no xarray).
The source file's SHA-256, the git commit and package versions are computed in a
background thread while the rest runs (hashlib releases the GIL).
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import rpnt
from rpnt.atomic import check_overwrite
from rpnt.errors import RpntError
from rpnt.ingest import binning, splits
from rpnt.ingest.adapters import Source, load_source
from rpnt.ingest.splits import SplitConfig
from rpnt.nwb.read import open_nwb
from rpnt.provenance import git_commit, package_versions, sha256_file
from rpnt.registry.assets import find_asset
from rpnt.registry.entries import registry_entry
from rpnt.store import SCHEMA_VERSION, SPLIT_ATTRS, Runs, StoreData, Var, write_store

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

    Sorts ``src.units.spike_times`` in place (only the unsorted units). NaN sorts to the
    end of its unit's run (and is then outside every bin grid).
    """
    fn = fn or src.meta.session
    u = src.units
    t, ends = u.spike_times, u.ends
    starts = np.concatenate([[0], ends[:-1]])
    # Unsorted units: a decrease inside a unit's run (boundaries between units don't count).
    dec = np.flatnonzero(t[1:] < t[:-1]) + 1  # no float temporary, unlike np.diff
    dec_in = dec[~np.isin(dec, starts)] if dec.size else dec
    bad = np.unique(np.searchsorted(ends, dec_in, side="right"))
    if dec_in.size:
        msg = (f"{fn}: units/spike_times: {bad.size} units had unsorted spike "
               f"times ({dec_in.size} decreases); sorted them")
        log.warning(msg)
        notes.append(msg)
    if t.size and np.isnan(t.min()):  # NaN compares false: sort it to the end of its run
        bad = np.union1d(bad, np.searchsorted(ends, np.flatnonzero(np.isnan(t)), side="right"))
    for b in bad:  # loop over unsorted units only
        t[starts[b]:ends[b]].sort()
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
    """Keep the spikes in ``[lo, hi)`` of per-unit sorted runs (NaN sorts after ``hi``);
    warn with counts. The kept spikes are compacted in ``t`` itself (no copy of 8 bytes per
    spike): the returned array is ``t`` or a leading slice of it."""
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    a, b = starts.copy(), np.asarray(ends, dtype=np.int64).copy()
    for u in range(ends.shape[0]):  # a loop over units, not spikes: each run is sorted
        run = t[starts[u]:ends[u]]
        a[u] += np.searchsorted(run, lo, side="left")
        b[u] = starts[u] + np.searchsorted(run, hi, side="left")
    n_out = int(t.shape[0] - (b - a).sum())
    if n_out:
        n_units = int(np.count_nonzero((a > starts) | (b < ends)))
        msg = (f"{fn}: units/spike_times: dropped {n_out} spikes of {n_units} units outside "
               f"the session's bin grid [{lo:g}, {hi:g}) s")
        log.warning(msg)
        notes.append(msg)
        ends = np.cumsum(b - a)
        for x, y, z in zip(a, b, ends, strict=True):  # compact in place, unit by unit
            if z - (y - x) != x:
                t[z - (y - x):z] = t[x:y]  # moves left: numpy copes with the overlap
        t = t[:ends[-1]]
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


def _provenance(nwb: Path, prov: dict[str, Any], entry: dict,
                asset: dict | None) -> dict[str, Any]:
    source = entry.get("source") or {}
    asset = asset or {}
    sha = prov["source_sha256"]
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
        "rpnt_version": prov["rpnt_version"],
        "git_commit": prov["git_commit"],
        "packages": prov["packages"],
    }


def _max_gap(s, cfg: IngestConfig) -> float:
    """Largest sample gap bridged by interpolation: max_gap_bins x the median sample interval."""
    return cfg.max_gap_bins * float(np.median(np.diff(s.t))) if s.t.size > 1 else 0.0


def build_store(src: Source, cfg: IngestConfig, notes: list[str], fn: str = "",
                threads: int = 1) -> StoreData:
    """The schema-v2 content of one source (without provenance attrs), as numpy arrays.

    Raw spikes stay grouped by unit, as in the NWB units table (each unit's run sorted);
    counts come straight from those runs. ``src.units.spike_times`` is consumed: sorted
    and compacted in place, it becomes the store's ``spike_times``. ``threads`` counts
    units in parallel; the result does not depend on it.
    """
    bin_s = cfg.bin_ms / 1000.0
    if not bin_s > 0:
        raise RpntError(f"--bin-ms must be positive, got {cfg.bin_ms}")
    fn = fn or src.meta.session
    t, ends = sort_units(src, notes, fn)
    vel, pos = src.velocity, src.position
    if src.grid is not None:  # the file's own bins (FALCON): counts, covariates, eval_mask
        t, ends, counts, bin_starts, velocity = _file_bins(src, t, ends, bin_s, notes, fn)
    else:
        edges = session_grid(src, t, ends, bin_s)
        t, ends = keep_inside(t, ends, float(edges[0]), float(edges[-1]), notes, fn)
        bin_starts = edges[:-1]
        counts = binning.count_spikes(t, ends, edges, threads=threads)
        velocity = binning.bin_behaviour(vel.t, vel.data, edges, _max_gap(vel, cfg))
    spike_unit = Runs(np.arange(ends.shape[0], dtype=np.int32),
                      np.diff(np.concatenate([[0], ends])))
    n_axis = velocity.shape[1]
    axis = np.array(src.axis_names or (["x", "y", "z", "w"][:n_axis] if n_axis <= 4
                    else [f"a{i}" for i in range(n_axis)]), dtype=object)
    tr = src.trials
    tsplit = splits.trial_splits(tr.valid, cfg.split, tr.file_split)
    split = splits.bin_split(bin_starts, tr.start, tr.stop, tsplit, cfg.split.padding_s)
    emask = (src.grid.eval_mask if src.grid is not None else
             splits.eval_mask(bin_starts, tr.eval_start, tr.eval_stop, tr.valid))
    n_valid = int(tr.valid.sum())
    if n_valid == 0:
        msg = (f"{fn}: {src.meta.session}: no valid trials: every trial split is 'none', every bin "
               "is 'train' and eval_mask is empty (the store serves pretraining only)")
        log.warning(msg)
        notes.append(msg)
    u = src.units
    data = {
        "spike_counts": Var(("time", "unit"), counts),
        "velocity": Var(("time", "axis"), velocity,
                        {"units": "cm/s", "source": src.velocity_source,
                         "binning": "mean of samples in the bin; empty bins: linear "
                                    "interpolation at the bin centre across gaps <= "
                                    f"{cfg.max_gap_bins:g} sample intervals, else NaN"}
                        if src.grid is None else
                        {"units": src.attrs.get("covariate_units", ""),
                         "source": src.velocity_source,
                         "binning": "the file's samples, one per bin (already binned)"}),
        "split": Var(("time",), split, dict(SPLIT_ATTRS)),
        "eval_mask": Var(("time",), emask, {"period": src.eval_period}),
        "trial_start": Var(("trial",), tr.start.astype(np.float64)),
        "trial_stop": Var(("trial",), tr.stop.astype(np.float64)),
        "trial_go_cue": Var(("trial",), tr.go_cue.astype(np.float64)),
        "trial_result": Var(("trial",), np.asarray(tr.result, dtype=object).astype(str)
                            .astype(object)),
        "trial_valid": Var(("trial",), tr.valid.astype(bool)),
        "trial_split": Var(("trial",), tsplit.astype(object)),
        "spike_times": Var(("spike",), t, {
            "units": "s", "order": "grouped by unit (spike_unit), in time order within a unit"}),
        "spike_unit": Var(("spike",), spike_unit, {"description": "index along unit"}),
    }
    if tr.condition is not None:
        data["trial_condition"] = Var(("trial", "condition"), tr.condition.astype(np.int16), {
            "description": "condition labels of each trial, -1 = none (center-out: the "
                           "target id; random target: the direction octant of each "
                           "attempted reach, octant k centred on k x 45 degrees)"})
    if pos is not None and src.grid is None:
        p = binning.bin_behaviour(pos.t, pos.data, edges, _max_gap(pos, cfg))
        if p.shape[1] == n_axis:
            data["position"] = Var(("time", "axis"), p, {"units": "cm", "source": pos.path})
    coords = {
        "time": Var(("time",), bin_starts, {
            "units": "s", "description": "bin starts; the edges are time[0] + bin_size_s * "
                                         "arange(n_time + 1), bins are half-open"}
                    if src.grid is None else {
            "units": "s", "description": "bin starts of the file's bins (each bin_size_s "
                                         "long; gaps between bins where the file has them)"}),
        "axis": Var(("axis",), axis),
        "unit_id": Var(("unit",), u.ids.astype(object)),
        "unit_area": Var(("unit",), u.area.astype(object)),
        "unit_site": Var(("unit",), u.site.astype(object)),
        "unit_x": Var(("unit",), u.xyz[:, 0]),
        "unit_y": Var(("unit",), u.xyz[:, 1]),
        "unit_z": Var(("unit",), u.xyz[:, 2]),
    }
    meta = src.meta
    attrs = {
        "schema_version": SCHEMA_VERSION,
        "session": meta.session, "subject": meta.subject, "task": src.task,
        "recording_date": meta.date, "bin_size_s": bin_s, "adapter": src.adapter,
        "velocity_source": src.velocity_source, "eval_period": src.eval_period,
        "split_seed": cfg.split.seed, "split_fractions": list(cfg.split.fractions),
        "split_padding_s": cfg.split.padding_s,
        "split_source": "file" if cfg.split.use_file_split and tr.file_split is not None
        else "shuffled valid trials",
        "n_valid_trials": n_valid,
        "ingest_config": {k: v for k, v in asdict(cfg).items() if k != "split"},
        **src.attrs,
    }
    return StoreData(data, coords, attrs)


def _file_bins(src: Source, t: np.ndarray, ends: np.ndarray, bin_s: float, notes: list[str],
               fn: str) -> tuple[np.ndarray, ...]:
    """Counts, bin starts and covariates on the file's bins (``src.grid``): each kept bin
    counts like ``np.histogram`` over all the edges (the last edge closed), as FALCON's
    ``bin_units`` does. Returns (t, ends, counts, bin starts, covariates float32)."""
    grid = src.grid
    assert grid is not None
    if abs(bin_s - float(grid.edges[1] - grid.edges[0])) > 1e-9:
        raise RpntError(f"{fn}: the file is binned at {grid.edges[1] - grid.edges[0]:g} s; "
                        f"ingest it with --bin-ms {1000 * (grid.edges[1] - grid.edges[0]):g}")
    lo, hi = float(grid.edges[0]), float(np.nextafter(grid.edges[-1], np.inf))
    t, ends = keep_inside(t, ends, lo, hi, notes, fn)
    counts = binning.count_on_edges(t, ends, grid.edges)[grid.keep]
    return (t, ends, counts, grid.edges[:-1][grid.keep],
            np.asarray(src.velocity.data, dtype=np.float32))


def build_dataset(src: Source, cfg: IngestConfig, notes: list[str], fn: str = "",
                  threads: int = 1):
    """:func:`build_store` as an ``xr.Dataset`` (library use; ingest writes without xarray)."""
    return build_store(src, cfg, notes, fn, threads).to_dataset()


def _background(nwb: Path, sha256: Callable[[], str] | None) -> dict[str, Any]:
    """Work that overlaps the ingest in a second thread: the source's SHA-256 (hashlib
    releases the GIL; ``sha256`` waits for one started earlier), the code's provenance
    (git, package metadata) and the import of the store writer's codec."""
    out = {"source_sha256": sha256() if sha256 else sha256_file(nwb),
           "rpnt_version": rpnt.__version__, "git_commit": git_commit(),
           "packages": package_versions()}
    import numcodecs.blosc  # noqa: F401  (used by rpnt.store.write_store)
    return out


def ingest_file(nwb: str | Path, out: str | Path, *, cfg: IngestConfig | None = None,
                registry: str | Path | None = None, asset_manifest: str | Path | None = None,
                force: bool = False, threads: int = 1,
                timings: dict[str, float] | None = None,
                sha256: Callable[[], str] | None = None) -> Path:
    """Ingest one NWB file into the store ``out`` (schema v2); return ``out``.

    ``threads``: worker threads for counting spikes and compressing the store's chunks
    (the store is identical for any value). ``timings``, if given, receives the wall time
    of each phase (s). ``sha256``: returns the file's SHA-256 when the caller started
    hashing it earlier (``rpnt ingest`` does, before its imports); else it is computed
    here, alongside the ingest.

    Raises :class:`RpntError` (one line naming file and object) on bad input; nothing is
    left at ``out`` then. An existing ``out`` is an error unless ``force``.
    """
    cfg = cfg or IngestConfig()
    nwb, out = Path(nwb), Path(out)
    check_overwrite(out, force)
    timings = {} if timings is None else timings
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        f = open_nwb(nwb)
        prov_future = pool.submit(_background, nwb, sha256)
        try:
            entry = registry_entry(registry, cfg.dataset) if registry else {}
            asset = find_asset(asset_manifest, nwb) if asset_manifest else None
            src = load_source(f, nwb, cfg.adapter, entry)
        finally:
            f.close()
        notes = src.notes
        lap("read")
        content = build_store(src, cfg, notes, str(nwb), threads=threads)
        del src
        lap("sort, count, bin")
        prov = prov_future.result()
        lap("sha256 wait")
    content.attrs.update(_provenance(nwb, prov, entry, asset))
    content.attrs["dataset"] = cfg.dataset or str(entry.get("name") or "") or "local"
    content.attrs["warnings"] = list(notes)
    write_store(content, out, force=force, threads=threads)
    lap("write")
    return out
