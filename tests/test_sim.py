"""The simulator: presets, DANDI 000688 layout, validity, determinism, bad arguments."""

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.sim.generate import simulate_dataset
from rpnt.sim.nwb import write_nwb
from rpnt.sim.presets import PRESETS, SessionSpec, session_ids
from rpnt.sim.session import simulate_session, subject_model
from tests.sim_helpers import preset_with

TINY = ["sub-C_ses-CO-20131003", "sub-C_ses-RT-20131004", "sub-C_ses-CO-20161013",
        "sub-T_ses-CO-20130819", "sub-T_ses-RT-20130820"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "tiny"
    simulate_dataset("tiny", 0, out, progress=False)
    return out


@pytest.fixture(scope="module")
def default_one(tmp_path_factory) -> Path:
    """One full-size default session (sub-C CO, M1 + PMd) written as NWB."""
    preset = PRESETS["default"]
    spec = preset.sessions[0]
    sim = simulate_session(preset, spec, 0)
    path = tmp_path_factory.mktemp("simdef") / Path(spec.relpath).name
    write_nwb(sim, path, waveforms_per_unit=preset.waveforms_per_unit)
    return path


def test_session_ids_are_fixed():
    assert session_ids("tiny") == TINY
    ids = session_ids("default")
    assert len(ids) == 12 and len(set(ids)) == 12
    assert {i.split("_")[0] for i in ids} == {"sub-C", "sub-T", "sub-M"}
    assert "sub-C_ses-CO-20161021" in ids and "sub-M_ses-RT-20140211" in ids
    assert len(session_ids("multisite")) >= 2
    with pytest.raises(RpntError, match="unknown simulator preset"):
        session_ids("huge")


def test_tiny_folder_layout(tiny):
    assert (tiny / "dandiset.yaml").is_file()
    nwbs = sorted(p.relative_to(tiny).as_posix() for p in tiny.glob("sub-*/*.nwb"))
    assert nwbs == sorted(f"{s.split('_')[0]}/{s}_behavior+ecephys.nwb" for s in TINY)
    for s in TINY:
        with np.load(tiny / "derivatives" / "ground-truth" / f"{s}.npz",
                     allow_pickle=False) as z:
            assert str(z["session_id"]) == s
            n, u = z["rates"].shape
            assert z["time"].shape == (n,) and z["velocity"].shape == (n, 2)
            assert z["latents"].shape[0] == n and u == z["unit_area"].shape[0]
    assert not [p for p in tiny.parent.iterdir() if p.name.startswith(".")]  # no temp left


def _check_valid(paths):
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import validate

    for p in paths:
        assert validate(path=str(p)) == [], p
        critical = [m for m in inspect_nwbfile(nwbfile_path=str(p))
                    if m.importance == Importance.CRITICAL]
        assert critical == [], (p, [m.message for m in critical])


@pytest.mark.slow  # nwbinspector over every simulated file
def test_nwb_files_validate(tiny, default_one):
    _check_valid([*sorted(tiny.glob("sub-*/*.nwb")), default_one])


def test_000688_layout(tiny, default_one):
    with h5py.File(default_one, "r") as f:
        assert f["general/session_id"][()].decode() == "sub-C_ses-CO-20131003"
        assert f["general/subject/subject_id"][()].decode() == "C"
        for key in ("species", "sex", "age"):
            assert key in f["general/subject"]
        assert set(f["general/extracellular_ephys"]) >= {"electrode_group_M1",
                                                         "electrode_group_PMd"}
        el = f["general/extracellular_ephys/electrodes"]
        assert set(el) >= {"location", "group", "group_name", "label", "bank", "pin",
                           "filtering"}
        assert el["id"].shape == (192,)
        assert "x" not in el  # Utah arrays in 000688 have no coordinates
        assert set(f["units"]) >= {"spike_times", "spike_times_index", "electrodes",
                                   "electrodes_index", "waveforms", "waveforms_index",
                                   "waveforms_index_index"}
        tr = f["intervals/trials"]
        assert set(tr) >= {"start_time", "stop_time", "target_on_time", "go_cue_time",
                           "result", "target_dir", "target_id", "target_corners"}
        assert tr["target_corners"].shape[1] == 4
        results = {r.decode() for r in tr["result"][:]}
        assert results == set("RAFI")
        beh = f["processing/behavior"]
        ts = beh["Position/cursor_pos/timestamps"][:]
        assert 95 < 1 / np.median(np.diff(ts)) < 105
        assert beh["Position/cursor_pos/data"].attrs["unit"] in ("cm", "centimeters")
        assert beh["Velocity/cursor_vel/data"].shape == (ts.size, 2)
        assert beh["Acceleration/cursor_acc/data"].shape == (ts.size, 2)
    with h5py.File(tiny / "sub-T/sub-T_ses-RT-20130820_behavior+ecephys.nwb", "r") as f:
        assert list(f["general/extracellular_ephys"].keys()).count("electrode_group_PMd") == 1
        assert "electrode_group_M1" not in f["general/extracellular_ephys"]
        tr = f["intervals/trials"]
        assert tr["go_cue_time_array"].shape[1] == 4 and tr["target_id"].shape[1] == 4
        assert set(tr) >= {"num_attempted", "num_targets", "target_size", "result"}


def test_multisite_electrodes_have_coordinates(tmp_path):
    preset = PRESETS["multisite"]
    spec = SessionSpec("N", "CO", "20160301", 12)
    sim = simulate_session(preset_with(spec, "multisite"), spec, 0)
    path = tmp_path / "m.nwb"
    write_nwb(sim, path, waveforms_per_unit=1)
    _check_valid([path])
    with h5py.File(path, "r") as f:
        el = f["general/extracellular_ephys/electrodes"]
        xyz = np.column_stack([el[k][:] for k in ("x", "y", "z")])
        assert np.isfinite(xyz).all()
        groups = {g.decode() for g in el["group_name"][:]}
        assert len(groups) == len(preset.subjects["N"].sites) >= 3
        # sites are spatially separate
        centres = [xyz[[g.decode() == name for g in el["group_name"][:]]].mean(0)
                   for name in sorted(groups)]
        assert min(np.linalg.norm(a - b) for i, a in enumerate(centres)
                   for b in centres[i + 1:]) > 500


def test_nwb_spikes_equal_truth(tiny):
    s = TINY[0]
    with h5py.File(tiny / f"sub-C/{s}_behavior+ecephys.nwb", "r") as f:
        st, idx = f["units/spike_times"][:], f["units/spike_times_index"][:]
    with np.load(tiny / f"derivatives/ground-truth/{s}.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(st, z["spike_times"])
        np.testing.assert_array_equal(np.diff(np.concatenate([[0], idx])),
                                      np.bincount(z["spike_unit"], minlength=idx.size))


def test_same_seed_same_arrays_different_seed_different():
    preset = PRESETS["tiny"]
    spec = preset.sessions[1]
    a, b = simulate_session(preset, spec, 3), simulate_session(preset, spec, 3)
    c = simulate_session(preset, spec, 4)
    for name in ("rates", "latents", "spike_times", "spike_unit", "units"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.behaviour.pos, b.behaviour.pos)
    assert a.spike_times.size != c.spike_times.size or not np.array_equal(
        a.spike_times, c.spike_times)
    assert not np.array_equal(a.behaviour.pos[:1000], c.behaviour.pos[:1000])


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*")}


def test_bad_arguments_change_nothing(tiny, tmp_path, capsys):
    before = _snapshot(tiny.parent)
    # existing folder without --force
    assert main(["simulate", "--preset", "tiny", "--out", str(tiny), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and err.count("\n") == 0
    # unknown preset
    assert main(["simulate", "--preset", "huge", "--out", str(tmp_path / "x")]) == 2
    assert "unknown simulator preset" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # unwritable location (a parent that is a file)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["simulate", "--preset", "tiny", "--out", str(blocker / "sub")]) == 2
    assert "not a writable folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert main(["simulate", "--preset", "tiny", "--out", str(ro / "x")]) == 2
    assert _snapshot(tiny.parent) == before
    assert sorted(p.name for p in tmp_path.iterdir()) in (["file"], ["file", "ro"])


def test_force_replaces(tmp_path, monkeypatch):
    spec = SessionSpec("T", "RT", "20130820", 5)
    monkeypatch.setitem(PRESETS, "one", preset_with(spec, "tiny"))
    out = tmp_path / "d"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(RpntError, match="already exists"):
        simulate_dataset("one", 0, out, progress=False)
    assert (out / "old.txt").exists()
    simulate_dataset("one", 0, out, force=True, progress=False)
    assert not (out / "old.txt").exists()
    assert [p.relative_to(out).as_posix() for p in out.glob("sub-*/*.nwb")] == [spec.relpath]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_subject_population_is_shared_across_sessions():
    preset = PRESETS["tiny"]
    model = subject_model(0, preset.subjects["C"])
    a = simulate_session(preset, preset.sessions[0], 0, model)
    b = simulate_session(preset, preset.sessions[2], 0, model)  # three years later
    shared = np.intersect1d(a.units, b.units)
    # different subsets of one population: overlapping, never identical
    assert 0 < shared.size < min(a.n_units, b.n_units)


def test_per_spike_waveforms_like_000688(tmp_path):
    """waveforms_per_unit=None writes one waveform per spike (the real, large layout)."""
    spec = SessionSpec("T", "RT", "20130820", 6)
    sim = simulate_session(preset_with(spec, "tiny"), spec, 0)
    path = tmp_path / "wf.nwb"
    write_nwb(sim, path, waveforms_per_unit=None)
    with h5py.File(path, "r") as f:
        assert f["units/waveforms"].shape == (f["units/spike_times"].shape[0], 48)
        np.testing.assert_array_equal(f["units/waveforms_index_index"][:],
                                      f["units/spike_times_index"][:])
        assert f["units/waveforms"].dtype == np.int16


_WRITE_ONE = """
import sys
from rpnt.sim.nwb import write_nwb
from rpnt.sim.presets import SessionSpec
from rpnt.sim.session import simulate_session
from tests.sim_helpers import preset_with

spec = SessionSpec("T", "RT", "20130820", 5)
sim = simulate_session(preset_with(spec, "tiny"), spec, int(sys.argv[2]))
write_nwb(sim, sys.argv[1], waveforms_per_unit=2)
"""


@pytest.mark.slow  # three processes importing pynwb
def test_same_preset_and_seed_give_byte_identical_nwb_files(tmp_path):
    """Two processes (different hash seeds, different wall-clock times) write the same
    session with the same seed: the same bytes, so provenance checksums of the source
    files survive regenerating a benchmark. Identifier and object ids are the file's own:
    another seed gives another identifier, and no two objects share an id."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    paths, procs = {}, []
    for name, seed, hash_seed in (("a", 0, "1"), ("b", 0, "2"), ("c", 1, "1")):
        paths[name] = tmp_path / f"{name}.nwb"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(repo)}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _WRITE_ONE, str(paths[name]), str(seed)], env=env,
            cwd=repo))
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    ids = []
    with h5py.File(paths["a"], "r") as f, h5py.File(paths["c"], "r") as g:
        assert f["identifier"][()] != g["identifier"][()]
        assert f["file_create_date"][0] == f["session_start_time"][()]
        f.visititems(lambda _, obj: ids.append(obj.attrs.get("object_id")))
    ids = [i for i in ids if i is not None]
    assert len(ids) > 10 and len(set(ids)) == len(ids)
