"""Sessions -> model inputs: shapes, unit slots, coordinates, determinism, training bins."""

import numpy as np
import pytest
import torch
from train_helpers import make_session

from rpnt.data.batches import (
    BatchSampler,
    SessionWindows,
    Vocab,
    date_coord,
    eval_unit_choice,
    velocity_stats,
)

torch.set_num_threads(1)
COORDS = ("subject", "date", "task", "site_x", "site_y", "site_z")


def make_windows(n_slots=8, units_per_site=12, **kw):
    s = make_session("sub-M_ses-RT-20150101", units_per_site=units_per_site, xyz=True, seed=5)
    vocab = Vocab.from_sessions([make_session("sub-C_ses-CO-20140101"), s])
    mean, std = velocity_stats([s], [s.split_bins("train")])
    return s, SessionWindows(s, vocab, COORDS, n_slots, 20, vel_mean=mean, vel_std=std, **kw)


def test_coordinates_and_vocab():
    # days since 2013-01-01 (was the fraction of 2013-2016; rule "bases" scales it back)
    assert date_coord("2013-01-01") == 0.0 and date_coord("2017-01-01") == 1461.0
    assert date_coord("2015-01-01") == pytest.approx(730)
    assert date_coord("2012-12-31") == -1.0  # not clipped
    _, sw = make_windows()
    assert sw.coords["subject"].tolist() == [1.0, 1.0]  # C first, then M
    assert sw.coords["task"].tolist() == [1.0, 1.0]  # random_target = 1
    assert sw.coords["site_x"].tolist() == [0.0, 1000.0]
    assert sw.coords["site_y"].tolist() == [0.0, 500.0]
    # extending a vocabulary never renumbers known names
    v = Vocab.from_sessions([make_session("sub-Q_ses-CO-20140101")], base=sw_vocab(sw))
    assert v.subjects == ["C", "M", "Q"] and v.tasks[:2] == ["center_out", "random_target"]


def sw_vocab(_sw):
    return Vocab(["C", "M"], ["center_out", "random_target"])


def test_batch_contents_match_session():
    s, sw = make_windows(n_slots=8, units_per_site=12)
    rng = np.random.default_rng(0)
    sampler = BatchSampler([sw], batch_size=6, subsets=2)
    b = sampler(rng)
    assert b["counts"].shape == (6, 2, 20, 8) and b["counts"].dtype == torch.float32
    assert b["unit_mask"].all() and b["site_mask"].all()
    assert b["velocity"].shape == (6, 20, 2)
    # replay the draw to know the windows and units, then check every value
    rng = np.random.default_rng(0)
    starts = np.repeat(rng.integers(0, sw.starts.size, 3), 2)
    starts = sw.starts[starts]
    units = sw.choose_units(rng, 6)
    for i in range(6):
        for j in range(2):
            want = s.spike_counts[starts[i]:starts[i] + 20][:, units[i, j]]
            np.testing.assert_array_equal(b["counts"][i, j].numpy(), want)
            assert np.isin(units[i, j], sw.site_units[j]).all()
            assert (np.diff(units[i, j]) > 0).all()  # session order kept
    # pairs share a window but (almost surely) not the unit subset
    assert torch.equal(b["velocity"][0], b["velocity"][1])
    assert not np.array_equal(units[0], units[1])
    vel = (s.velocity[starts[0]:starts[0] + 20] - sw.vel_mean) / sw.vel_std
    np.testing.assert_allclose(b["velocity"][0].numpy(), vel, rtol=1e-5)
    # windows lie in training trials only
    assert s.split_bins("train")[starts[:, None] + np.arange(20)].all()


def test_padding_and_eval_choice():
    _, sw = make_windows(n_slots=16, units_per_site=12)
    units = eval_unit_choice(sw, 3, seed=0)
    assert (units[:, :, 12:] == -1).all()
    b = sw.make_batch(sw.starts[:3], units)
    assert b["unit_mask"][:, :, :12].all() and not b["unit_mask"][:, :, 12:].any()
    assert (b["counts"][:, :, :, 12:] == 0).all()
    # with <= N units the slots are all units in session order, whatever the seed
    np.testing.assert_array_equal(eval_unit_choice(sw, 1, 1), eval_unit_choice(sw, 1, 2))
    # with > N units: the N most active units over training bins, same for every window
    s8, sw8 = make_windows(n_slots=8, units_per_site=12)
    a = eval_unit_choice(sw8, 4, seed=3)
    assert (a == a[:1]).all()
    rate = s8.spike_counts[s8.split_bins("train", finite_velocity=False)].mean(0)
    for j, units in enumerate(sw8.site_units):
        top = np.sort(units[np.argsort(-rate[units], kind="stable")[:8]])
        np.testing.assert_array_equal(a[0, j], top)
    # a fixed-sampling batch sampler uses exactly that choice
    seen = []
    BatchSampler([sw8], 4, unit_sampling="fixed", seed=3,
                 observer=lambda s, b, u: seen.append(u))(np.random.default_rng(0))
    np.testing.assert_array_equal(seen[0], a)


def test_sampler_is_deterministic_and_sessions_mix():
    s1 = make_session("sub-C_ses-CO-20140101", seed=1)
    s2 = make_session("sub-T_ses-CO-20140102", sites=(("PMd", "PMd"),), seed=2)
    vocab = Vocab.from_sessions([s1, s2])
    ws = [SessionWindows(s, vocab, ("subject",), 8, 20) for s in (s1, s2)]
    seen = []
    sampler = BatchSampler(ws, 4, observer=lambda sess, bins, units: seen.append(sess.session))
    a = sampler(np.random.default_rng(7))
    b = sampler(np.random.default_rng(7))
    assert all(torch.equal(a[k], b[k]) for k in ("counts", "unit_mask", "velocity"))
    rng = np.random.default_rng(0)
    shapes = {sampler(rng)["counts"].shape[1] for _ in range(30)}
    assert shapes == {1, 2} and set(seen) == {s1.session, s2.session}


def test_fixed_unit_choice_draws_every_window_once():
    """With a per-session read-in's fixed unit choice, ``subsets`` would only repeat each
    window: every sample of a batch is its own window (no duplicates)."""
    s = make_session("sub-A_ses-CO-20200101", n_trials=40)
    sw = SessionWindows(s, Vocab.from_sessions([s]), ("subject",), 16, 20)
    for fixed in (True, False):
        sampler = BatchSampler([sw], 16, subsets=2, seed=0,
                               unit_sampling="fixed" if fixed else "random")
        b = sampler(np.random.default_rng(0))
        assert b["counts"].shape[0] == 16
        n_windows = len(torch.unique(b["window"]))
        assert n_windows == (16 if fixed else 8)
        if fixed:  # drawn with replacement: only chance repeats, never systematic ones
            assert len(torch.unique(b["counts"].reshape(16, -1), dim=0)) >= 14


@pytest.mark.parametrize("section,msg", [
    ({"finetune": {"trian": {}}}, "finetune: unknown keys"),
    ({"finetune": {"train": {"stepz": 1}}}, "finetune.train: unknown keys"),
    ({"finetune": {"train": {"steps": 0}}}, "must be positive"),
    ({"finetune": {"unit_sampling": "all"}}, "unit_sampling"),
    ({"finetune": {"stage1_fraction": 1.0}}, "stage1_fraction"),
    ({"pretrain": {"subsets": 0}}, "pretrain.subsets"),
])
def test_config_sections_reject_bad_keys(section, msg):
    from rpnt.errors import RpntError
    from rpnt.train.config import finetune_config, pretrain_config

    with pytest.raises(RpntError, match=msg) as exc:
        (pretrain_config if "pretrain" in section else finetune_config)(section, "cfg.yaml")
    assert str(exc.value).startswith("cfg.yaml")


def test_config_sections_defaults_and_overrides():
    from rpnt.train.config import finetune_config, model_config, pretrain_config

    p = pretrain_config({"pretrain": {"train": {"steps": 7}, "subsets": 3}})
    assert p.train.steps == 7 and p.subsets == 3 and p.train.lr == 1e-3
    f = finetune_config({})
    assert f.stage1_fraction == 0.5 and f.unit_sampling == "fixed"
    m = model_config({"model": {"size": "tiny", "n_units": 20}})
    assert (m.d_model, m.n_units) == (32, 20)
