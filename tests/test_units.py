"""Every unit reaches RPNT (issue 13, item 3): per-session read-ins sized to the largest
site, widened when finetuning meets a larger one; the slot limit only for the shared
read-in of the released code."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from train_helpers import make_session

from rpnt.data.batches import DataExtent, Vocab
from rpnt.decoders.base import load_decoder, save_decoder
from rpnt.decoders.rpnt_decoder import RPNTDecoder
from rpnt.model import RPNTConfig

torch.set_num_threads(1)
STARTS = np.array([3, 40])


def _cfg(readin="session", **kw):
    return RPNTConfig.preset("tiny", window=20, dropout=0.0, readin=readin, **kw)


def _unit_effects(dec, session):
    """Per unit: the largest change of the predictions when its counts in one bin grow."""
    ref = dec.predict_windows(session, STARTS, 20)
    out = []
    for u in range(session.n_unit):
        counts = session.spike_counts.copy()
        counts[STARTS[0] + 5, u] += 3
        pred = dec.predict_windows(replace(session, spike_counts=counts), STARTS, 20)
        out.append(float(np.abs(pred - ref).max()))
    return np.array(out)


def test_a_site_with_120_units_uses_all_120():
    s = make_session("sub-C_ses-CO-20131003", sites=(("M1", "M1"),), units_per_site=120,
                     pool_per_site=150, n_trials=8)
    torch.manual_seed(0)
    dec = RPNTDecoder.build(_cfg(), Vocab.from_sessions([s]))  # n_units 50 configured
    assert dec.config.n_units == 120
    assert (_unit_effects(dec, s) > 1e-6).all()
    # the released shared read-in keeps its 50 slots: 70 units never reach it
    torch.manual_seed(0)
    shared = RPNTDecoder.build(_cfg("shared"), Vocab.from_sessions([s]))
    assert shared.config.n_units == 50
    assert ((_unit_effects(shared, s) > 0).sum()) == 50


def test_finetuning_on_a_larger_site_widens_the_slots_and_keeps_old_rows(tmp_path):
    a = make_session("sub-C_ses-CO-20131003", units_per_site=16, seed=1, n_trials=8)
    b = make_session("sub-C_ses-CO-20131004", units_per_site=40, pool_per_site=48, seed=2,
                     n_trials=8)
    torch.manual_seed(0)
    dec = RPNTDecoder.build(_cfg(n_units=8), Vocab.from_sessions([a]))
    assert dec.config.n_units == 16
    ref = dec.predict_windows(a, STARTS, 20)
    embed = dec.model.encoder.embed.weight.detach().clone()
    readout = dec.model.readout.weight.detach().clone()
    dec.set_vocab(Vocab.from_sessions([b], base=dec.vocab))
    assert dec.config.n_units == 40 and dec.hparams["model"]["n_units"] == 40
    n_old = embed.shape[0]
    assert torch.equal(dec.model.encoder.embed.weight[:n_old, :16], embed)
    assert torch.equal(dec.model.readout.weight[:n_old, :, :16], readout)
    np.testing.assert_allclose(dec.predict_windows(a, STARTS, 20), ref, atol=1e-5)
    assert (_unit_effects(dec, b) > 1e-6).all()
    save_decoder(dec, tmp_path / "d")
    back = load_decoder(tmp_path / "d")
    assert np.array_equal(back.predict_windows(b, STARTS, 20),
                          dec.predict_windows(b, STARTS, 20))


def test_vocab_records_what_the_model_is_sized_by():
    a = make_session("sub-C_ses-CO-20131003", units_per_site=12, xyz=True, seed=1)
    b = make_session("sub-M_ses-RT-20150101", units_per_site=20, xyz=True, seed=2)
    v = Vocab.from_sessions([b], base=Vocab.from_sessions([a]))
    assert Vocab.from_dict(v.to_dict()) == v
    ext = v.extent()
    assert ext.max_units == 20 and ext.n_subjects == 2 and ext.n_tasks == 2
    assert ext.days == (275.0, 730.0)  # 2013-10-03 and 2015-01-01
    # make_session puts site j at x = 1000 j, y = 500 j, z = 1500: no z spacing
    assert ext.spacing == {"site_x": (1000.0, 1000.0), "site_y": (500.0, 500.0)}
    assert Vocab.from_sessions([make_session("sub-C_ses-CO-20131003")]).extent().spacing == {}
    assert DataExtent().max_units == 0
