"""Generic adapter driven by a registry entry, the registry as ingest reads it (the one
validated reader, rpnt.registry), asset-manifest provenance, and the counting and merging
of per-unit spike runs."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import yaml
from nwb_factory import Spec, write_nwb

from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.ingest import IngestConfig, ingest_file
from rpnt.ingest.binning import count_spikes, make_edges
from rpnt.provenance import sha256_file
from rpnt.registry.entries import registry_entry
from rpnt.store import load_session, time_order

ENTRY = {
    "name": "churchland_like",
    "source": {"type": "dandi", "dandiset": "000070", "version": "0.230317.0033",
               "assets": {"glob": "sub-*/*.nwb"}},
    "adapter": "generic",
    "task": "center_out",
    "generic": {
        "position": "processing/behavior/Position/Hand",
        "go_cue": "go_cue_time",
        "valid_results": ["R"],
        "duration_s": [0.5, 6.0],
        "eval": {"start": "go_cue_time", "stop": "stop_time", "offset_s": [-0.1, 0.0]},
    },
}


@pytest.fixture()
def churchland_like(tmp_path):
    """A 000070-like layout: Position/Hand only, no velocity, no 000688/NLB objects."""
    d = tmp_path / "sub-C"
    d.mkdir()
    p = d / "sub-C_ses-CO-20160909_behavior+ecephys.nwb"
    tr = write_nwb(p, Spec(seed=11))
    with h5py.File(p, "r+") as f:
        f.move("processing/behavior/Position/cursor_pos", "processing/behavior/Position/Hand")
        del f["processing/behavior/Velocity"]
    reg = tmp_path / "datasets.yaml"
    other = {"name": "other", "adapter": "nlb", "source": {"type": "local", "folder": "."}}
    reg.write_text(yaml.safe_dump({"datasets": [ENTRY, other]}))
    return p, tr, reg


def test_generic_adapter_from_registry(churchland_like, tmp_path):
    p, tr, reg = churchland_like
    with pytest.raises(RpntError, match="cannot tell the layout"):
        ingest_file(p, tmp_path / "x.zarr")
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(p), "--out", str(out), "--registry", str(reg),
                 "--dataset", "churchland_like"]) == 0
    s = load_session(out)
    assert s.attrs["adapter"] == "generic" and s.dataset == "churchland_like"
    assert s.attrs["velocity_source"] == "derived from processing/behavior/Position/Hand"
    assert (s.attrs["dandiset_id"], s.attrs["dandiset_version"]) == ("000070", "0.230317.0033")
    assert s.task == "center_out"
    valid = tr.result == "R"
    expect = np.zeros(s.n_time, bool)
    for k in np.flatnonzero(valid):
        expect |= (s.time >= tr.go_cue[k] - 0.1) & (s.time < tr.trial_stop[k])
    assert np.array_equal(s.eval_mask, expect)
    assert ((s.trial_split != "none") == valid).all()


def test_ingest_reads_the_registry_strictly(churchland_like, tmp_path):
    p, _, reg = churchland_like
    assert registry_entry(reg, "churchland_like")["generic"]["go_cue"] == "go_cue_time"
    with pytest.raises(RpntError, match="holds 2 datasets; pass --dataset NAME"):
        registry_entry(reg, None)
    one = tmp_path / "one.yaml"
    one.write_text(yaml.safe_dump({"datasets": [ENTRY]}))
    assert registry_entry(one, None)["name"] == "churchland_like"
    with pytest.raises(RpntError, match="no dataset named 'nope'"):
        registry_entry(one, "nope")
    # an unknown key is an error naming the file and the key, and no store is written
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"datasets": [{**ENTRY, "colour": "red"}]}))
    out = tmp_path / "s.zarr"
    with pytest.raises(RpntError, match=r"bad\.yaml.*'colour' was unexpected"):
        ingest_file(p, out, cfg=IngestConfig(dataset="churchland_like"), registry=bad)
    assert not out.exists()


def test_asset_manifest_provenance(churchland_like, tmp_path):
    p, _, reg = churchland_like
    sha = sha256_file(p)
    rows = [
        "path\tasset_id\tsize\tsha256\tdandiset_id\tversion",
        f"sub-X/{p.name}\twrong-asset\t1\t{'0' * 64}\t000070\tv0",  # other folder: no match
        f"sub-C/{p.name}\tasset-123\t{p.stat().st_size}\t{sha}\t000070\t0.230317.0033",
    ]
    tsv = tmp_path / "assets.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    cfg = IngestConfig(dataset="churchland_like")
    s = load_session(ingest_file(p, tmp_path / "s.zarr", cfg=cfg, registry=reg,
                                 asset_manifest=tsv))
    assert s.attrs["asset_id"] == "asset-123" and s.attrs["source_sha256"] == sha
    assert s.attrs["asset_path"] == f"sub-C/{p.name}"
    # a manifest whose checksum disagrees with the file is an error, and leaves nothing
    tsv.write_text("\n".join([rows[0], rows[2].replace(sha, "f" * 64)]) + "\n")
    out = tmp_path / "bad.zarr"
    with pytest.raises(RpntError, match="differs from the asset manifest"):
        ingest_file(p, out, cfg=cfg, registry=reg, asset_manifest=tsv)
    assert not out.exists()


def test_sort_and_count_matches_stable_argsort_and_histogram():
    """Counts straight from per-unit runs equal np.histogram; merging the runs into time
    order (what load_session does for the raw spikes) equals a stable argsort."""
    rng = np.random.default_rng(0)
    for trial in range(6):
        n_unit = int(rng.integers(1, 300))
        runs = [np.sort(np.round(rng.uniform(0, 100, rng.integers(0, 800)) * 30000) / 30000)
                for _ in range(n_unit)]  # sample-clock times: many exact ties across units
        if trial == 3:  # near-ties closer than the key's resolution: the fallback path
            runs = [r + 1e-13 * (i % 3) for i, r in enumerate(runs)]
        if trial == 4:
            runs[0] = np.concatenate([[0.0, -0.0], runs[0]])
            runs[0] = np.sort(runs[0])
        if trial == 5:  # one unit bursting: > 255 spikes in one bin widens the counts
            runs[0] = np.sort(np.concatenate([runs[0], np.full(300, 50.0)]))
        t = np.concatenate(runs)
        ends = np.cumsum([r.size for r in runs])
        unit = np.repeat(np.arange(n_unit), [r.size for r in runs])
        order = np.argsort(t, kind="stable")
        edges = make_edges(0.0, float(t.max()), 0.02)
        ref = np.stack([np.histogram(r, edges)[0] for r in runs], axis=1)
        for threads, block in ((1, 1 << 18), (2, 500), (3, 97)):  # one time block or many
            times, units = time_order(t, unit.astype(np.int32), threads=threads, block=block)
            counts = count_spikes(t, ends, edges, threads=threads)
            assert units.dtype == np.int32
            assert np.array_equal(times, t[order]) and np.array_equal(units, unit[order])
            assert np.array_equal(counts, ref)
            assert counts.dtype == (np.uint16 if trial == 5 else np.uint8)
    perm = rng.permutation(t.size)  # not grouped by unit: a stable argsort by time
    times, units = time_order(t[perm], unit[perm].astype(np.int32))
    order = np.argsort(t[perm], kind="stable")
    assert np.array_equal(times, t[perm][order]) and np.array_equal(units, unit[perm][order])
    shuffled = t.copy()  # grouped, but one unit's run out of time order
    shuffled[ends[0] - runs[0].size:ends[0]] = shuffled[ends[0] - runs[0].size:ends[0]][::-1]
    times, units = time_order(shuffled, unit.astype(np.int32), block=97)
    order = np.argsort(shuffled, kind="stable")
    assert np.array_equal(times, shuffled[order]) and np.array_equal(units, unit[order])
