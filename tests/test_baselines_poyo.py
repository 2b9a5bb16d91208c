"""POYO peer: trains a few steps and predicts (with torch-brain); the skip path without."""

import json

import numpy as np
import pytest
import torch
from eval_helpers import synthetic_session, write_session_store

import rpnt.decoders.poyo as poyo_mod
import rpnt.provenance
from rpnt.cli import main
from rpnt.eval.table_files import read_table_csv

torch.set_num_threads(1)


def test_skip_path_when_torch_brain_is_missing(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(rpnt.provenance, "poyo_available", lambda: False)
    s = synthetic_session(2, n_trial=12, n_unit=8)
    store = write_session_store(s, tmp_path / "s.zarr")
    out = tmp_path / "poyo"
    with caplog.at_level("WARNING"):
        assert main(["baseline", "--model", "poyo", "--store", store, "--seed", "0",
                     "--out", str(out), "--metrics", str(tmp_path / "fit.json"),
                     "--predictions", str(tmp_path / "fit.npz")]) == 0
    assert "POYO SKIPPED" in caplog.text
    skip = json.loads((out / "skip.json").read_text())
    assert skip["model"] == "poyo" and skip["skipped"] == "torch-brain not installed"
    assert not (out / "meta.json").exists()
    metrics = tmp_path / "m.json"
    assert main(["evaluate", "--model", str(out), "--store", store, "--tag", "seed=0",
                 "--tag", "scenario=cross_subject", "--predictions", str(tmp_path / "p.npz"),
                 "--out", str(metrics)]) == 0
    rec = json.loads(metrics.read_text())
    assert rec["model"] == "poyo" and rec["r2"] is None
    fit = json.loads((tmp_path / "fit.json").read_text())  # scored by the training command
    assert fit == {**rec, "scenario": None}  # (its only tags: model and seed)
    with np.load(tmp_path / "fit.npz") as z:
        assert str(z["skipped"]) == "torch-brain not installed"
    assert rec["skipped"] == "torch-brain not installed" and rec["session"] == s.session
    assert main(["table", str(metrics), "--out-dir", str(tmp_path / "t")]) == 0
    _, _, cells = read_table_csv(tmp_path / "t" / "table.csv")
    assert cells["poyo"]["cross_subject"]["note"] == "torch-brain not installed"
    # the decoder class itself refuses clearly
    with pytest.raises(Exception, match="torch-brain"):
        poyo_mod.POYODecoder({})


@pytest.mark.slow  # trains POYO to an R² threshold
@pytest.mark.skipif(not rpnt.provenance.poyo_available(), reason="torch-brain not installed")
def test_poyo_trains_predicts_and_round_trips(tmp_path):
    from rpnt.decoders.base import load_decoder, save_decoder
    from rpnt.scoring.stitch import evaluate_session
    from rpnt.train.peers import train_baseline

    s = synthetic_session(3, n_trial=30, trial_bins=50, n_unit=40, base_rate_hz=30,
                          gain=0.8)
    section = {"dim": 32, "depth": 1, "dim_head": 16, "self_heads": 2, "window_bins": 20,
               "train": {"steps": 120, "eval_every": 40}}
    dec, info = train_baseline("poyo", s, section, seed=0)
    assert info["steps"] == 120
    score = evaluate_session(dec, s)
    assert score.r2["mean"] > 0.2, score.r2  # learned something from raw spike times
    starts = np.array([0, 100, 700])
    pred = dec.predict_windows(s, starts, 20)
    assert pred.shape == (3, 20, 2) and np.isfinite(pred).all()
    save_decoder(dec, tmp_path / "poyo")
    again = load_decoder(tmp_path / "poyo")
    np.testing.assert_array_equal(again.predict_windows(s, starts, 20), pred)
    # tokens hold exactly the spikes of each window
    tok = dec.tokens(s, starts, 20)
    n_spk = tok["input_mask"].sum(1).numpy() - 2 * s.n_unit
    lo = s.time[starts]
    expect = [((s.spike_times >= a) & (s.spike_times < a + 20 * s.bin_size_s)).sum()
              for a in lo]
    np.testing.assert_array_equal(n_spk, expect)
    assert s.spike_counts[starts[1]:starts[1] + 20].sum() == expect[1]
