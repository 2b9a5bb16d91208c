"""Ingest correctness: exact counts, behaviour, splits, scoring masks, both real layouts."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from nwb_factory import Spec, Truth, write_nwb

from rpnt.data.session import SPLIT_CODES
from rpnt.ingest import IngestConfig, SplitConfig, ingest_file
from rpnt.store import SCHEMA_VERSION, load_session

SPECS = {
    "co": Spec(layout="perich_miller", task="CO", seed=1),
    "rt": Spec(layout="perich_miller", task="RT", seed=2, subject="M", date="20140114"),
    "nlb": Spec(layout="nlb", seed=3, subject="Jenkins", n_units=5),
    "posonly": Spec(layout="perich_miller", task="CO", seed=4, with_velocity=False),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple]:
    d = tmp_path_factory.mktemp("nwb")
    out = {}
    for name, spec in SPECS.items():
        p = d / f"{name}.nwb"
        out[name] = (p, write_nwb(p, spec))
    return out


def _t0(tr: Truth) -> float:
    firsts = [tr.beh_t.min()] + [s.min() for s in tr.spikes if s.size]
    return float(min(firsts))


def _ref_edges(tr: Truth, n_time: int, bin_s: float) -> np.ndarray:
    return _t0(tr) + bin_s * np.arange(n_time + 1)


@pytest.mark.parametrize("name", ["co", "rt", "nlb"])
@pytest.mark.parametrize("bin_ms", [20.0, 7.0, 50.0])
def test_counts_equal_histogram(files, tmp_path, name, bin_ms):
    path, tr = files[name]
    out = ingest_file(path, tmp_path / "s.zarr", cfg=IngestConfig(bin_ms=bin_ms))
    s = load_session(out)
    bin_s = bin_ms / 1000
    edges = _ref_edges(tr, s.n_time, bin_s)
    assert np.array_equal(s.time, edges[:-1])
    assert edges[-1] > max(tr.beh_t.max(), max(x.max() for x in tr.spikes))
    assert s.spike_counts.dtype == np.uint8
    for u, st in enumerate(tr.spikes):
        ref, _ = np.histogram(st, bins=edges)
        assert np.array_equal(s.spike_counts[:, u], ref), f"unit {u}"
    # raw spikes: every spike once, sorted by time, with its unit
    assert np.all(np.diff(s.spike_times) >= 0)
    for u, st in enumerate(tr.spikes):
        assert np.array_equal(s.spike_times[s.spike_unit == u], np.sort(st))


@pytest.mark.parametrize("bin_ms", [20.0, 7.0, 50.0])
def test_last_bin_counts_every_spike_inside_it(tmp_path, bin_ms):
    """Spikes run 3 s past the session end (last behaviour sample): the grid ends at the
    first edge after the end, and every bin, the last included, holds exactly
    np.histogram's count over the store's edges; spikes after the grid are dropped."""
    path = tmp_path / "past.nwb"
    tr = write_nwb(path, Spec(seed=21, n_units=8, rate_hz=40.0, spikes_past_end_s=3.0))
    s = load_session(ingest_file(path, tmp_path / "s.zarr", cfg=IngestConfig(bin_ms=bin_ms)))
    bin_s = bin_ms / 1000
    edges = s.time[0] + bin_s * np.arange(s.n_time + 1)  # the grid, as docs/store-schema.md
    assert np.array_equal(edges[:-1], s.time)
    end = max(tr.beh_t.max(), tr.trial_stop.max())
    assert edges[-2] <= end < edges[-1]  # the grid ends at the first edge after the end
    every = np.concatenate(tr.spikes)
    assert np.any((every > end) & (every < edges[-1]))  # the last bin has spikes after T
    assert np.any(every >= edges[-1])  # and some spikes lie beyond the grid
    for u, st in enumerate(tr.spikes):
        ref, _ = np.histogram(st, bins=edges)
        assert np.array_equal(s.spike_counts[:, u], ref), f"unit {u}"
        inside = st[(st >= edges[0]) & (st < edges[-1])]
        assert np.array_equal(s.spike_times[s.spike_unit == u], inside)
    n_out = int(np.sum(every >= edges[-1]))
    assert any(f"dropped {n_out} spikes" in w for w in s.attrs["warnings"])


def test_waveforms_are_never_read(files, tmp_path):
    """The per-spike waveforms column is replaced by a dataset HDF5 cannot decode (an
    unregistered filter): reading it fails, and rpnt ingest still succeeds, with the same
    store as from the intact file."""
    import shutil

    import h5py

    from rpnt.cli import main

    path, _ = files["co"]
    bad = tmp_path / "unreadable_waveforms.nwb"
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as f:
        wf = f["units/waveforms"]
        shape, dtype, attrs = wf.shape, wf.dtype, dict(wf.attrs)
        assert shape[0] == f["units/spike_times"].shape[0]  # one waveform per spike
        del f["units/waveforms"]
        rows = min(shape[0], 64)
        new = f.create_dataset("units/waveforms", shape=shape, dtype=dtype,
                               chunks=(rows, *shape[1:]), compression=300,
                               allow_unknown_filter=True)
        for lo in range(0, shape[0], rows):  # chunks stored as if filter 300 had run
            raw = np.zeros((rows, *shape[1:]), dtype).tobytes()
            new.id.write_direct_chunk((lo,) + (0,) * (len(shape) - 1), raw, filter_mask=0)
        new.attrs.update(attrs)
    with h5py.File(bad, "r") as f, pytest.raises(OSError):
        f["units/waveforms"][:1]
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(bad), "--out", str(out), "--threads", "2"]) == 0
    ref = load_session(ingest_file(path, tmp_path / "ref.zarr"))
    got = load_session(out)
    np.testing.assert_array_equal(got.spike_counts, ref.spike_counts)
    np.testing.assert_array_equal(got.spike_times, ref.spike_times)


def _ref_behaviour(t: np.ndarray, x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per-bin loop: mean of samples in the bin, else interpolation at the centre."""
    max_gap = 3 * np.median(np.diff(t))
    out = np.full((edges.size - 1, x.shape[1]), np.nan)
    for k in range(edges.size - 1):
        m = (t >= edges[k]) & (t < edges[k + 1])
        if m.any():
            out[k] = x[m].mean(axis=0)
            continue
        c = 0.5 * (edges[k] + edges[k + 1])
        j = np.searchsorted(t, c, side="right")
        if 0 < j < t.size and t[j] - t[j - 1] <= max_gap:
            out[k] = [np.interp(c, t[j - 1:j + 1], x[j - 1:j + 1, a]) for a in range(x.shape[1])]
    return out


@pytest.mark.parametrize("name,bin_ms", [("co", 20.0), ("nlb", 20.0), ("co", 4.0)])
def test_behaviour_matches_reference(files, tmp_path, name, bin_ms):
    path, tr = files[name]
    s = load_session(ingest_file(path, tmp_path / "s.zarr", cfg=IngestConfig(bin_ms=bin_ms)))
    edges = _ref_edges(tr, s.n_time, bin_ms / 1000)
    ref_v = _ref_behaviour(tr.beh_t, tr.vel, edges)
    ref_p = _ref_behaviour(tr.beh_t, tr.pos, edges)
    assert s.velocity.dtype == np.float32
    assert np.array_equal(np.isnan(s.velocity), np.isnan(ref_v))
    np.testing.assert_allclose(s.velocity, ref_v, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(s.position, ref_p, rtol=1e-6, atol=1e-5)
    if bin_ms < 10:  # bins shorter than the 10 ms sample period: interpolated, not NaN
        inside = (s.time >= tr.beh_t[0]) & (s.time + bin_ms / 1000 <= tr.beh_t[-1])
        assert np.isfinite(s.velocity[inside]).all()


def test_velocity_derived_from_position(files, tmp_path):
    path, tr = files["posonly"]
    s = load_session(ingest_file(path, tmp_path / "s.zarr"))
    assert s.attrs["velocity_source"].startswith("derived from processing/behavior/Position")
    ok = np.isfinite(s.velocity).all(axis=1)
    ref = _ref_behaviour(tr.beh_t, tr.vel, _ref_edges(tr, s.n_time, 0.02))
    # central differences of a smooth 100 Hz trajectory vs its analytic derivative
    err = np.abs(s.velocity[ok] - ref[ok]).max() / np.abs(ref[ok]).max()
    assert err < 0.01


def test_metadata_and_provenance(files, tmp_path):
    from rpnt.provenance import sha256_file

    path, tr = files["rt"]
    s = load_session(ingest_file(path, tmp_path / "s.zarr", cfg=IngestConfig(dataset="pm")))
    a = s.attrs
    assert (s.session, s.subject, s.task, s.recording_date, s.dataset) == (
        "sub-M_ses-RT-20140114", "M", "random_target", "2014-01-14", "pm")
    assert a["adapter"] == "perich_miller" and a["schema_version"] == SCHEMA_VERSION == 2
    assert a["source_sha256"] == sha256_file(path)
    assert a["split_seed"] == 42 and a["split_fractions"] == [0.7, 0.1, 0.2]
    assert a["git_commit"] and a["rpnt_version"]
    assert s.unit_area.tolist() == tr.areas and s.unit_site.tolist() == tr.sites
    assert s.unit_id.tolist() == [str(i) for i in tr.unit_ids]
    assert np.isnan(s.unit_xyz).all()


def test_nlb_layout_units_and_eval(files, tmp_path):
    path, tr = files["nlb"]
    s = load_session(ingest_file(path, tmp_path / "s.zarr"))
    assert s.attrs["adapter"] == "nlb"
    assert s.attrs["velocity_source"] == "processing/behavior/hand_vel"
    np.testing.assert_array_equal(s.unit_xyz, tr.xyz)
    assert s.unit_site.tolist() == tr.sites
    ds = xr.open_zarr(tmp_path / "s.zarr")
    valid = ds.trial_valid.values
    # NLB split "none" trials are invalid
    assert not valid[4] and valid[:4].all()
    expect = np.zeros(s.n_time, bool)
    for k in np.flatnonzero(valid):
        expect |= (s.time >= tr.move_onset[k] - 0.25) & (s.time < tr.move_onset[k] + 0.45)
    assert np.array_equal(s.eval_mask, expect)


def test_nlb_task_from_registry_entry(files, tmp_path):
    """An NLB file without a maze_id column gets the task its registry entry names (maze
    for MC_Maze); without an entry, the task comes from the trial columns."""
    import shutil
    from pathlib import Path

    import h5py

    path, _ = files["nlb"]
    with h5py.File(path) as f:
        assert "maze_id" not in f["intervals/trials"]
    reg = Path(__file__).resolve().parents[1] / "config" / "datasets.yaml"
    for dataset, task in (("nlb_mc_maze", "maze"), ("nlb_mc_maze_small", "maze"),
                          ("nlb_mc_rtt", "random_target")):
        s = load_session(ingest_file(path, tmp_path / f"{dataset}.zarr", registry=reg,
                                     cfg=IngestConfig(dataset=dataset)))
        assert (s.task, s.dataset, s.attrs["adapter"]) == (task, dataset, "nlb")
    assert load_session(ingest_file(path, tmp_path / "plain.zarr")).task == "reaching"
    barriers = tmp_path / "barriers.nwb"
    shutil.copy(path, barriers)
    with h5py.File(barriers, "r+") as f:  # an MC_Maze-like trials table, no registry
        f["intervals/trials/num_barriers"] = np.ones(f["intervals/trials/id"].shape[0])
    assert load_session(ingest_file(barriers, tmp_path / "b.zarr")).task == "maze"


@pytest.mark.parametrize("name", ["co", "rt"])
def test_splits_and_eval_mask(files, tmp_path, name):
    path, tr = files[name]
    cfg = IngestConfig(split=SplitConfig(padding_s=0.5))
    s = load_session(ingest_file(path, tmp_path / "s.zarr", cfg=cfg))
    ds = xr.open_zarr(tmp_path / "s.zarr")
    valid = ds.trial_valid.values
    assert np.array_equal(valid, tr.result == "R")
    n = valid.sum()
    counts = {k: int((s.trial_split == k).sum()) for k in ("train", "valid", "test", "none")}
    assert counts["none"] == (~valid).sum()
    assert counts["train"] == round(0.7 * n) and counts["valid"] == round(0.1 * n)
    # seed 42 reproduces; another seed gives another assignment
    perm = np.random.default_rng(42).permutation(np.flatnonzero(valid))
    assert set(np.flatnonzero(s.trial_split == "train")) == set(perm[:counts["train"]])
    # bin level: held-out trials carry their code, train bins keep the padding margin
    for k in np.flatnonzero((s.trial_split == "valid") | (s.trial_split == "test")):
        inside = (s.time >= tr.trial_start[k]) & (s.time < tr.trial_stop[k])
        assert np.all(s.split[inside] == SPLIT_CODES[s.trial_split[k]])
        near = (s.time >= tr.trial_start[k] - 0.5) & (s.time < tr.trial_stop[k] + 0.5)
        assert not np.any(s.split[near] == SPLIT_CODES["train"])
    assert np.any(s.split == SPLIT_CODES["train"])
    ev0 = tr.go_cue if name == "co" else tr.trial_start
    expect = np.zeros(s.n_time, bool)
    for k in np.flatnonzero(valid):
        expect |= (s.time >= ev0[k]) & (s.time < tr.trial_stop[k])
    assert np.array_equal(s.eval_mask, expect)
    np.testing.assert_array_equal(ds.trial_go_cue.values, tr.go_cue)


def test_file_split_and_other_seed(files, tmp_path):
    path, _ = files["nlb"]
    cfg = IngestConfig(split=SplitConfig(use_file_split=True))
    s = load_session(ingest_file(path, tmp_path / "a.zarr", cfg=cfg))
    assert s.trial_split.tolist()[:5] == ["train", "train", "valid", "train", "none"]
    path, _ = files["co"]
    a = load_session(ingest_file(path, tmp_path / "b.zarr"))
    b = load_session(ingest_file(path, tmp_path / "c.zarr",
                                 cfg=IngestConfig(split=SplitConfig(seed=7))))
    assert not np.array_equal(a.trial_split, b.trial_split)
    assert b.attrs["split_seed"] == 7


def test_bin_index_exact_at_edges():
    """Times on, just below and just above every edge land where np.histogram puts them."""
    from rpnt.ingest.binning import bin_index, make_edges

    for t0, bin_s in [(0.0123, 0.02), (3.7, 0.007), (0.0, 0.1 / 3)]:
        edges = make_edges(t0, t0 + 500.0, bin_s)
        inner = edges[1:-1]
        t = np.concatenate([edges[:-1], np.nextafter(inner, -np.inf),
                            np.nextafter(edges[:-1], np.inf)])
        t = t[(t >= edges[0]) & (t < edges[-1])]
        ref = np.searchsorted(edges, t, side="right") - 1
        assert np.array_equal(bin_index(t, edges), ref)
        counts, _ = np.histogram(t, bins=edges)
        assert np.array_equal(np.bincount(bin_index(t, edges), minlength=edges.size - 1),
                              counts)


def test_trial_conditions(files, tmp_path):
    """Center-out: the target id; random target: the direction octant of each attempted
    reach; a layout without conditions (NLB) has none (and such stores load with None)."""
    import shutil

    import h5py

    path, _ = files["co"]
    s = load_session(ingest_file(path, tmp_path / "co.zarr"))
    n = s.trial_start.size
    assert s.trial_condition.shape == (n, 1)
    assert s.trial_condition[:, 0].tolist() == [k % 8 for k in range(n)]
    rt = tmp_path / "rt.nwb"
    shutil.copy(files["rt"][0], rt)
    with h5py.File(rt, "r+") as f:
        n = f["intervals/trials/start_time"].shape[0]
        dirs = np.tile([0.0, np.pi / 2, -np.pi / 4, 3.0], (n, 1))
        dirs[0, 3] = np.nan
        f["intervals/trials/target_dir"] = dirs
        f["intervals/trials/num_attempted"][1] = 2
    s = load_session(ingest_file(rt, tmp_path / "rt.zarr"))
    assert s.trial_condition.shape == (n, 4)
    assert s.trial_condition[0].tolist() == [0, 2, 7, -1]
    assert s.trial_condition[1].tolist() == [0, 2, -1, -1]  # two reaches attempted
    assert s.trial_condition[2].tolist() == [0, 2, 7, 4]  # 3 rad: nearest 180 degrees
    assert load_session(ingest_file(files["nlb"][0], tmp_path / "nlb.zarr")
                        ).trial_condition is None
