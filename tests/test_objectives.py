"""Self-supervised objectives: mask ratios, masks, Poisson NLL, site contrast, pretrain loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rpnt.model.objectives import (
    draw_mask_ratios,
    poisson_nll,
    site_contrastive,
    time_block_mask,
    unit_drop_mask,
)
from tests.model_helpers import build, tiny_batch, tiny_config

torch.set_num_threads(1)


def test_mask_ratios_follow_their_uniform_distribution():
    cfg = tiny_config(mask_ratio_range=(0.2, 0.7))
    g = torch.Generator().manual_seed(0)
    r = np.array([draw_mask_ratios(cfg, g) for _ in range(4000)])  # (n, 2): time, unit
    a, b = 0.2, 0.7
    assert r.min() >= a and r.max() <= b
    for col in (0, 1):
        x = np.sort(r[:, col])
        assert abs(x.mean() - (a + b) / 2) < 4 * (b - a) / math.sqrt(12 * len(x))
        assert abs(x.var() - (b - a) ** 2 / 12) < 0.1 * (b - a) ** 2 / 12
        # Kolmogorov-Smirnov distance to U(a, b) below the 0.1 % critical value.
        cdf = (x - a) / (b - a)
        n = len(x)
        ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
        assert ks < 1.95 / math.sqrt(n)
    assert abs(np.corrcoef(r[:, 0], r[:, 1])[0, 1]) < 0.06  # drawn independently


def test_fixed_mask_ratio():
    cfg = tiny_config(fixed_mask_ratio=0.3)
    assert draw_mask_ratios(cfg, torch.Generator()) == (0.3, 0.3)


def test_time_mask_is_one_block_of_future_bins():
    m = time_block_mask(10, 0.34)
    assert m.tolist() == [False] * 7 + [True] * 3
    assert time_block_mask(10, 0.001).sum() == 1  # at least one bin
    assert time_block_mask(10, 0.999).sum() == 10


def test_unit_mask_counts_and_never_padding():
    g = torch.Generator().manual_seed(0)
    um = torch.ones(50, 3, 10, dtype=torch.bool)
    um[:, 1, 6:] = False
    um[:, 2, 1:] = False
    drop = unit_drop_mask(um, 0.5, g)
    assert not (drop & ~um).any()
    assert (drop[:, 0].sum(-1) == 5).all()
    assert (drop[:, 1].sum(-1) == 3).all()
    assert (drop[:, 2].sum(-1) == 1).all()
    # Every real unit is equally likely to be chosen.
    freq = drop[:, 0].float().mean(0)
    assert float((freq - 0.5).abs().max()) < 0.25


def test_poisson_nll_equals_hand_computed_value():
    rates = torch.tensor([0.5, 2.0, 1.0, 3.0])
    counts = torch.tensor([0.0, 3.0, 1.0, 2.0])
    mask = torch.tensor([True, True, False, True])
    # -log Poisson(y | r) = r - y log r + log y!
    hand = ((0.5 - 0.0 + 0.0)
            + (2.0 - 3.0 * math.log(2.0) + math.log(6.0))
            + (3.0 - 2.0 * math.log(3.0) + math.log(2.0))) / 3
    assert float(poisson_nll(rates, counts, mask)) == pytest.approx(hand, rel=1e-6)
    ref = torch.nn.functional.poisson_nll_loss(rates[mask], counts[mask], log_input=False,
                                               full=False, eps=1e-8)
    stirling_free = hand - (math.log(6.0) + math.log(2.0)) / 3
    assert float(ref) == pytest.approx(stirling_free, rel=1e-6)


def _onehots(b, s, d, by):
    z = torch.zeros(b, s, d)
    for i in range(b):
        for j in range(s):
            z[i, j, i if by == "sample" else j] = 1.0
    return z


def test_site_contrast_modes_pull_in_opposite_directions():
    b, s, d = 4, 3, 8
    same_per_sample = _onehots(b, s, d, "sample")  # sites of a sample agree
    same_per_site = _onehots(b, s, d, "site")  # a site looks the same in every sample
    inv_good = site_contrastive(same_per_sample, None, "site_invariance")
    inv_bad = site_contrastive(same_per_site, None, "site_invariance")
    dis_good = site_contrastive(same_per_site, None, "site_discrimination")
    dis_bad = site_contrastive(same_per_sample, None, "site_discrimination")
    assert inv_good < inv_bad and dis_good < dis_bad
    # Perfect solution: positives at cos 1, negatives at cos 0, temperature 0.1.
    n_pos, n_neg = s - 1, (b - 1) * s
    expected = -math.log(math.exp(10) / (n_pos * math.exp(10) + n_neg))
    assert float(inv_good) == pytest.approx(expected, rel=1e-5)


def test_site_contrast_ignores_padded_sites_and_single_sites():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 3, 8, generator=g, requires_grad=True)
    sm = torch.tensor([[True, True, False]] * 3)
    base = site_contrastive(z, sm, "site_invariance")
    z2 = z.detach().clone()
    z2[:, 2] = 100.0
    torch.testing.assert_close(site_contrastive(z2, sm, "site_invariance"), base.detach())
    one = site_contrastive(z[:, :1], None, "site_invariance")
    assert float(one.detach()) == 0.0
    one.backward()  # still attached to the graph, no NaN
    assert torch.isfinite(z.grad).all()


def test_pretrain_loss_zeroes_masked_inputs_and_scores_them():
    cfg = tiny_config(fixed_mask_ratio=0.25)
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg)
    seen = {}

    def capture(mod, inp, out):
        seen["x"] = inp[0].detach().clone()  # returns None: output unchanged

    hook = model.encoder.embed.register_forward_hook(capture)
    out = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator().manual_seed(4))
    hook.remove()
    # Recreate the masks from the same generator stream.
    g = torch.Generator().manual_seed(4)
    r_t, r_u = draw_mask_ratios(cfg, g)
    tmask = time_block_mask(cfg.window, r_t)
    umask = unit_drop_mask(um, r_u, g)
    hidden = tmask[None, None, :, None] | umask[:, :, None, :]
    assert float(seen["x"][hidden].abs().max()) == 0.0
    visible = ~hidden & um[:, :, None, :]
    torch.testing.assert_close(seen["x"][visible], counts[visible])
    assert float(out["time_ratio"]) == pytest.approx(3 / 12)
    assert float(out["unit_ratio"]) == pytest.approx(float(umask.sum() / um.sum()))
    torch.testing.assert_close(out["loss"].detach(),
                               out["poisson"] + cfg.contrastive_weight * out["contrastive"])


def test_contrastive_none_and_weights():
    cfg = tiny_config(contrastive="none")
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg)
    out = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator().manual_seed(0))
    assert float(out["contrastive"]) == 0.0
    torch.testing.assert_close(out["loss"].detach(), out["poisson"])


def _copies_batch():
    """2 windows x 2 copies x 2 sites: window A's sites at e1, window B's at e2 (each
    window's representation the same in both copies and both sites)."""
    e1, e2 = torch.eye(4)[0], torch.eye(4)[1]
    z = torch.stack([e1, e1, e2, e2])[:, None, :].expand(4, 2, 4).clone()
    return z, torch.tensor([0, 0, 1, 1])  # samples 0, 1 show window 0; 2, 3 window 1


def test_site_invariance_never_counts_copies_or_own_sites_as_negatives():
    """Hand-computed: with temperature 0.5 (positives at cos 1 -> logit 2, others at 0),
    each anchor has one positive (its window's other site, in its own copy) and the four
    rows of the other window as negatives; the other copy's two rows are neither."""
    z, window = _copies_batch()
    hand = math.log(1 + 4 * math.exp(-2))  # -log(e^2 / (e^2 + 4))
    got = site_contrastive(z, None, "site_invariance", temperature=0.5, window=window)
    assert float(got) == pytest.approx(hand, rel=1e-6)
    # The released rule (no window ids): the copy's two rows are negatives at logit 2,
    # and the floor rises towards log 3 as the temperature falls.
    released = site_contrastive(z, None, "site_invariance", temperature=0.5)
    assert float(released) == pytest.approx(math.log(3 + 4 * math.exp(-2)), rel=1e-6)
    cold = site_contrastive(z, None, "site_invariance", temperature=0.01)
    assert float(cold) == pytest.approx(math.log(3), rel=1e-6)
    assert float(site_contrastive(z, None, "site_invariance", temperature=0.01,
                                  window=window)) < 1e-6
    # Without copies (one sample per window) the window ids change nothing.
    single = z[[0, 2]]
    torch.testing.assert_close(
        site_contrastive(single, None, "site_invariance", window=torch.tensor([5, 9])),
        site_contrastive(single, None, "site_invariance"))


def test_site_discrimination_with_copies():
    """Hand-computed: anchor (window A, copy 0, site 0); positives: site 0 of window B's
    two copies (cos 0 here, logit 0); negatives: its own other site (logit 2: pushing
    sites apart is this objective) and site 1 of window B's copies (logit 0); the other
    copy of window A is left out. Every anchor alike: -log(1 / (e^2 + 4))."""
    z, window = _copies_batch()
    hand = math.log(math.exp(2) + 4)
    got = site_contrastive(z, None, "site_discrimination", temperature=0.5, window=window)
    assert float(got) == pytest.approx(hand, rel=1e-6)


def test_joint_objective_decodes_the_unmasked_half():
    """With velocity targets the last B // 2 windows reach the encoder whole and are
    scored by the velocity head (MSE over finite targets); the others are masked and
    reconstructed as in the ssl objective."""
    cfg = tiny_config(fixed_mask_ratio=0.5)
    model = build(cfg).eval()  # no dropout: the decoded half can be recomputed alone
    counts, um, coords, sm = tiny_batch(cfg)
    b = counts.shape[0]
    vel = torch.randn(b, cfg.window, cfg.n_axis)
    vel[-1, :3] = float("nan")  # unknown targets are left out
    seen = {}
    hook = model.encoder.embed.register_forward_hook(
        lambda mod, inp, out: seen.__setitem__("x", inp[0].detach().clone()))
    out = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator().manual_seed(1),
                              velocity=vel, velocity_weight=2.0)
    hook.remove()
    half = b - b // 2
    visible = um[half:, :, None, :].expand(-1, -1, cfg.window, -1)
    torch.testing.assert_close(seen["x"][half:][visible], counts[half:][visible])
    assert float(seen["x"][:half].abs().sum()) < float(counts[:half].abs().sum())
    with torch.no_grad():
        pred = model.velocity(counts[half:], um[half:],
                              {k: v[half:] for k, v in coords.items()}, sm[half:])
    known = torch.isfinite(vel[half:])
    hand = ((pred - vel[half:].nan_to_num()) ** 2)[known].mean()
    torch.testing.assert_close(out["velocity"], hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        out["loss"].detach(),
        out["poisson"] + cfg.contrastive_weight * out["contrastive"] + 2.0 * out["velocity"])
    ssl = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator().manual_seed(1))
    assert float(ssl["velocity"]) == 0.0
