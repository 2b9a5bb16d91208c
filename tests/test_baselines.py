"""GRU and NDT-style baselines learn a synthetic session; save/load; the CLI end to end."""

import json

import numpy as np
import pytest
import torch
import yaml
from eval_helpers import synthetic_session, write_session_store

from rpnt.cli import main
from rpnt.decoders.base import load_decoder, save_decoder
from rpnt.errors import RpntError
from rpnt.scoring.stitch import evaluate_session
from rpnt.train.peers import train_baseline

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def session():
    # 60 units tuned to the velocity 2 bins earlier: a causal decoder can reach R² ~ 0.7
    return synthetic_session(0, n_trial=40, trial_bins=50, n_unit=60, base_rate_hz=30,
                             gain=0.8)


TRAIN = {"steps": 150, "eval_every": 25}


@pytest.mark.slow  # trains GRU and NDT to an R² threshold
@pytest.mark.parametrize("model,section,threshold", [
    ("gru", {"hidden": 32, "window_bins": 20, "train": TRAIN}, 0.5),
    ("ndt", {"d_model": 32, "layers": 1, "heads": 2, "window_bins": 20,
             "pretrain": {"steps": 30, "mask_ratio": 0.3},
             "train": TRAIN}, 0.45),
])
def test_binned_baselines_learn_and_round_trip(session, tmp_path, model, section, threshold):
    untrained, _ = train_baseline(model, session, {**section, "pretrain": None,
                                                   "train": {**TRAIN, "steps": 1}}
                                  if model == "ndt" else
                                  {**section, "train": {**TRAIN, "steps": 1}}, seed=0)
    dec, info = train_baseline(model, session, section, seed=0)
    score = evaluate_session(dec, session)
    base = evaluate_session(untrained, session)
    assert score.r2["mean"] > threshold, score.r2
    assert base.r2["mean"] < 0.2  # the threshold is not met by an untrained network
    if model == "ndt":
        assert info["pretrain"]["steps"] == 30
    # normalisation from training bins only, stored as buffers
    np.testing.assert_allclose(dec.vel_mean.numpy(),
                               session.velocity[session.split_bins("train")].mean(0), rtol=1e-4)
    save_decoder(dec, tmp_path / "dec")
    again = load_decoder(tmp_path / "dec")
    starts = np.array([0, 37, 400, session.n_time - 20])
    np.testing.assert_array_equal(again.predict_windows(session, starts, 20),
                                  dec.predict_windows(session, starts, 20))
    assert evaluate_session(again, session).r2 == score.r2


def test_same_seed_same_decoder(session):
    sec = {"hidden": 16, "window_bins": 20, "train": {**TRAIN, "steps": 20}}
    a, _ = train_baseline("gru", session, sec, seed=3)
    b, _ = train_baseline("gru", session, sec, seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(),
                                  strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_unknown_config_keys_are_errors(session):
    with pytest.raises(RpntError, match="unknown key"):
        train_baseline("gru", session, {"hiden": 16}, seed=0)
    with pytest.raises(RpntError, match="unknown key"):
        train_baseline("ndt", session, {"train": {"stepz": 3}}, seed=0)
    with pytest.raises(RpntError, match="pretrain"):
        train_baseline("gru", session, {"pretrain": {"steps": 3}}, seed=0)
    with pytest.raises(RpntError, match="consecutive"):
        train_baseline("gru", session, {"window_bins": 500}, seed=0)


def test_cli_baseline_then_evaluate_with_scenario(tmp_path):
    s = synthetic_session(1, n_trial=24, trial_bins=40, n_unit=20)
    store = write_session_store(s, tmp_path / "s.zarr")
    cfg = {"scenarios": {"pmd": {"target": {"subject": ["X"], "area": ["PMd"]}}},
           "baselines": {"gru": {"hidden": 8, "window_bins": 20,
                                 "train": {"steps": 12, "eval_every": 6,
                                           "checkpoint_every": 6}}}}
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "models" / "gru"
    fit_metrics, fit_preds = tmp_path / "fit" / "m.json", tmp_path / "fit" / "p.npz"
    argv = ["baseline", "--config", str(cfg_path), "--model", "gru", "--store", store,
            "--scenario", "pmd", "--seed", "1", "--out", str(out)]
    assert main([*argv, "--predictions", str(fit_preds)]) == 2  # needs --metrics
    assert not out.exists()
    assert main([*argv, "--metrics", str(fit_metrics), "--predictions", str(fit_preds)]) == 0
    assert {p.name for p in out.iterdir()} >= {"meta.json", "weights.safetensors",
                                               "metrics.jsonl", "curves.png"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"] == "gru" and meta["seed"] == 1 and meta["units"] == 10
    assert meta["hparams"]["n_unit"] == 10  # only the PMd half of the units
    assert not (tmp_path / "models" / "gru.ckpt").exists()  # removed once complete
    metrics, preds = tmp_path / "m.json", tmp_path / "p.npz"
    assert main(["evaluate", "--model", str(out), "--store", store, "--scenario", "pmd",
                 "--config", str(cfg_path), "--tag", "seed=1", "--tag", "model=gru_tagged",
                 "--predictions", str(preds), "--out", str(metrics)]) == 0
    rec = json.loads(metrics.read_text())
    assert rec["model"] == "gru_tagged" and rec["seed"] == 1 and rec["scenario"] == "pmd"
    assert rec["session"] == s.session and rec["split"] == "test" and rec["kind"] == "gru"
    assert set(rec["r2"]) == {"vx", "vy", "mean"}
    assert rec["n_trials"] == int((s.trial_split == "test").sum())
    assert rec["store"]["dandiset_id"] == "000000" and "git_commit" in rec["provenance"]
    with np.load(preds) as z:
        assert z["true"].shape == z["pred"].shape and z["scored"].sum() == rec["n_bins"]
        assert np.isfinite(z["pred"][z["scored"]]).all()
    # --metrics: the training command scored its model as `rpnt evaluate` does
    assert main(["evaluate", "--model", str(out), "--store", store, "--scenario", "pmd",
                 "--config", str(cfg_path), "--tag", "model=gru", "--tag", "seed=1",
                 "--predictions", str(preds), "--out", str(metrics)]) == 0
    assert fit_metrics.read_bytes() == metrics.read_bytes()
    assert fit_preds.read_bytes() == preds.read_bytes()
    # without --scenario the unit count differs: a clear error, not a crash
    assert main(["evaluate", "--model", str(out), "--store", store,
                 "--out", str(tmp_path / "m2.json")]) == 2
    assert not (tmp_path / "m2.json").exists()
    # unknown keys in the config section are one-line errors
    cfg["baselines"]["gru"]["bogus"] = 1
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["baseline", "--config", str(cfg_path), "--model", "gru", "--store", store,
                 "--seed", "0", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize("cls_name", ["gru", "ndt"])
def test_binned_baselines_are_causal(session, cls_name):
    import dataclasses

    from rpnt.decoders.gru import GRUDecoder
    from rpnt.decoders.ndt import NDTDecoder

    torch.manual_seed(0)
    base = {"n_unit": session.n_unit, "n_axis": 2, "window_bins": 20, "dropout": 0.0}
    dec = (GRUDecoder({**base, "hidden": 8, "layers": 2}) if cls_name == "gru" else
           NDTDecoder({**base, "d_model": 16, "layers": 2, "heads": 2}))
    starts = np.array([100, 300])
    before = dec.predict_windows(session, starts, 20)
    counts = session.spike_counts.copy()
    counts[starts + 12] += 7  # change bin 12 of each window
    after = dec.predict_windows(dataclasses.replace(session, spike_counts=counts), starts, 20)
    np.testing.assert_allclose(after[:, :12], before[:, :12], rtol=1e-5, atol=1e-6)
    assert not np.allclose(after[:, 12:], before[:, 12:])
