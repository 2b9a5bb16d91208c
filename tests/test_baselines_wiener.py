"""Wiener filter: recovers a known causal linear map; windows match the full-sequence filter."""

import dataclasses
import json

import numpy as np
import pytest
from eval_helpers import synthetic_session, write_session_store

from rpnt.cli import main
from rpnt.decoders.base import load_decoder, save_decoder
from rpnt.errors import RpntError
from rpnt.linear import lagged_design
from rpnt.scoring.stitch import evaluate_session
from rpnt.train.peers import train_baseline


def _linear_session(lags=3, noise=0.05, seed=0):
    s = synthetic_session(seed, n_trial=30, n_unit=12)
    rng = np.random.default_rng(seed)
    b = rng.normal(size=((lags + 1) * s.n_unit, 2))
    x = lagged_design(s.spike_counts.astype(float), lags)
    v = x @ b + np.array([3.0, -1.0]) + noise * rng.normal(size=(s.n_time, 2))
    return dataclasses.replace(s, velocity=v.astype(np.float32)), b


def test_wiener_recovers_a_known_linear_map(tmp_path):
    lags = 3
    s, b = _linear_session(lags)
    dec, info = train_baseline("wiener", s, {"lags": lags, "lambdas": [1e-3, 1.0, 1e4],
                                             "window_bins": 20}, seed=0)
    # back to raw-count units: w = weight / scale, c = intercept - mean/scale . weight
    w = dec.weight.numpy() / dec.scale.numpy()[:, None]
    c = dec.intercept.numpy() - (dec.mean.numpy() / dec.scale.numpy()) @ dec.weight.numpy()
    np.testing.assert_allclose(w, b, atol=0.02)
    np.testing.assert_allclose(c, [3.0, -1.0], atol=0.05)
    assert info["lam"] < 1e4  # validation rejects the heavy penalty
    assert evaluate_session(dec, s).r2["mean"] > 0.999
    # a window reads history before its start: identical to the filter over the session
    full = lagged_design(s.spike_counts.astype(float), lags)
    ref = ((full - dec.mean.numpy()) / dec.scale.numpy()) @ dec.weight.numpy() \
        + dec.intercept.numpy()
    starts = np.array([0, 1, 2, 57, s.n_time - 20])
    got = dec.predict_windows(s, starts, 20)
    for i, st in enumerate(starts):
        np.testing.assert_allclose(got[i], ref[st:st + 20], rtol=1e-5, atol=1e-4)
    save_decoder(dec, tmp_path / "w")
    np.testing.assert_array_equal(load_decoder(tmp_path / "w").predict_windows(s, starts, 20),
                                  got)


def test_wiener_is_causal_and_penalty_is_chosen_on_valid():
    s = synthetic_session(4, n_trial=30, n_unit=40, base_rate_hz=30, gain=0.8)
    dec, info = train_baseline("wiener", s, {"lags": 5, "window_bins": 20}, seed=0)
    best = max(info["valid_r2"].items(), key=lambda kv: kv[1])
    assert float(best[0]) == pytest.approx(info["lam"])
    assert evaluate_session(dec, s).r2["mean"] > 0.4  # the tuning is learnable
    # causal: changing counts after bin t leaves predictions at <= t unchanged
    starts = np.array([100])
    before = dec.predict_windows(s, starts, 20)
    counts = s.spike_counts.copy()
    counts[110:] += 5
    after = dec.predict_windows(dataclasses.replace(s, spike_counts=counts), starts, 20)
    np.testing.assert_array_equal(after[0, :10], before[0, :10])
    assert not np.allclose(after[0, 10:], before[0, 10:])


def test_wiener_cli_and_bad_config(tmp_path):
    s = synthetic_session(5, n_trial=16, n_unit=10)
    store = write_session_store(s, tmp_path / "s.zarr")
    out = tmp_path / "wiener"
    assert main(["baseline", "--model", "wiener", "--store", store, "--seed", "0",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "wiener" and "lam" in meta["fit"]
    with pytest.raises(RpntError, match="unknown key"):
        train_baseline("wiener", s, {"lag": 3}, seed=0)
    with pytest.raises(RpntError, match="lambdas"):
        train_baseline("wiener", s, {"lambdas": []}, seed=0)
