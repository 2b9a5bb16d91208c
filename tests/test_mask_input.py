"""A mask the encoder can see (issue 12, item 4): hidden counts never reach the encoder,
and with ``mask_input: learned`` a hidden entry and a true zero are different inputs."""

from __future__ import annotations

import pytest
import torch

from rpnt.model.objectives import draw_mask_ratios, time_block_mask, unit_drop_mask
from tests.model_helpers import build, tiny_batch, tiny_config

torch.set_num_threads(1)


def _hidden(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.rand(shape, generator=g) < 0.3  # scattered entries
    hidden[:, :, -3:] = True  # and a future block: whole bins hidden
    return hidden


def test_hidden_entry_differs_from_a_true_zero():
    model = build(tiny_config(mask_input="learned")).double()
    counts, um, coords, sm = tiny_batch(model.cfg)
    counts = counts.double()
    hidden = _hidden(counts.shape)
    zero = counts.masked_fill(hidden, 0.0)
    seen = []
    hook = model.encoder.embed.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    with torch.no_grad():
        a = model.encode(zero, um, coords, sm)  # true zeros
        b = model.encode(zero, um, coords, sm, hidden=hidden)  # the same entries hidden
    hook.remove()
    # the count read-in sees the same zeros; the encoder input is not the same
    assert torch.equal(seen[0], seen[1])
    assert float((a.h - b.h).abs().max()) > 1e-3
    assert float((a.h[:, :, -1] - b.h[:, :, -1]).abs().max()) > 1e-3  # a fully hidden bin


@pytest.mark.parametrize("mask_input", ["learned", "zero"])
def test_no_hidden_value_reaches_the_encoder(mask_input):
    model = build(tiny_config(mask_input=mask_input)).double()
    counts, um, coords, sm = tiny_batch(model.cfg)
    counts = counts.double()
    hidden = _hidden(counts.shape, seed=1)
    with torch.no_grad():
        ref = model.encode(counts, um, coords, sm, hidden=hidden)
        for junk in (0.0, 99.0, -4.0, float("nan"), float("inf")):
            noisy = counts.clone()
            noisy[hidden] = junk
            out = model.encode(noisy, um, coords, sm, hidden=hidden)
            assert torch.equal(out.h, ref.h), junk
        # the check can fail: a visible count does reach it
        noisy = counts.clone()
        noisy[~hidden & um[:, :, None, :]] += 1.0
        assert not torch.equal(model.encode(noisy, um, coords, sm, hidden=hidden).h, ref.h)


def test_zero_mask_input_is_the_released_behaviour():
    model = build(tiny_config(mask_input="zero"))
    assert model.encoder.mask_embed is None
    counts, um, coords, sm = tiny_batch(model.cfg)
    hidden = _hidden(counts.shape)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(counts, um, coords, sm, hidden=hidden).h,
                                   model.encode(counts.masked_fill(hidden, 0.0), um, coords,
                                                sm).h, atol=0, rtol=0)


def test_pretrain_loss_hands_its_mask_to_the_encoder():
    model = build(tiny_config(fixed_mask_ratio=0.25))
    counts, um, coords, sm = tiny_batch(model.cfg)
    seen = {}
    forward = model.encoder.forward

    def spy(*args, **kw):
        seen["hidden"] = args[-1] if len(args) > 6 else kw.get("hidden")
        return forward(*args, **kw)

    model.encoder.forward = spy
    model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    r_t, r_u = draw_mask_ratios(model.cfg, g)
    hidden = time_block_mask(model.cfg.window, r_t)[None, None, :, None] | \
        unit_drop_mask(um, r_u, g)[:, :, None, :]
    assert torch.equal(seen["hidden"].expand(counts.shape), hidden.expand(counts.shape))


def test_mask_embedding_is_per_session_read_in_and_grows_with_it():
    model = build(tiny_config(readin="session", n_readins=2))
    assert model.encoder.mask_embed.weight.shape[0] == 2
    ids = {id(p) for p in model.readin_parameters()}
    assert id(model.encoder.mask_embed.weight) in ids
    model.grow_readins(5)
    assert model.encoder.mask_embed.n_rows == 5
    model.grow_units(model.cfg.n_units + 4)
    assert model.encoder.mask_embed.d_in == model.cfg.n_units
