"""Store schema v1: xr.open_zarr round-trips every variable and attribute; load_session."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from nwb_factory import Spec, write_nwb

from rpnt.errors import RpntError
from rpnt.ingest import IngestConfig, build_dataset
from rpnt.ingest.adapters import load_source
from rpnt.ingest.nwbio import open_nwb
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
    ds.attrs["schema_version"] = 2
    with pytest.raises(RpntError, match="schema version"):
        write_store(ds, tmp_path / "y.zarr")
