"""MRoPE: relative in every coordinate, every band live, time-only == RoPE, legacy inert."""

from __future__ import annotations

import pytest
import torch

from rpnt.model.config import RPNTConfig
from rpnt.model.rope import RotaryEmbedding, band_sizes
from tests.model_helpers import build, tiny_batch, tiny_config

torch.set_num_threads(1)

COORDS = ("time", "subject", "date", "task", "site_x", "site_y")
N_COORDS = len(COORDS)
CFG = RPNTConfig()


def mrope(head_dim=24, coords=COORDS, mode="mrope"):
    return RotaryEmbedding(head_dim, coords, CFG.rope_bases, CFG.rope_shares, mode=mode).double()


def dots(rot, q, k, pq, pk):
    """Row-wise q.k after rotating q at positions pq and k at pk: (n,)."""
    return (rot.rotate(q, rot.angles(pq)) * rot.rotate(k, rot.angles(pk))).sum(-1)


def rand(n=64, head_dim=24, n_coords=N_COORDS, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, head_dim, generator=g, dtype=torch.float64)
    k = torch.randn(n, head_dim, generator=g, dtype=torch.float64)
    pq = torch.rand(n, n_coords, generator=g, dtype=torch.float64) * 20
    pk = torch.rand(n, n_coords, generator=g, dtype=torch.float64) * 20
    return q, k, pq, pk


def test_band_sizes():
    assert band_sizes([4, 1, 1, 1], 12) == [6, 2, 2, 2]
    assert sum(band_sizes([4, 1, 1, 1, 1, 1], 16)) == 16
    assert min(band_sizes([100, 1, 1], 8)) == 1
    with pytest.raises(ValueError):
        band_sizes([1, 1, 1], 2)
    rot = mrope()
    assert rot.band_sizes[0] == max(rot.band_sizes)  # time gets the largest share


@pytest.mark.parametrize("ci", range(len(COORDS)))
def test_common_shift_of_one_coordinate_leaves_scores_unchanged(ci):
    rot = mrope()
    q, k, pq, pk = rand()
    base = dots(rot, q, k, pq, pk)
    shift = torch.zeros(len(COORDS), dtype=torch.float64)
    shift[ci] = 7.3
    torch.testing.assert_close(dots(rot, q, k, pq + shift, pk + shift), base)


@pytest.mark.parametrize("ci", range(len(COORDS)))
def test_every_band_is_live(ci):
    rot = mrope()
    q, k, pq, pk = rand()
    base = dots(rot, q, k, pq, pk)
    shift = torch.zeros(len(COORDS), dtype=torch.float64)
    shift[ci] = 0.9
    changed = dots(rot, q, k, pq + shift, pk)  # only the query side moves
    assert float((changed - base).abs().max()) > 1e-2
    # ... and coordinate ci acts through its own band only: with q and k supported on the
    # other bands, moving ci on one side changes nothing.
    own = rot.owner == ci
    keep = torch.cat([~own, ~own]).double()
    torch.testing.assert_close(dots(rot, q * keep, k * keep, pq + shift, pk),
                               dots(rot, q * keep, k * keep, pq, pk))
    assert own.sum() >= 1


def plain_rope(x, pos, base=10000.0):
    """Textbook 1-D RoPE, rotate-half layout: x (n, d), pos (n,)."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    rot_half = torch.cat([-x[:, d // 2:], x[:, : d // 2]], -1)
    return x * cos + rot_half * sin


def test_time_only_equals_plain_rope():
    rot = mrope(coords=("time",))
    q, _, pq, _ = rand(n_coords=1)
    torch.testing.assert_close(rot.rotate(q, rot.angles(pq)),
                               plain_rope(q, pq[:, 0], base=CFG.rope_bases["time"]))


def test_legacy_uses_only_the_first_metadata_coordinate():
    coords = ("subject", "date", "task")
    rot = mrope(coords=coords, mode="legacy")
    assert rot.band_sizes == [12, 0, 0]
    q, k, pq, pk = rand(n_coords=3)
    pk[:, 0] = pq[:, 0]  # same subject: the only coordinate legacy reads
    pk2 = pk.clone()
    pk2[:, 1:] += 5.0
    plain = (q * k).sum(-1)
    torch.testing.assert_close(dots(rot, q, k, pq, pk), plain)
    torch.testing.assert_close(dots(rot, q, k, pq, pk2), plain)


def _outputs(model, batch):
    counts, um, coords, sm = batch
    with torch.no_grad():
        return model.encode(counts, um, coords, sm).h


def test_model_legacy_mrope_has_no_effect_but_fixed_mrope_does():
    none = build(tiny_config(pos_encoding="none"))
    legacy = build(tiny_config(pos_encoding="mrope_legacy"))
    fixed = build(tiny_config(pos_encoding="mrope"))
    legacy.load_state_dict(none.state_dict())
    fixed.load_state_dict(none.state_dict())
    batch = tiny_batch(none.cfg)
    ref = _outputs(none, batch)
    torch.testing.assert_close(_outputs(legacy, batch), ref, atol=1e-5, rtol=1e-5)
    assert float((_outputs(fixed, batch) - ref).abs().max()) > 1e-3


@pytest.mark.parametrize("coord", ["subject", "date", "task", "site_x", "site_y"])
def test_model_is_relative_in_metadata_coordinates(coord):
    model = build(tiny_config(pos_encoding="mrope"))
    counts, um, coords, sm = tiny_batch(model.cfg)
    ref = _outputs(model, (counts, um, coords, sm))
    shifted = dict(coords)
    shifted[coord] = coords[coord] + 2.5  # every site of every sample
    torch.testing.assert_close(_outputs(model, (counts, um, shifted, sm)), ref,
                               atol=1e-5, rtol=1e-5)


def test_model_cross_site_attention_sees_site_geometry():
    model = build(tiny_config(pos_encoding="mrope"))
    counts, um, coords, sm = tiny_batch(model.cfg)
    ref = _outputs(model, (counts, um, coords, sm))
    for coord in ("site_x", "site_y"):
        moved = dict(coords)
        moved[coord] = coords[coord].clone()
        moved[coord][:, 0] += 9.0  # one site moves relative to the other
        assert float((_outputs(model, (counts, um, moved, sm)) - ref).abs().max()) > 1e-4


@pytest.mark.parametrize("pe", ["none", "sinusoidal", "learned", "rope_time"])
def test_other_position_encodings_run(pe):
    model = build(tiny_config(pos_encoding=pe))
    h = _outputs(model, tiny_batch(model.cfg))
    assert h.shape == (3, 2, 12, 32) and torch.isfinite(h).all()
