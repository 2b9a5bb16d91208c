"""Noise ceiling: exact rate binning, ceiling above the Wiener filter, CLI record."""

import json

import numpy as np
import pytest

from rpnt.cli import main
from rpnt.errors import RpntError
from rpnt.eval.realism import wiener_r2
from rpnt.sim.ceiling import bin_rates, noise_ceiling
from rpnt.sim.generate import simulate_dataset
from rpnt.sim.presets import PRESETS, SessionSpec
from rpnt.sim.session import simulate_session, subject_model, truth_arrays
from tests.sim_helpers import preset_with, session_data


def test_bin_rates_is_exact():
    rng = np.random.default_rng(0)
    dt = 0.005
    time = np.arange(400) * dt
    rates = rng.uniform(0, 50, (400, 3))
    starts = 0.0123 + np.arange(80) * 0.02
    got = bin_rates(time, rates, dt, starts, 0.02)
    # brute force: integrate on a 0.1 ms grid where each point takes its fine-sample rate
    sub = 0.0001
    for b in (0, 17, 79):
        t = starts[b] + (np.arange(200) + 0.5) * sub
        ref = rates[np.floor(t / dt + 1e-9).astype(int)].mean(0)
        np.testing.assert_allclose(got[b], ref, rtol=1e-9)


@pytest.fixture(scope="module")
def co_session(tmp_path_factory):
    spec = SessionSpec("C", "CO", "20140218", 90)
    model = subject_model(0, PRESETS["default"].subjects["C"])
    sim = simulate_session(preset_with(spec), spec, 0, model)
    path = tmp_path_factory.mktemp("truth") / f"{spec.session_id}.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **truth_arrays(sim, model))
    return session_data(sim), path


@pytest.mark.slow  # simulates and decodes a default-preset session
def test_ceiling_sits_above_wiener(co_session):
    session, truth = co_session
    ceiling = noise_ceiling(session, truth)
    wiener = wiener_r2(session)
    c, w = ceiling["r2"]["mean"], wiener["mean"]
    assert ceiling["n_bins"] > 200 and ceiling["n_trials"] >= 10
    assert c > 0.85, ceiling  # the true rates carry the velocity
    assert 0.4 < w < 0.92, wiener  # counts are noisy: far from perfect, far from useless
    assert c - w > 0.08, (c, w)


def test_ceiling_rejects_wrong_truth(co_session, tmp_path):
    session, truth = co_session
    other = session.__class__(**{**session.__dict__, "session": "sub-C_ses-CO-20990101"})
    with pytest.raises(RpntError, match="ground truth of"):
        noise_ceiling(other, truth)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(RpntError, match="lacks array"):
        noise_ceiling(session, bad)
    (tmp_path / "junk.npz").write_text("not npz")
    with pytest.raises(RpntError, match="not a simulator ground-truth"):
        noise_ceiling(session, tmp_path / "junk.npz")


def test_ceiling_command_on_ingested_store(tmp_path, capsys):
    from rpnt.ingest.core import ingest_file

    preset = PRESETS["tiny"]
    spec = SessionSpec("C", "RT", "20131004", 40)
    # a one-session preset registered for the test: the CLI path end to end
    PRESETS["ceiling-test"] = preset_with(spec, "tiny")
    try:
        simulate_dataset("ceiling-test", 0, tmp_path / "raw", progress=False)
    finally:
        del PRESETS["ceiling-test"]
    assert preset is PRESETS["tiny"]
    store = ingest_file(tmp_path / "raw" / spec.relpath, tmp_path / "s.zarr")
    truth = tmp_path / "raw/derivatives/ground-truth" / f"{spec.session_id}.npz"
    out = tmp_path / "ceiling.json"
    argv = ["ceiling", "--store", str(store), "--truth", str(truth), "--out", str(out),
            "--tag", "scenario=cross_task", "--tag", "seed=3"]
    assert main(argv) == 0
    rec = json.loads(out.read_text())
    assert rec["model"] == "ceiling" and rec["scenario"] == "cross_task" and rec["seed"] == 3
    assert rec["session"] == spec.session_id and rec["split"] == "test"
    assert set(rec["r2"]) == {"vx", "vy", "mean"} and rec["n_bins"] > 0
    assert "git_commit" in rec["provenance"]
    capsys.readouterr()
    before = out.read_text()
    assert main(argv) == 2  # exists, no --force
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == before
    # with a scenario, the ceiling uses the scenario's units (here PMd only), like evaluate
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("scenarios:\n  cross_site:\n    target: {area: [PMd]}\n")
    out2 = tmp_path / "pmd.json"
    assert main(["ceiling", "--store", str(store), "--truth", str(truth), "--out", str(out2),
                 "--scenario", "cross_site", "--config", str(cfg)]) == 0
    rec2 = json.loads(out2.read_text())
    assert rec2["scenario"] == "cross_site" and 0 < rec2["n_units"] < rec["n_units"]
    # --run: several ceilings in one process (the workflow's one job), each output the
    # record the single form writes
    runs = tmp_path / "runs"
    assert main(["ceiling", "--run", str(store), str(truth), str(runs / "a.json"),
                 "scenario=cross_task", "seed=3",
                 "--run", str(store), str(truth), str(runs / "b.json"), "scenario=b"]) == 0
    assert (runs / "a.json").read_text() == before
    rec_b = json.loads((runs / "b.json").read_text())
    assert rec_b["scenario"] == "b" and rec_b["r2"] == rec["r2"]
    capsys.readouterr()
    assert main(["ceiling", "--run", str(store), str(truth)]) == 2
    assert "expected STORE.zarr TRUTH.npz OUT.json" in capsys.readouterr().err
    assert main(["ceiling", "--run", str(store), str(truth), str(runs / "c.json"),
                 "--out", str(out)]) == 2
    assert not (runs / "c.json").exists()
    # the realism report measures the same folder through ingest (same ceiling)
    stats = tmp_path / "realism.json"
    assert main(["simulate", "--realism", str(tmp_path / "raw"), "--json", str(stats),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert spec.session_id in printed and "Wiener" in printed
    (s,) = json.loads(stats.read_text())["sessions"]
    assert s["ceiling_r2"]["mean"] == pytest.approx(rec["r2"]["mean"])
    assert np.isfinite(s["wiener_r2"]["mean"]) and 0 < s["pca"]["top5"] < s["pca"]["top10"] < 1
    assert 0 <= s["frac_below_1hz"] < 0.5 and s["rate_pct_hz"]["50"] > 1
