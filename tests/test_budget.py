"""Label budgets: the same nested, stratified draw of labelled trials for every decoder,
and no decoder reads a label outside its budget."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from train_helpers import make_session

from rpnt.data.budget import budget_bins, budget_order, eligible_trials, parse_budget
from rpnt.errors import RpntError
from rpnt.ingest.adapters import condition_ids, direction_octant
from rpnt.train.config import FinetuneConfig
from rpnt.train.finetune import finetune
from rpnt.train.peers import train_baseline
from rpnt.train.trainer import TrainConfig
from tests.model_helpers import tiny_config

torch.set_num_threads(1)


def _session(**kw):
    return make_session("sub-C_ses-CO-20161013", n_trials=64, **kw)


def test_budgets_are_nested_stratified_and_seeded():
    s = _session()
    train = set(np.flatnonzero(s.trial_split == "train"))
    order = budget_order(s, seed=3, min_bins=20)
    assert set(order) == train  # every (long enough) training trial is ranked once
    assert len(order) == len(set(order))
    cond = s.trial_condition[:, 0]
    avail = {int(cond[i]) for i in train}
    # every target once before any repeats
    assert len({int(cond[i]) for i in order[:len(avail)]}) == len(avail)
    b5, b10 = budget_bins(s, 5, 3, 20), budget_bins(s, "10", 3, 20)
    assert set(b5.trials) <= set(b10.trials) and b5.trials.size == 5
    assert (b5.bins <= b10.bins).all() and b5.bins.sum() < b10.bins.sum()
    assert not (b10.bins & ~s.split_bins("train")).any()  # labelled training bins only
    assert b5.bins.sum() == 5 * 80  # whole trials of 80 bins
    np.testing.assert_array_equal(budget_bins(s, 5, 3, 20).trials, b5.trials)
    assert list(budget_bins(s, 5, 4, 20).trials) != list(b5.trials)
    every = budget_bins(s, "all", 3, 20)
    np.testing.assert_array_equal(every.bins, s.split_bins("train"))
    assert every.info()["budget"] == "all" and b5.info()["n_trials_used"] == 5


def test_reach_directions_spread_over_octants():
    """Random-target trials carry one condition per reach (its direction octant): the
    first trials spread their reaches over the directions."""
    s = _session()
    rng = np.random.default_rng(0)
    s = dataclasses.replace(s, trial_condition=rng.integers(0, 8, (64, 4)).astype(np.int16))
    order = budget_order(s, seed=0, min_bins=20)
    first = s.trial_condition[order[:4]].ravel()
    assert len(set(first.tolist())) >= 7  # 16 reaches over 8 octants, few repeats
    assert direction_octant(np.array([0.0, np.pi / 2, np.pi, -np.pi / 4, 0.2, np.nan])
                            ).tolist() == [0, 2, 4, 7, 0, -1]
    assert condition_ids(np.array([3.0, np.nan, -1.0])).tolist() == [[3], [-1], [-1]]


def test_old_stores_and_bad_budgets():
    s = dataclasses.replace(_session(), trial_condition=None)  # a store without conditions
    order = budget_order(s, seed=1, min_bins=20)
    np.testing.assert_array_equal(
        order, np.random.default_rng(1).permutation(eligible_trials(s, 20)))
    with pytest.raises(RpntError, match="exceeds its"):
        budget_bins(s, 1000, 0, 20)
    with pytest.raises(RpntError, match="holds 200 consecutive"):
        budget_bins(s, 5, 0, 200)  # trials are 80 bins long
    for bad in ("0", "-3", "five", "2.5"):
        with pytest.raises(RpntError, match="positive number"):
            parse_budget(bad)
    assert parse_budget("all") is None and parse_budget(7) == 7


def _poisoned(s, budget):
    """The session with every velocity outside the budget's bins replaced by huge values."""
    vel = s.velocity.copy()
    vel[~budget.bins] = 1e6
    return dataclasses.replace(s, velocity=vel)


FAST = TrainConfig(steps=4, batch_size=4, warmup_steps=1, eval_every=100, checkpoint_every=0)


@pytest.mark.parametrize("decoder", ["wiener", "gru", "ndt", "rpnt_scratch", "rpnt_staged"])
def test_no_decoder_reads_a_label_outside_its_budget(decoder):
    """With selection none, labels outside the budget (valid, test, other training
    trials) can be anything: the trained weights do not change."""
    s = _session()
    budget = budget_bins(s, 6, 0, 20)

    def weights(session):
        if decoder.startswith("rpnt"):
            mode = decoder.split("_")[1]
            init = None
            if mode != "scratch":
                from rpnt.data.batches import Vocab
                from rpnt.decoders.rpnt_decoder import RPNTDecoder

                torch.manual_seed(0)
                other = make_session("sub-C_ses-CO-20131003", seed=4)
                init = RPNTDecoder.build(tiny_config(n_units=16, window=20),
                                         Vocab.from_sessions([other]))
            dec, _, info = finetune(session, mode, FinetuneConfig(train=FAST), 0,
                                    model_cfg=tiny_config(n_units=16, window=20), init=init,
                                    budget=budget, selection="none")
            assert info["n_trials_used"] == 6
        else:
            section = {"lags": 3} if decoder == "wiener" else {
                "window_bins": 20, "train": dataclasses.asdict(FAST)}
            dec, _ = train_baseline(decoder, session, section, 0, budget=budget,
                                    selection="none")
        return {k: v.clone() for k, v in dec.state_dict().items()}

    clean, poisoned = weights(s), weights(_poisoned(s, budget))
    assert clean.keys() == poisoned.keys()
    for k in clean:
        assert torch.equal(clean[k], poisoned[k]), k
