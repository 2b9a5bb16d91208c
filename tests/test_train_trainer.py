"""The generic trainer: schedule, determinism, exact resume, checkpoints, early stopping."""

import itertools
import math
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

from rpnt.train.checkpoint import CHECKPOINT_NAME
from rpnt.train.runlog import read_history
from rpnt.train.trainer import TrainConfig, TrainingInterrupted, fit, lr_factor

torch.set_num_threads(1)

W_TRUE = np.random.default_rng(123).normal(size=(8, 2)).astype(np.float32)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    # Dropout makes the run depend on the torch RNG, so resume must restore it.
    return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(0.2), nn.Linear(16, 2))


def sample_batch(rng: np.random.Generator):
    x = rng.normal(size=(16, 8)).astype(np.float32)
    y = x @ W_TRUE + 0.1 * rng.normal(size=(16, 2)).astype(np.float32)
    return {"x": torch.from_numpy(x), "y": torch.from_numpy(y)}


VAL = sample_batch(np.random.default_rng(999))


def run(tmp, cfg, crash_at=None, signal_at=None, sig=signal.SIGTERM, **kw):
    model = make_model()
    calls = {"n": 0}

    def sampler(rng):
        calls["n"] += 1
        if crash_at is not None and calls["n"] == crash_at:
            raise RuntimeError("simulated kill")
        if signal_at is not None and calls["n"] == signal_at:
            os.kill(os.getpid(), sig)
        return sample_batch(rng)

    def loss_fn(b):
        mse = ((model(b["x"]) - b["y"]) ** 2).mean()
        return {"loss": mse, "mse_copy": mse}

    def val_fn():
        return float(((model(VAL["x"]) - VAL["y"]) ** 2).mean())

    res = fit(model, loss_fn, sampler, cfg, ckpt_dir=tmp / "ckpt", log_dir=tmp / "log",
              val_fn=val_fn, **kw)
    return model, res


CFG = dict(steps=60, lr=1e-2, warmup_steps=10, eval_every=10, checkpoint_every=20,
           log_every=5, seed=3)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_schedule_values():
    f = [lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(f[:10]))
    assert f[10] == pytest.approx(1.0)
    # halfway through the cosine: midway between 1 and min
    assert lr_factor(55, 100, 10, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(100, 100, 10, 0.1) == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    # the optimizer really sees these values
    cfg = TrainConfig(**{**CFG, "steps": 30, "eval_every": 1000, "log_every": 1})
    _, res = run_plain(cfg)
    lrs = [r["lr"] for r in res.history if "lr" in r]
    assert lrs == pytest.approx([cfg.lr * lr_factor(s, 30, 10) for s in range(30)])
    assert math.isclose(lrs[-1], cfg.lr * lr_factor(29, 30, 10))


def run_plain(cfg):
    model = make_model()
    res = fit(model, lambda b: ((model(b["x"]) - b["y"]) ** 2).mean(), sample_batch, cfg)
    return model, res


def test_determinism_and_learning(tmp_path):
    cfg = TrainConfig(**CFG)
    m1, r1 = run(tmp_path / "a", cfg)
    m2, r2 = run(tmp_path / "b", cfg)
    assert_same(weights(m1), weights(m2))
    assert r1.history == r2.history
    assert r1.best_val < 0.2 * r1.history[0]["loss"]  # it learned the linear map
    # another seed gives another run
    m3, _ = run(tmp_path / "c", TrainConfig(**{**CFG, "seed": 4}))
    assert not torch.equal(m1[0].weight, m3[0].weight)
    assert (tmp_path / "a" / "log" / "curves.png").stat().st_size > 1000
    assert read_history(tmp_path / "a" / "log" / "metrics.jsonl") == r1.history
    assert {"loss", "lr", "grad_norm", "mse_copy", "step"} <= set(r1.history[0])


@pytest.mark.parametrize("how", ["crash", "SIGTERM", "SIGUSR1"])
def test_interrupted_run_resumes_exactly(tmp_path, how):
    cfg = TrainConfig(**CFG)
    ref_model, ref = run(tmp_path / "ref", cfg)
    # a crash at step 33 loses steps 21..32 (last checkpoint at 20); SIGTERM checkpoints
    # at once; either way the resumed run must end bit-identical.
    if how == "crash":
        with pytest.raises(RuntimeError, match="simulated kill"):
            run(tmp_path / "x", cfg, crash_at=34)
        assert torch.load(tmp_path / "x" / "ckpt" / CHECKPOINT_NAME,
                          weights_only=True)["step"] == 20
    else:
        with pytest.raises(TrainingInterrupted, match=how):
            run(tmp_path / "x", cfg, signal_at=34, sig=getattr(signal, how))
        assert torch.load(tmp_path / "x" / "ckpt" / CHECKPOINT_NAME,
                          weights_only=True)["step"] == 34
    model, res = run(tmp_path / "x", cfg)
    assert res.resumed_from in (20, 34)
    assert_same(weights(model), weights(ref_model))
    assert res.history == ref.history
    assert read_history(tmp_path / "x" / "log" / "metrics.jsonl") == ref.history
    # the checkpoint is a plain weights_only file
    state = torch.load(tmp_path / "x" / "ckpt" / CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == cfg.steps


def test_early_stopping_restores_best(tmp_path):
    # A val loss that gets worse after the 2nd evaluation stops training after patience=2.
    vals = iter([3.0, 1.0, 2.0, 2.5, 2.7, 9.0, 9.0])
    model = make_model()
    seen = {}

    def val_fn():
        v = next(vals)
        if v == 1.0:
            seen["best"] = weights(model)
        return v

    cfg = TrainConfig(**{**CFG, "patience": 2})
    res = fit(model, lambda b: ((model(b["x"]) - b["y"]) ** 2).mean(), sample_batch, cfg,
              ckpt_dir=tmp_path / "ck", val_fn=val_fn)
    assert res.stopped_early and res.best_val == 1.0 and res.best_step == 20
    assert res.steps_done == 40
    assert_same(weights(model), seen["best"])


def test_frozen_params_stay_fixed():
    model = make_model()
    before = model[0].weight.clone()
    for p in model[0].parameters():
        p.requires_grad_(False)
    cfg = TrainConfig(**{**CFG, "steps": 5})
    fit(model, lambda b: ((model(b["x"]) - b["y"]) ** 2).mean(), sample_batch, cfg,
        params=model[3].parameters())
    assert torch.equal(model[0].weight, before)


def test_param_groups_with_lr_scale():
    model = make_model()
    first, last = list(model[0].parameters()), list(model[3].parameters())
    w0 = model[0].weight.clone()
    cfg = TrainConfig(**{**CFG, "steps": 5, "eval_every": 1000})
    from rpnt.train.trainer import make_optimizer

    opt = make_optimizer([{"params": first, "lr_scale": 0.1}, {"params": last}], cfg)
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == pytest.approx([0.1 * cfg.lr, cfg.lr])
    decays = {(g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert (cfg.lr, 0.0) in decays and (cfg.lr, cfg.weight_decay) in decays
    fit(model, lambda b: ((model(b["x"]) - b["y"]) ** 2).mean(), sample_batch, cfg,
        params=[{"params": first, "lr_scale": 0.0}, {"params": last}])
    assert torch.equal(model[0].weight, w0)  # lr 0: unchanged, yet part of the run
