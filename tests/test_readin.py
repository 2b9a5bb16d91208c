"""Per-session read-in (``RPNTConfig.readin``): the row map, growth, and its plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_helpers import build, tiny_batch, tiny_config
from train_helpers import make_session

from rpnt.data.batches import SessionWindows, Vocab, readin_key
from rpnt.decoders.base import load_decoder, save_decoder
from rpnt.errors import RpntError
from rpnt.model.readin import ContextLinear


def test_one_row_is_nn_linear():
    torch.manual_seed(0)
    m = ContextLinear(5, 3)
    ref = torch.nn.Linear(5, 3)
    with torch.no_grad():
        ref.weight.copy_(m.weight[0].T)
        ref.bias.copy_(m.bias[0])
    x = torch.randn(2, 4, 7, 5)
    assert torch.allclose(m(x), ref(x), atol=1e-6)
    assert torch.allclose(m(x, torch.zeros(2, 4, dtype=torch.long)), ref(x), atol=1e-6)


def test_each_site_uses_its_own_row_only():
    torch.manual_seed(0)
    m = ContextLinear(5, 3, n_rows=4)
    x = torch.randn(2, 3, 6, 5)
    rows = torch.tensor([[0, 2, 2], [3, 0, 1]])
    out = m(x, rows)
    for b in range(2):
        for s in range(3):
            r = int(rows[b, s])
            assert torch.allclose(out[b, s], x[b, s] @ m.weight[r] + m.bias[r], atol=1e-6)
    out.sum().backward()
    # rows 0..3 all used here; drop row 1 and its gradient must be exactly zero
    m.zero_grad()
    m(x, torch.tensor([[0, 2, 2], [3, 0, 3]])).sum().backward()
    assert torch.count_nonzero(m.weight.grad[1]) == 0 and torch.count_nonzero(m.bias.grad[1]) == 0
    assert torch.count_nonzero(m.weight.grad[2]) > 0
    with pytest.raises(IndexError, match="outside"):
        m(x, torch.full((2, 3), 4))


def test_grow_keeps_old_rows_and_adds_fresh_ones():
    torch.manual_seed(0)
    m = ContextLinear(5, 3, n_rows=2)
    old = m.weight.detach().clone()
    m.grow(4)
    assert m.weight.shape == (4, 5, 3) and m.bias.shape == (4, 3)
    assert torch.equal(m.weight[:2], old)
    assert not torch.allclose(m.weight[2], m.weight[3])
    m.grow(3)  # never shrinks
    assert m.n_rows == 4


def test_session_readin_model_depends_on_the_row():
    cfg = tiny_config(readin="session", n_readins=3)
    model = build(cfg)
    counts, um, coords, sm = tiny_batch(cfg)
    a = model.velocity(counts, um, coords, sm, readin=torch.zeros(3, 2, dtype=torch.long))
    b = model.velocity(counts, um, coords, sm, readin=torch.full((3, 2), 2))
    assert not torch.allclose(a, b)
    loss = model.pretrain_loss(counts, um, coords, sm, generator=torch.Generator(),
                               readin=torch.ones(3, 2, dtype=torch.long))
    loss["loss"].backward()
    assert torch.count_nonzero(model.readout.weight.grad[1]) > 0
    assert torch.count_nonzero(model.readout.weight.grad[0]) == 0
    with pytest.raises(RpntError, match="readin"):
        tiny_config(readin="shared", n_readins=2)


def test_vocab_readins_extend_without_renumbering():
    a = make_session("sub-C_ses-CO-20131003", seed=1)
    b = make_session("sub-C_ses-CO-20131004", seed=2)
    v1 = Vocab.from_sessions([a])
    v2 = Vocab.from_sessions([b], base=v1)
    assert v2.readins[:len(v1.readins)] == v1.readins
    assert len(v2.readins) == len(a.sites) + len(b.sites)
    assert Vocab.from_dict(v2.to_dict()) == v2
    sw = SessionWindows(b, v2, (), 16, 10)
    assert list(sw.readin) == [v2.readins.index(readin_key(b, s)) for s in b.sites]
    batch = sw.make_batch(sw.starts[:2], np.repeat(sw.choose_units(np.random.default_rng(0), 1),
                                                   2, axis=0), n_sites=3)
    assert batch["readin"].shape == (2, 3) and batch["readin"][0, :2].tolist() == list(sw.readin)


def test_finetuned_session_decoder_grows_saves_and_refuses_strangers(tmp_path):
    from rpnt.decoders.rpnt_decoder import RPNTDecoder

    pre_s = make_session("sub-C_ses-CO-20131003", seed=1)
    target = make_session("sub-C_ses-CO-20131004", seed=2)
    stranger = make_session("sub-C_ses-CO-20131005", seed=3)
    cfg = tiny_config(readin="session", n_units=16, window=10, coords=("subject",))
    dec = RPNTDecoder.build(cfg, Vocab.from_sessions([pre_s]))
    assert dec.config.n_readins == len(pre_s.sites)
    first = dec.model.encoder.embed.weight.detach().clone()
    dec.set_vocab(Vocab.from_sessions([target], base=dec.vocab))
    assert dec.config.n_readins == 2 * len(pre_s.sites)
    assert dec.hparams["model"]["n_readins"] == dec.config.n_readins
    assert torch.equal(dec.model.encoder.embed.weight[:len(pre_s.sites)], first)
    save_decoder(dec, tmp_path / "d")
    back = load_decoder(tmp_path / "d")
    pred = dec.predict_windows(target, np.array([0, 5]), 10)
    assert np.array_equal(pred, back.predict_windows(target, np.array([0, 5]), 10))
    with pytest.raises(RpntError, match="finetune it on this session"):
        back.predict_windows(stranger, np.array([0]), 10)


def test_session_readin_pretraining_keeps_each_slot_on_its_unit():
    """With a per-session read-in, slot i of a session must always hold the same unit."""
    from rpnt.model import RPNTConfig
    from rpnt.train.config import PretrainConfig, TrainConfig
    from rpnt.train.pretrain import pretrain

    # 20 units per site > 8 slots: random subsets would move units between slots
    sessions = [make_session(f"sub-C_ses-CO-2013100{i}", units_per_site=20, seed=i)
                for i in (1, 2)]
    seen: dict[str, set] = {}

    def rec(session, bins, units):
        seen.setdefault(session.session, set()).add(units[0].tobytes())
        assert (units == units[:1]).all()

    for readin, n_choices in (("session", 1), ("shared", None)):
        seen.clear()
        mcfg = RPNTConfig.preset("tiny", n_units=8, window=20, readin=readin)
        pcfg = PretrainConfig(train=TrainConfig(steps=6, batch_size=4, eval_every=6),
                              subsets=1, val_windows=4)
        if readin == "shared":
            with pytest.raises(AssertionError):
                pretrain(sessions, mcfg, pcfg, 0, None, None, observer=rec)
            continue
        dec, _ = pretrain(sessions, mcfg, pcfg, 0, None, None, observer=rec)
        assert all(len(v) == n_choices for v in seen.values()) and len(seen) == 2
        assert dec.config.n_readins == sum(len(s.sites) for s in sessions)
