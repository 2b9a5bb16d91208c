"""Store schema v2: xr.open_zarr round-trips every variable and attribute; load_session;
the writer matches xarray's to_zarr; v1 stores are still read."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from nwb_factory import Spec, write_nwb

from rpnt.errors import RpntError
from rpnt.ingest import IngestConfig, build_dataset
from rpnt.ingest.adapters import load_source
from rpnt.nwb.read import open_nwb
from rpnt.store import SCHEMA_VERSION, VARIABLES, load_session, open_store, write_store


@pytest.fixture(scope="module")
def nwb(tmp_path_factory):
    p = tmp_path_factory.mktemp("nwb") / "co.nwb"
    write_nwb(p, Spec(seed=5))
    return p


def _dataset(nwb, bin_ms=20.0):
    with open_nwb(nwb) as f:
        src = load_source(f, nwb, "auto", {})
    ds = build_dataset(src, IngestConfig(bin_ms=bin_ms), [])
    ds.attrs.update(source_path=str(nwb), source_sha256="0" * 64, dandiset_id="000688",
                    dandiset_version="0.250122.1735", rpnt_version="0.1.0",
                    git_commit="abc", dataset="test", warnings=["w1", "w2"])
    return ds


def test_roundtrip_every_variable_and_attribute(nwb, tmp_path):
    ds = _dataset(nwb)
    out = tmp_path / "s.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither writing nor a plain open_zarr warns
        write_store(ds, out)
        back = xr.open_zarr(out)
    assert set(back.variables) == set(ds.variables)
    assert back.attrs == ds.attrs
    assert dict(back.sizes) == dict(ds.sizes)
    for name, var in ds.variables.items():
        got = back[name]
        assert got.dims == var.dims, name
        assert got.attrs == var.attrs, name
        if var.dtype.kind in "OUT":
            assert [str(v) for v in got.values.tolist()] == [str(v) for v in var.values.tolist()]
        else:
            assert got.dtype == var.dtype, name
            np.testing.assert_array_equal(got.values, var.values, err_msg=name)


def test_schema_dtypes_and_load_session(nwb, tmp_path):
    out = write_store(_dataset(nwb), tmp_path / "s.zarr")
    ds = open_store(out)
    assert ds.attrs["schema_version"] == SCHEMA_VERSION
    assert set(VARIABLES) | {"position"} <= set(ds.variables)
    assert ds.spike_counts.dtype == np.uint8 and ds.velocity.dtype == np.float32
    assert ds.split.dtype == np.int8 and ds.eval_mask.dtype == bool
    assert ds.spike_times.dtype == np.float64 and ds.spike_unit.dtype == np.int32
    assert ds.split.attrs["flag_meanings"] == "none train valid test"
    assert ds.axis.values.tolist() == ["x", "y"]
    s = load_session(out)
    assert s.spike_counts.shape == (ds.sizes["time"], ds.sizes["unit"])
    assert isinstance(s.spike_counts, np.ndarray) and isinstance(s.unit_id[0], str)
    assert s.unit_xyz.shape == (6, 3) and s.position.shape == s.velocity.shape
    assert s.attrs["dandiset_id"] == "000688"
    assert s.sites == ["electrode_group_M1", "electrode_group_PMd"]
    # SessionData helpers agree with the stored bin-level split
    assert np.all(s.split[s.trial_bins("test")] == 2)


def test_counts_widen_beyond_255(nwb, tmp_path):
    ds = _dataset(nwb, bin_ms=30000.0)  # 30 s bins: hundreds of spikes per bin
    assert ds.spike_counts.dtype == np.uint16 and int(ds.spike_counts.max()) > 255
    s = load_session(write_store(ds, tmp_path / "s.zarr"))
    assert s.spike_counts.dtype == np.uint16


def test_rejects_non_stores(nwb, tmp_path):
    with pytest.raises(RpntError, match="no such store"):
        open_store(tmp_path / "missing.zarr")
    ds = _dataset(nwb).drop_vars("eval_mask")
    with pytest.raises(RpntError, match="missing eval_mask"):
        write_store(ds, tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()
    ds = _dataset(nwb)
    ds.attrs["schema_version"] = SCHEMA_VERSION + 1  # a version this rpnt cannot read
    with pytest.raises(RpntError, match="schema version"):
        write_store(ds, tmp_path / "y.zarr")


def test_writer_matches_xarray_to_zarr(nwb, tmp_path):
    """The store writer (no xarray, no zarr) writes what xr.Dataset.to_zarr writes: the
    same arrays, dims, dtypes, fill values, attributes and coordinates, read back
    identically by xr.open_zarr and zarr (only the compression codecs and the chunk key
    separator differ)."""
    import json

    import zarr

    ds = _dataset(nwb)
    ours = write_store(ds, tmp_path / "ours.zarr", threads=2)
    ref = tmp_path / "xarray.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(ref, mode="w-", zarr_format=3, consolidated=True)
    a = json.loads((ours / "zarr.json").read_text())
    b = json.loads((ref / "zarr.json").read_text())
    assert a["attributes"] == b["attributes"]
    ma, mb = a["consolidated_metadata"]["metadata"], b["consolidated_metadata"]["metadata"]
    assert set(ma) == set(mb)
    for name in ma:
        for key in ("shape", "data_type", "dimension_names", "fill_value", "attributes",
                    "node_type", "zarr_format"):
            assert ma[name][key] == mb[name][key], (name, key)
        assert ma[name]["chunk_key_encoding"] == {  # chunk files c.0, c.0.0: no folders
            "name": "default", "configuration": {"separator": "."}}
        assert json.loads((ours / name / "zarr.json").read_text()) == ma[name]
    xr.testing.assert_identical(xr.open_zarr(ours).load(), xr.open_zarr(ref).load())
    z = zarr.open_group(ours, mode="r")
    np.testing.assert_array_equal(z["spike_counts"][:], ds.spike_counts.values)
    np.testing.assert_array_equal(z["spike_times"][:], ds.spike_times.values)


def test_v1_stores_are_still_read(nwb, tmp_path):
    """A schema-v1 store (raw spikes in time order) loads as before; a v2 store (spikes
    grouped by unit) loads with its spikes merged into the same time order."""
    ds = _dataset(nwb)
    assert ds.attrs["schema_version"] == 2 and np.all(np.diff(ds.spike_unit.values) >= 0)
    v2 = load_session(write_store(ds, tmp_path / "v2.zarr"))
    order = np.argsort(ds.spike_times.values, kind="stable")
    v1 = ds.isel(spike=order).assign_attrs(schema_version=1)
    v1 = load_session(write_store(v1, tmp_path / "v1.zarr"))
    assert np.all(np.diff(v2.spike_times) >= 0)
    for s in (v1, v2):
        np.testing.assert_array_equal(s.spike_times, ds.spike_times.values[order])
        np.testing.assert_array_equal(s.spike_unit, ds.spike_unit.values[order])
        np.testing.assert_array_equal(s.spike_counts, ds.spike_counts.values)

