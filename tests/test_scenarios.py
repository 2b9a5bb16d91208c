"""Scenarios: session tables, selectors, and the no-leakage guarantee of pretraining."""

import numpy as np
import pytest
import torch
from train_helpers import SESSION_IDS, make_collection, make_session

from rpnt.data.scenarios import plan_sessions, resolve_scenario
from rpnt.data.session import SPLIT_CODES
from rpnt.errors import RpntError
from rpnt.train.config import PretrainConfig
from rpnt.train.pretrain import check_corpus, pretrain, pretraining_sessions
from rpnt.train.trainer import TrainConfig

torch.set_num_threads(1)

SCENARIOS = {
    "cross_session": {"target": {"subject": ["C"], "date_from": "2016-10-01"}},
    "cross_subject": {"target": {"subject": ["T"]}},
    "cross_task": {"target": {"subject": ["M"], "task": ["random_target"]}},
    "cross_site": {"target": {"subject": ["M"], "task": ["center_out"],
                              "date_from": "2014-03-01", "area": ["PMd"]},
                   "holdout": {"area": ["PMd"]}},
}


def test_plan_sessions_parses_ids():
    t = plan_sessions(["sub-C_ses-CO-20160909", "sub-T_ses-RT-20130820"], dataset="d")
    assert t.to_dict("records") == [
        {"dataset": "d", "session": "sub-C_ses-CO-20160909", "subject": "C",
         "task": "center_out", "date": "2016-09-09"},
        {"dataset": "d", "session": "sub-T_ses-RT-20130820", "subject": "T",
         "task": "random_target", "date": "2013-08-20"}]
    with pytest.raises(RpntError, match="does not follow"):
        plan_sessions(["monkey_C_day1"])


def test_resolve_scenarios():
    table = plan_sessions(SESSION_IDS)
    r = resolve_scenario(table, SCENARIOS["cross_session"], "cross_session")
    assert r.target_sessions == ["sub-C_ses-CO-20161013", "sub-C_ses-CO-20161021"]
    assert set(r.pretrain_sessions) == set(SESSION_IDS) - set(r.target_sessions)
    r = resolve_scenario(table, SCENARIOS["cross_subject"], "x")
    assert all(not s.startswith("sub-T") for s in r.pretrain_sessions)
    r = resolve_scenario(table, SCENARIOS["cross_task"], "x")
    assert r.target_sessions == ["sub-M_ses-RT-20140211"]
    assert "sub-M_ses-RT-20140211" not in r.pretrain_sessions
    # cross-site: only unit-level holdout; the target session is still kept out, and
    # the PMd filter excludes on pretraining and selects on the target
    r = resolve_scenario(table, SCENARIOS["cross_site"], "x")
    assert r.target_sessions == ["sub-M_ses-CO-20140305"]
    assert len(r.pretrain_sessions) == len(SESSION_IDS) - 1
    assert r.pretrain_unit_filter.exclude and r.pretrain_unit_filter.areas == ("PMd",)
    assert not r.target_unit_filter.exclude and r.target_unit_filter.areas == ("PMd",)
    # the looser paper variant adds the target sessions (their training bins only)
    loose = resolve_scenario(table, {**SCENARIOS["cross_subject"],
                                     "pretrain_on_target_train": True}, "x")
    assert set(loose.pretrain_sessions) == set(SESSION_IDS)
    # a holdout wider than the target
    r = resolve_scenario(table, {"target": {"session": "sub-C_ses-CO-20161021"},
                                 "holdout": {"subject": "C", "date_to": "2016-12-31",
                                             "date_from": "2016-01-01"}}, "x")
    assert "sub-C_ses-CO-20161013" not in r.pretrain_sessions


@pytest.mark.parametrize("bad,msg", [
    ({"target": {"subjekt": ["C"]}}, "unknown selector keys"),
    ({"target": {"subject": ["Z"]}}, "matches no session"),
    ({"target": {"area": ["PMd"]}}, "session-level key"),
    ({"target": {"subject": "C"}, "extra": 1}, "unknown keys"),
    ({"target": {"subject": "C", "date_from": "2016-13-45"}}, "not an ISO date"),
])
def test_bad_scenarios(bad, msg):
    with pytest.raises(RpntError, match=msg):
        resolve_scenario(plan_sessions(SESSION_IDS), bad, "bad")


class Recorder:
    """Observer of the batch sampler: every (session, bin, unit) that reaches pretraining."""

    def __init__(self):
        self.bins: dict[str, set] = {}
        self.unit_ids: dict[str, set] = {}

    def __call__(self, session, bins, units):
        self.bins.setdefault(session.session, set()).update(np.unique(bins).tolist())
        real = units[units >= 0]
        self.unit_ids.setdefault(session.session, set()).update(
            session.unit_id[real].tolist())


@pytest.mark.parametrize("name,loose,readin", [
    ("cross_subject", False, "session"), ("cross_session", True, "session"),
    ("cross_site", False, "session"), ("cross_site", False, "shared"),
    ("cross_task", False, "session"), ("cross_task", True, "shared")])
def test_no_leakage_into_pretraining(name, loose, readin):
    """Run real pretraining steps with an instrumented sampler and check what it saw."""
    sessions = make_collection(trial_len=40, units_per_site=6, n_trials=16)
    table = plan_sessions(SESSION_IDS)
    scen_cfg = {**SCENARIOS[name], "pretrain_on_target_train": loose}
    scenario = resolve_scenario(table, scen_cfg, name)
    pre = pretraining_sessions(sessions, scenario)
    rec = Recorder()
    from rpnt.model import RPNTConfig

    mcfg = RPNTConfig.preset("tiny", d_model=16, n_layers=1, n_spatial_layers=1, n_heads=2,
                             n_units=8, window=20, readin=readin)
    pcfg = PretrainConfig(train=TrainConfig(steps=60, batch_size=8, eval_every=30),
                          subsets=2, val_windows=8)
    targets = set(scenario.target_sessions)
    pretrain(pre, mcfg, pcfg, seed=0, ckpt_dir=None, log_dir=None,
             val_sessions=[s.session for s in pre if s.session not in targets], observer=rec)
    seen = set(rec.bins)
    assert seen, "the recorder saw nothing: the test would prove nothing"
    held_subjects = {"cross_subject": {"T"}}.get(name, set())
    for sid in seen:
        s = sessions[sid]
        assert s.subject not in held_subjects
        if sid in targets:
            assert loose, f"{sid} is a target session but reached pretraining"
            bins = np.array(sorted(rec.bins[sid]))
            # only training bins of training trials, never valid/test trials
            assert (s.split[bins] == SPLIT_CODES["train"]).all()
            assert s.trial_bins("train")[bins].all()
            assert not (s.trial_bins("valid") | s.trial_bins("test"))[bins].any()
        if name == "cross_site":
            area = dict(zip(s.unit_id.tolist(), s.unit_area.tolist(), strict=True))
            assert {area[u] for u in rec.unit_ids[sid]} == {"M1"}
    if loose:
        assert targets & seen, "loose variant: target training bins should be used"
    else:
        assert not targets & seen
    if name == "cross_task" and not loose:
        # the held-out task of subject M never reaches pretraining
        assert {sessions[s].task for s in seen if sessions[s].subject == "M"} == {"center_out"}
    if name == "cross_site":
        # the PMd-only subject has nothing left and is skipped
        assert not any(s.startswith("sub-T") for s in seen)


# A second dataset in the corpus: another lab's monkey J (both tasks), and a session of T,
# the cross-subject target, that the held-out rule must keep out wherever it comes from.
SECOND = ("sub-J_ses-CO-20150101", "sub-J_ses-RT-20150102", "sub-T_ses-CO-20150103")


@pytest.mark.parametrize("name", ["cross_subject", "cross_task"])
def test_no_leakage_from_a_corpus_across_datasets(name):
    """The scenario's rules apply to every session of a corpus of two datasets."""
    import dataclasses

    import pandas as pd

    from rpnt.model import RPNTConfig

    first = make_collection(trial_len=40, units_per_site=6, n_trials=16)
    second = {sid: make_session(sid, seed=200 + i, trial_len=40, units_per_site=6,
                                n_trials=16, dataset="second")
              for i, sid in enumerate(SECOND)}
    sessions = {**first, **second}
    table = pd.concat([plan_sessions(SESSION_IDS, "first"), plan_sessions(SECOND, "second")],
                      ignore_index=True)
    scenario = resolve_scenario(table, SCENARIOS[name], name)
    assert "sub-J_ses-CO-20150101" in scenario.pretrain_sessions
    pre = pretraining_sessions(sessions, scenario)
    rec = Recorder()
    mcfg = RPNTConfig.preset("tiny", d_model=16, n_layers=1, n_spatial_layers=1, n_heads=2,
                             n_units=8, window=20)
    pcfg = PretrainConfig(train=TrainConfig(steps=40, batch_size=8, eval_every=40),
                          subsets=2, val_windows=8)
    dec, _ = pretrain(pre, mcfg, pcfg, seed=0, ckpt_dir=None, log_dir=None, observer=rec)
    seen = set(rec.bins)
    # the corpus is used: sessions of both datasets reach pretraining ...
    assert {sessions[s].dataset for s in seen} == {"synthetic", "second"}
    # ... each with its own subject, task and date for the context tokens and MRoPE
    assert "J" in dec.vocab.subjects
    assert {c["day"] for c in dec.vocab.contexts.values()} >= {730.0, 731.0}  # 2015-01-0x
    # ... and nothing the scenario holds out, from either dataset
    for sid in seen:
        s = sessions[sid]
        assert sid not in scenario.target_sessions
        if name == "cross_subject":
            assert s.subject != "T", sid
        if name == "cross_task":
            assert not (s.subject == "M" and s.task == "random_target"), sid
    # one bin size per corpus; the joint objective needs the target's velocity axes
    coarse = dataclasses.replace(pre[-1], bin_size_s=0.05)
    with pytest.raises(RpntError, match=r"bin sizes.*ingest every dataset"):
        pretrain([*pre[:-1], coarse], mcfg, pcfg, seed=0, ckpt_dir=None, log_dir=None)
    # a session with other covariates (one velocity axis) joins the joint objective's
    # reconstruction only: its velocity is unknown (NaN) to the velocity loss
    flat = dataclasses.replace(pre[-1], velocity=pre[-1].velocity[:, :1])
    pooled = check_corpus([*pre[:-1], flat], "joint", 2)
    assert pooled[-1].velocity.shape == (flat.n_time, 2)
    assert np.isnan(pooled[-1].velocity).all() and np.isfinite(pooled[0].velocity).any()
    rec2 = Recorder()
    _, res = pretrain([*pre[:-1], flat], mcfg, pcfg, seed=0, ckpt_dir=None, log_dir=None,
                      objective="joint", observer=rec2)
    losses = [r["loss"] for r in res.history if "loss" in r]
    assert flat.session in rec2.bins and losses and np.isfinite(losses).all()
    with pytest.raises(RpntError, match="no session carries them"):
        pretrain([flat], mcfg, pcfg, seed=0, ckpt_dir=None, log_dir=None, objective="joint")


def test_n_pretrain_sessions_draws_nested_subsets_of_the_allowed_sessions():
    table = plan_sessions(SESSION_IDS)
    full = resolve_scenario(table, SCENARIOS["cross_subject"], "cs")
    assert full.limited(0) is full  # no limit
    picks = {}
    for n in (1, 2, 4, 8, 100):
        scen = resolve_scenario(table, {**SCENARIOS["cross_subject"],
                                        "n_pretrain_sessions": n}, "cs")
        picks[n] = scen.limited(seed=3).pretrain_sessions
        assert len(picks[n]) == min(n, len(full.pretrain_sessions))
        assert set(picks[n]) <= set(full.pretrain_sessions)  # the held-out rules still hold
    assert set(picks[1]) < set(picks[2]) < set(picks[4]) < set(picks[8]) == set(picks[100])
    # another seed, another draw (over 4 of 8 sessions, seeds 0..4 cannot all agree)
    draws = {tuple(resolve_scenario(table, {**SCENARIOS["cross_subject"],
                                            "n_pretrain_sessions": 4}, "cs")
                   .limited(seed).pretrain_sessions) for seed in range(5)}
    assert len(draws) > 1
    # the loose variant keeps the target's training trials on top of the n others
    loose = resolve_scenario(table, {**SCENARIOS["cross_session"], "n_pretrain_sessions": 2,
                                     "pretrain_on_target_train": True}, "cs").limited(0)
    assert set(loose.target_sessions) <= set(loose.pretrain_sessions)
    assert len(loose.pretrain_sessions) == 2 + len(loose.target_sessions)
    with pytest.raises(RpntError, match="n_pretrain_sessions"):
        resolve_scenario(table, {**SCENARIOS["cross_subject"], "n_pretrain_sessions": 0}, "x")
