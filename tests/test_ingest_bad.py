"""Bad input: one-line errors naming file and object, non-zero exit, no store left behind;
recoverable defects (empty unit, unsorted / outside spikes, NaN / backwards behaviour, no go
cue, zero valid trials) give a store plus warnings with counts."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from nwb_factory import Spec, write_nwb

from rpnt.cli import main
from rpnt.data.session import SPLIT_CODES
from rpnt.store import load_session


def _fail(capsys, nwb, out, *extra) -> str:
    code = main(["ingest", str(nwb), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert "\n" not in err and err.startswith("rpnt ingest: error:")
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return err


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    p = tmp_path_factory.mktemp("good") / "good.nwb"
    write_nwb(p, Spec())
    return p


def test_not_hdf5(tmp_path, capsys):
    bad = tmp_path / "bad.nwb"
    bad.write_text("this is not HDF5\n" * 100)
    err = _fail(capsys, bad, tmp_path / "s.zarr")
    assert str(bad) in err and "not an HDF5" in err


def test_truncated(tmp_path, capsys, good):
    bad = tmp_path / "trunc.nwb"
    data = good.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    err = _fail(capsys, bad, tmp_path / "s.zarr")
    assert str(bad) in err and "truncated" in err


def test_no_units(tmp_path, capsys):
    p = tmp_path / "nounits.nwb"
    write_nwb(p, Spec(no_units=True))
    err = _fail(capsys, p, tmp_path / "s.zarr")
    assert str(p) in err and "/units" in err


def test_no_behaviour(tmp_path, capsys):
    p = tmp_path / "nobeh.nwb"
    write_nwb(p, Spec(no_behaviour=True))
    err = _fail(capsys, p, tmp_path / "s.zarr", "--adapter", "perich_miller")
    assert str(p) in err and "processing/behavior/Velocity/cursor_vel" in err
    # auto cannot even tell the layout without behaviour: also one clear line
    err = _fail(capsys, p, tmp_path / "s.zarr")
    assert str(p) in err and "processing/behavior" in err


def test_duplicate_unit_ids(tmp_path, capsys):
    p = tmp_path / "dup.nwb"
    write_nwb(p, Spec(duplicate_ids=True))
    err = _fail(capsys, p, tmp_path / "s.zarr")
    assert str(p) in err and "units/id" in err and "101" in err


def test_existing_output_without_force(tmp_path, capsys, good):
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(good), "--out", str(out)]) == 0
    before = sorted(q.name for q in out.rglob("*"))
    code = main(["ingest", str(good), "--out", str(out)])
    err = capsys.readouterr().err
    assert code != 0 and "--force" in err and str(out) in err
    assert sorted(q.name for q in out.rglob("*")) == before
    assert main(["ingest", str(good), "--out", str(out), "--force"]) == 0


def test_failure_midway_leaves_old_store(tmp_path, capsys, good):
    """--force on a bad file: the error leaves the previous good store untouched."""
    out = tmp_path / "s.zarr"
    assert main(["ingest", str(good), "--out", str(out)]) == 0
    bad = tmp_path / "bad.nwb"
    shutil.copy(good, bad)
    with h5py.File(bad, "r+") as f:
        del f["units/spike_times_index"]
    assert main(["ingest", str(bad), "--out", str(out), "--force"]) != 0
    assert "spike_times_index" in capsys.readouterr().err
    assert load_session(out).n_unit == 6


def _ingest(tmp_path, spec: Spec, caplog):
    p = tmp_path / "f.nwb"
    tr = write_nwb(p, spec)
    out = tmp_path / "s.zarr"
    with caplog.at_level("WARNING", logger="rpnt.ingest"):
        assert main(["ingest", str(p), "--out", str(out)]) == 0
    return tr, load_session(out), caplog.text


def test_unit_without_spikes_kept(tmp_path, caplog):
    tr, s, log = _ingest(tmp_path, Spec(empty_unit=True), caplog)
    assert s.n_unit == 6 and s.spike_counts[:, 1].sum() == 0
    assert "1 units have no spikes" in log
    assert s.spike_counts[:, 0].sum() == tr.spikes[0].size


def test_unsorted_and_outside_spikes(tmp_path, caplog):
    tr, s, log = _ingest(tmp_path, Spec(unsorted_spikes=True, outside_spikes=True), caplog)
    assert "1 units had unsorted spike times" in log
    assert "dropped 3 spikes of 1 units outside the session" in log
    inside = np.sort(tr.spikes[0][(tr.spikes[0] >= 0) & (tr.spikes[0] <= tr.trial_stop[-1] + 2)])
    inside = inside[inside <= max(tr.beh_t.max(), tr.trial_stop.max())]
    edges = np.append(s.time, s.time[-1] + s.bin_size_s)
    ref, _ = np.histogram(inside, bins=edges)
    assert np.array_equal(s.spike_counts[:, 0], ref)
    assert np.array_equal(s.spike_times[s.spike_unit == 0], inside)
    assert any("dropped 3 spikes" in w for w in s.attrs["warnings"])


def test_behaviour_nans_and_backwards_timestamps(tmp_path, caplog):
    tr, s, log = _ingest(tmp_path, Spec(behaviour_nans=True, nonmonotonic=True), caplog)
    assert "masked 10 of 4000 samples with NaN values" in log
    assert "masked 10 samples whose timestamps do not increase" in log
    # bins covering only masked samples and too far from good neighbours are NaN; the rest
    # of the session is finite
    assert np.isnan(s.velocity).any()
    assert np.isfinite(s.velocity).all(axis=1).mean() > 0.95
    bad_t = tr.beh_t[100:110]
    k = np.searchsorted(s.time, bad_t.mean()) - 1
    assert np.isnan(s.velocity[k]).all()


def test_trials_without_go_cue(tmp_path, caplog):
    tr, s, log = _ingest(tmp_path, Spec(no_go_cue=True), caplog)
    assert "no go_cue_time column" in log
    assert s.attrs["eval_period"].startswith("trial")
    valid = tr.result == "R"
    expect = np.zeros(s.n_time, bool)
    for k in np.flatnonzero(valid):
        expect |= (s.time >= tr.trial_start[k]) & (s.time < tr.trial_stop[k])
    assert np.array_equal(s.eval_mask, expect)


def test_zero_valid_trials(tmp_path, caplog):
    """Decision: the store is written (useful for pretraining); the split says so."""
    _, s, log = _ingest(tmp_path, Spec(zero_valid=True), caplog)
    assert "no valid trials" in log
    assert s.attrs["n_valid_trials"] == 0
    assert set(s.trial_split.tolist()) == {"none"}
    assert np.all(s.split == SPLIT_CODES["train"]) and not s.eval_mask.any()


def test_outlier_segments_masked(tmp_path, caplog):
    """000688 outlier segments (|position| > 10 cm) are masked in velocity and position."""
    tr, s, log = _ingest(tmp_path, Spec(outliers=True), caplog)
    assert "masked 5 of 4000 samples in outlier segments" in log
    assert np.nanmax(np.abs(s.position)) < 10
    k = np.searchsorted(s.time, tr.beh_t[1002], side="right") - 1
    assert np.isnan(s.velocity[k]).all()  # 50 ms gap > 3 sample intervals: not bridged
