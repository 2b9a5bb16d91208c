"""MRoPE: relative in every coordinate, every band live, time-only == RoPE, legacy inert."""

from __future__ import annotations

import pytest
import torch

from rpnt.data.batches import DataExtent
from rpnt.model.config import DATE_HORIZON, RPNTConfig
from rpnt.model.rope import RotaryEmbedding, band_frequencies, band_sizes
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
    # Without context tokens (the released design) every token of a window sits at the
    # window's metadata, so shifting it changes nothing; site geometry is relative too
    # with context tokens (their site coordinates are their site's).
    for ct in ("none", "shared"):
        if ct == "shared" and not coord.startswith("site_"):
            continue  # with context tokens the window's metadata acts: test_context_tokens
        model = build(tiny_config(pos_encoding="mrope", context_tokens=ct))
        counts, um, coords, sm = tiny_batch(model.cfg)
        ref = _outputs(model, (counts, um, coords, sm))
        shifted = dict(coords)
        shifted[coord] = coords[coord] + 2.5  # every site of every sample
        torch.testing.assert_close(_outputs(model, (counts, um, shifted, sm)), ref,
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("coord", COORDS)
def test_whole_model_is_relative_per_coordinate_with_context_tokens(coord):
    """Moving every token (context tokens and bins) along one coordinate changes nothing:
    the model sees coordinate differences only, band by band."""
    model = build(tiny_config(pos_encoding="mrope", context_tokens="shared")).double()
    counts, um, coords, sm = tiny_batch(model.cfg)
    counts, coords = counts.double(), {k: v.double() for k, v in coords.items()}
    enc = model.encoder
    assert enc.meta == ("subject", "date", "task")
    ci = enc.rotary.coords.index(coord)
    positions = enc.positions

    def shifted(*args, **kw):
        pos = positions(*args, **kw).clone()
        pos[..., ci] += 37.7
        return pos

    with torch.no_grad():
        ref = model.velocity(counts, um, coords, sm)
        enc.positions = shifted
        out = model.velocity(counts, um, coords, sm)
        del enc.positions
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    if coord in enc.meta:  # moving the window's value alone is a different input
        # one id, or one week: the one-pair date band turns once per 2 x (span + 10 years)
        step = 7.0 if coord == "date" else 1.0
        moved = {**coords, coord: coords[coord] + step}
        with torch.no_grad():
            assert float((model.velocity(counts, um, moved, sm) - ref).abs().max()) > 1e-6


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


# --- frequencies that fit each coordinate (issue 13, item 2) ---------------------------

def test_band_frequencies_span_their_range():
    lam = 2 * torch.pi / band_frequencies(4, wavelengths=(6.0, 100.0))
    torch.testing.assert_close(lam[[0, -1]], torch.tensor([6.0, 100.0], dtype=torch.float64))
    assert (lam[1:] / lam[:-1]).allclose(lam[1] / lam[0])  # geometric
    # one pair honours the range: the longest wavelength, never 1 rad per unit
    lam1 = 2 * torch.pi / band_frequencies(1, wavelengths=(50.0, 16000.0))
    assert lam1.tolist() == pytest.approx([16000.0])
    # the released rule: pair 0 turns at 1 rad per unit whatever the base
    assert band_frequencies(1, base=5000.0).tolist() == [1.0]


SITES = ("subject", "date", "task", "site_x", "site_y", "site_z")


def _extent():
    return DataExtent(max_units=8, n_subjects=3, n_tasks=2, days=(250.0, 1400.0),
                      spacing={"site_x": (2000.0, 6000.0), "site_y": (1000.0, 3000.0)})


def test_fitted_ranges_per_coordinate():
    cfg = tiny_config(coords=SITES, window=50).fitted(_extent())
    r = cfg.wavelength_range
    assert r("time") == (6.0, 100.0)  # 6 bins .. 2T
    # two weeks .. 2 x (the span of the dates + a ten-year horizon)
    assert r("date") == (14.0, 2 * (1150.0 + DATE_HORIZON))
    # ids: 4 .. 2K, K = 2 x the ids known (at least 4)
    assert r("subject") == (4.0, 12.0) and r("task") == (4.0, 8.0)
    assert r("site_x") == (4000.0, 24000.0) and r("site_y") == (2000.0, 12000.0)
    assert r("site_z") == (50.0, 16000.0)  # no two sites differ in z: the fallback
    # the fitted config records every range, so a checkpoint rebuilds the same bands
    back = RPNTConfig(**cfg.to_dict())
    assert {c: back.wavelength_range(c) for c in back.rotary_coords()} == \
        {c: r(c) for c in cfg.rotary_coords()}
    # a configured range wins over the data
    own = tiny_config(coords=SITES, rope_wavelength_max={"site_x": 9000.0}).fitted(_extent())
    assert own.wavelength_range("site_x") == (4000.0, 9000.0)


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_no_pair_at_an_accidental_frequency(size):
    cfg = RPNTConfig.preset(size, coords=SITES).fitted(_extent())
    rot = build(cfg).encoder.rotary
    lam = 2 * torch.pi / rot.inv_freq
    for ci, c in enumerate(rot.coords):
        lo, hi = cfg.wavelength_range(c)
        band = lam[rot.owner == ci]
        assert float(band.min()) >= lo * (1 - 1e-9) and float(band.max()) <= hi * (1 + 1e-9)
        assert float(band.max()) == pytest.approx(hi)  # the slowest pair spans the range


def _site_move(cfg, dx):
    """Largest change of the velocity when site 1 of 3 (at 0, 2000, 6000 um) moves by dx."""
    model = build(cfg).double()
    counts, um, coords, sm = tiny_batch(cfg, s=3)
    coords = {k: v.double() for k, v in coords.items()}
    coords["site_x"] = torch.tensor([0.0, 2000.0, 6000.0]).expand(3, 3).double()
    moved = dict(coords)
    moved["site_x"] = coords["site_x"].clone()
    moved["site_x"][:, 1] += dx
    with torch.no_grad():
        ref = model.velocity(counts.double(), um, coords, sm)
        return float((model.velocity(counts.double(), um, moved, sm) - ref).abs().max())


def test_site_moves_within_a_probe_change_the_outputs():
    fitted = tiny_config(coords=SITES).fitted(_extent())
    released = tiny_config(coords=SITES, rope_frequencies="bases")
    assert build(fitted).encoder.rotary.band_sizes[SITES.index("site_x") + 1] == 1
    # the released rule wraps every 62.8 um (one pair at 1 rad per 10 um): blind
    assert _site_move(released, 20 * torch.pi) < 1e-7
    # float64: rounding noise ~1e-15; a 1 um move changes an untrained tiny model ~4e-7
    for dx in (1.0, 10.0, 20 * torch.pi, 100.0, 500.0, 1000.0, 3840.0, 6000.0):
        assert _site_move(fitted, dx) > 1e-8, dx
