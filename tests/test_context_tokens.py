"""Metadata that acts: context tokens at their metadata coordinates (issue 13, item 1).

Rotary bands are relative, so a coordinate that is the same for every token of a window
cancels in q.k. Context tokens sit at the window's subject / date / task while the bins
sit at 0 on those axes, so the metadata bands rotate q.k between bins and tokens.
"""

from __future__ import annotations

import pytest
import torch

from tests.model_helpers import build, tiny_batch, tiny_config

torch.set_num_threads(1)
META = ("subject", "date", "task")


def _double_batch(cfg, s=2):
    counts, um, coords, sm = tiny_batch(cfg, s=s)
    return counts.double(), um, {k: v.double() for k, v in coords.items()}, sm


@pytest.mark.parametrize("coord", META)
def test_changing_a_windows_metadata_changes_the_outputs(coord):
    for ct in ("shared", "none"):
        model = build(tiny_config(context_tokens=ct)).double()
        counts, um, coords, sm = _double_batch(model.cfg)
        with torch.no_grad():
            ref = model.velocity(counts, um, coords, sm)
            for step in (1.0, 5.0):
                moved = {**coords, coord: coords[coord] + step}
                diff = (model.velocity(counts, um, moved, sm) - ref).abs()
                if ct == "shared":
                    # every bin, the first included: the tokens precede bin 0 (float64:
                    # the rounding noise is ~1e-15; one day on a one-pair date band of
                    # 10228-day wavelength changes an untrained tiny model by ~1e-7)
                    assert float(diff.amax(dim=(0, 2)).min()) > 1e-9, (coord, step)
                else:  # the released design: the window's metadata cancels exactly
                    assert float(diff.max()) < 1e-12, (coord, step)


def test_integer_ids_land_at_distinct_outputs():
    # subject and task are vocabulary indices: ids 0..7 all give different outputs
    model = build(tiny_config()).double()
    counts, um, coords, sm = _double_batch(model.cfg)
    outs = []
    with torch.no_grad():
        for k in range(8):
            ids = {**coords, "subject": torch.full_like(coords["subject"], float(k))}
            outs.append(model.velocity(counts, um, ids, sm))
    for i in range(8):
        for j in range(i):
            assert float((outs[i] - outs[j]).abs().max()) > 1e-6, (i, j)


def test_context_tokens_exist_only_with_metadata_and_need_mrope_to_act():
    assert build(tiny_config(coords=("site_x",))).encoder.ctx_tokens is None
    model = build(tiny_config())
    assert model.encoder.ctx_tokens.shape == (3, model.cfg.d_model)
    # rope_time has no metadata band: the tokens are a learned prefix, blind to metadata
    model = build(tiny_config(pos_encoding="rope_time")).double()
    assert model.encoder.ctx_tokens is not None
    counts, um, coords, sm = _double_batch(model.cfg)
    with torch.no_grad():
        ref = model.velocity(counts, um, coords, sm)
        moved = {**coords, "subject": coords["subject"] + 3.0}
        torch.testing.assert_close(model.velocity(counts, um, moved, sm), ref, atol=1e-12,
                                   rtol=0)


@pytest.mark.parametrize("attention", ["context", "standard"])
def test_whole_model_with_context_tokens_is_causal(attention):
    model = build(tiny_config(attention=attention, n_spatial_layers=2)).double()
    assert model.encoder.meta == META
    counts, um, coords, sm = _double_batch(model.cfg, s=3)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        base = model.encode(counts, um, coords, sm)
        base_v = model.velocity(counts, um, coords, sm)
        for t in (0, 4, 9):
            pert = counts.clone()
            pert[:, :, t + 1:] = torch.poisson(torch.rand(pert[:, :, t + 1:].shape,
                                                          generator=g, dtype=counts.dtype) * 5)
            out = model.encode(pert, um, coords, sm)
            torch.testing.assert_close(out.h[:, :, :t + 1], base.h[:, :, :t + 1], atol=1e-10,
                                       rtol=0)
            torch.testing.assert_close(model.velocity(pert, um, coords, sm)[:, :t + 1],
                                       base_v[:, :t + 1], atol=1e-10, rtol=0)
            assert float((out.h[:, :, t + 1:] - base.h[:, :, t + 1:]).abs().max()) > 1e-4


def test_context_tokens_get_gradients_and_never_see_the_data():
    model = build(tiny_config())
    counts, um, coords, sm = tiny_batch(model.cfg)
    model.velocity(counts, um, coords, sm).pow(2).mean().backward()
    assert float(model.encoder.ctx_tokens.grad.abs().max()) > 0
    # the tokens' own outputs: a causal prefix, so they depend on no count at all
    seen = []
    blk = model.encoder.temporal[-1]
    hook = blk.register_forward_hook(lambda m, i, o: seen.append(o[0][:, :3].clone()))
    with torch.no_grad():
        model.encode(counts, um, coords, sm)
        model.encode(counts * 0 + 7, um, coords, sm)
    hook.remove()
    assert torch.equal(seen[0], seen[1])
