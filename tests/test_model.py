"""The RPNT model as a whole: shapes, API, causality, gradients, save/load, determinism."""

from __future__ import annotations

import pytest
import torch

from rpnt.errors import RpntError
from rpnt.model import RPNTConfig
from tests.model_helpers import build, tiny_batch, tiny_config

torch.set_num_threads(1)


def test_shapes_and_api():
    cfg = tiny_config()
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg)
    out = model.encode(counts, um, coords, sm, return_attention=True)
    assert out.h.shape == (3, 2, cfg.window, cfg.d_model)
    assert out.pooled.shape == (3, cfg.window, cfg.d_model)
    assert len(out.spatial_attn) == cfg.n_spatial_layers
    assert out.spatial_attn[0].shape == (3, cfg.window, cfg.n_heads, 2, 2)
    assert torch.allclose(out.spatial_attn[0].sum(-1), torch.ones(()), atol=1e-5)
    assert model.encode(counts, um, coords, sm).spatial_attn is None
    v = model.velocity(counts, um, coords, sm)
    assert v.shape == (3, cfg.window, cfg.n_axis)
    losses = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator())
    assert set(losses) == {"loss", "poisson", "contrastive", "velocity", "time_ratio",
                           "unit_ratio"}
    assert torch.isfinite(losses["loss"])
    n_enc = sum(p.numel() for p in model.encoder_parameters())
    n_head = sum(p.numel() for p in model.head_parameters())
    n_dec = sum(p.numel() for p in model.pretrain_head_parameters())
    assert n_enc + n_head + n_dec == sum(p.numel() for p in model.parameters())


def test_presets():
    for name, d in [("small", 256), ("medium", 768), ("large", 1024)]:
        cfg = RPNTConfig.preset(name)
        assert cfg.d_model == d
    assert RPNTConfig.preset("small").n_layers == 4
    assert RPNTConfig.preset("large").n_heads == 16
    with pytest.raises(RpntError, match="preset"):
        RPNTConfig.preset("huge")
    with pytest.raises(RpntError, match="unknown keys"):
        RPNTConfig.preset("tiny", d_modle=8)
    with pytest.raises(RpntError, match="pos_encoding"):
        RPNTConfig.preset("tiny", pos_encoding="alibi")
    cfg = RPNTConfig.preset("tiny", rope_bases={"time": 500.0})
    assert cfg.rope_bases["time"] == 500.0 and cfg.rope_bases["subject"] == 100.0
    assert RPNTConfig(**cfg.to_dict()) == cfg


def test_bad_inputs_raise_clear_errors():
    cfg = tiny_config()
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg)
    with pytest.raises(RpntError, match="n_units"):
        model.encode(counts[..., :5], um[..., :5], coords, sm)
    with pytest.raises(RpntError, match="'date' missing"):
        model.encode(counts, um, {k: v for k, v in coords.items() if k != "date"}, sm)
    bad = sm.clone()
    bad[0] = False
    with pytest.raises(RpntError, match="at least one real site"):
        model.encode(counts, um, coords, bad)


def _perturb_future(counts, t, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = counts.clone()
    out[:, :, t + 1:] = torch.poisson(torch.rand(out[:, :, t + 1:].shape, generator=g,
                                                 dtype=counts.dtype) * 5)
    return out


@pytest.mark.parametrize("attention", ["context", "standard"])
def test_whole_model_is_causal(attention):
    cfg = tiny_config(attention=attention, n_layers=2, n_spatial_layers=2)
    model = build(cfg).double()
    counts, um, coords, sm = tiny_batch(cfg, s=3)
    counts = counts.double()
    coords = {k: v.double() for k, v in coords.items()}
    with torch.no_grad():
        base = model.encode(counts, um, coords, sm)
        base_v = model.velocity(counts, um, coords, sm)
        for t in (0, 3, 6, 10):
            pert = _perturb_future(counts, t, seed=t)
            out = model.encode(pert, um, coords, sm)
            vel = model.velocity(pert, um, coords, sm)
            torch.testing.assert_close(out.h[:, :, : t + 1], base.h[:, :, : t + 1],
                                       atol=1e-10, rtol=0)
            torch.testing.assert_close(vel[:, : t + 1], base_v[:, : t + 1], atol=1e-10, rtol=0)
            torch.testing.assert_close(model.rates(out.h[:, :, : t + 1]),
                                       model.rates(base.h[:, :, : t + 1]), atol=1e-10, rtol=0)
            # The check can fail: later bins do change.
            assert float((out.h[:, :, t + 1:] - base.h[:, :, t + 1:]).abs().max()) > 1e-4


def test_gradients_reach_every_parameter():
    cfg = tiny_config(dropout=0.1)
    model = build(cfg).train()
    counts, um, coords, sm = tiny_batch(cfg, s=3)
    losses = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator())
    (losses["loss"] + model.velocity(counts, um, coords, sm).pow(2).mean()).backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or float(p.grad.abs().max()) == 0.0]
    assert not missing, f"no gradient reaches {missing}"


def test_safetensors_save_load_gives_identical_outputs(tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = tiny_config()
    model = build(cfg, seed=0)
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    other = build(RPNTConfig(**cfg.to_dict()), seed=123)
    other.load_state_dict(load_file(str(tmp_path / "w.safetensors")), strict=True)
    counts, um, coords, sm = tiny_batch(cfg)
    with torch.no_grad():
        assert torch.equal(model.velocity(counts, um, coords, sm),
                           other.velocity(counts, um, coords, sm))
        assert torch.equal(model.encode(counts, um, coords, sm).h,
                           other.encode(counts, um, coords, sm).h)


def test_deterministic_under_a_seed():
    cfg = tiny_config(dropout=0.2)
    a, b = build(cfg, seed=7).train(), build(cfg, seed=7).train()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    counts, um, coords, sm = tiny_batch(cfg)
    outs = []
    for m in (a, b):
        torch.manual_seed(3)  # dropout masks
        loss = m.pretrain_loss(counts, um, coords, sm, generator=torch.Generator().manual_seed(5))
        outs.append((m.velocity(counts, um, coords, sm), loss["loss"]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])


def test_one_site_degenerates_cleanly():
    cfg = tiny_config()
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg, s=1)
    out = model.encode(counts, um, coords, sm, return_attention=True)
    assert out.h.shape[1] == 1
    torch.testing.assert_close(out.pooled, out.h[:, 0])
    assert torch.allclose(out.spatial_attn[0], torch.ones(()))
    losses = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator())
    assert float(losses["contrastive"]) == 0.0 and torch.isfinite(losses["loss"])
    none = build(tiny_config(n_spatial_layers=0))
    assert none.encode(counts, um, coords, sm, return_attention=True).spatial_attn is None


def test_padding_is_invisible():
    cfg = tiny_config()
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg, s=3)
    sm[:, 2] = False  # third site is padding
    um[:, 1, -2:] = False  # second site has two padded unit slots
    with torch.no_grad():
        base = model.encode(counts, um, coords, sm)
        junk = counts.clone()
        junk[:, 2] = 7.0  # anything in the padded site
        junk[:, 1, :, -2:] = 9.0  # anything in padded unit slots
        out = model.encode(junk, um, coords, sm)
    torch.testing.assert_close(out.h[:, :2], base.h[:, :2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.pooled, base.pooled, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(base.pooled, base.h[:, :2].mean(1), atol=1e-6, rtol=1e-5)
