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
    assert set(losses) == {"loss", "poisson", "contrastive", "time_ratio", "unit_ratio"}
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
