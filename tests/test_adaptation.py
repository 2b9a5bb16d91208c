"""Adapting a pretrained RPNT to a new session: the label-free stage reads no label and no
valid or test bin; each mode trains what it says; joint pretraining and the probe."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from train_helpers import make_session

from rpnt.data.budget import budget_bins
from rpnt.data.session import SPLIT_CODES
from rpnt.scoring.stitch import scored_mask
from rpnt.train.config import FinetuneConfig, PretrainConfig
from rpnt.train.finetune import finetune, labelfree_stage, start_decoder
from rpnt.train.pretrain import pretrain
from rpnt.train.probe import budget_probe_r2, probe_report, target_probe_report
from rpnt.train.stages import fit_stages
from rpnt.train.trainer import TrainConfig
from tests.model_helpers import tiny_config

torch.set_num_threads(1)

FAST = TrainConfig(steps=6, batch_size=4, warmup_steps=1, eval_every=100, checkpoint_every=0)
CFG = tiny_config(n_units=16, window=20)


@pytest.fixture(scope="module")
def pretrained():
    sources = [make_session(f"sub-C_ses-CO-2014010{i}", seed=i) for i in (1, 2)]
    dec, res = pretrain(sources, CFG, PretrainConfig(train=FAST, val_windows=4), 0, None, None,
                        objective="joint")
    return dec, res, sources


class Untouchable:
    """Stands in for an array nobody may read: any use raises."""

    def __getattr__(self, name):
        raise AssertionError(f"read of a forbidden array ({name})")

    def __getitem__(self, key):
        raise AssertionError("read of a forbidden array")

    def __array__(self, *args, **kwargs):
        raise AssertionError("read of a forbidden array")


def test_labelfree_stage_reads_no_label_and_no_valid_or_test_bin(pretrained):
    init = pretrained[0]
    target = make_session("sub-C_ses-CO-20161013", seed=7)
    train_split = target.split_mask("train")
    # Every count of a bin outside the training split is NaN (a window reaching one would
    # make the loss NaN and stop training), and velocity cannot be read at all.
    counts = target.spike_counts.astype(np.float32)
    counts[~train_split] = np.nan
    assert (target.split != SPLIT_CODES["train"]).sum() > 0
    poisoned = dataclasses.replace(target, spike_counts=counts, velocity=Untouchable())
    decoder = start_decoder(poisoned, "labelfree", 0, None, init)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    seen = []
    stage = labelfree_stage(decoder, poisoned, FinetuneConfig(train=FAST, labelfree_steps=6),
                            0, observer=lambda s, bins, units: seen.append(bins))
    result = fit_stages(decoder, [stage], None, None)
    assert result.steps_done == 6 and np.isfinite(result.final_loss)
    bins = np.concatenate([b.ravel() for b in seen])
    assert train_split[bins].all()  # every window inside the training split
    model = decoder.model
    learned = {id(p) for p in [*model.readin_parameters(), *model.readout_parameters()]}
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[f"model.{name}"])
        assert changed == (id(p) in learned), name  # read-in/read-out only
    for k, v in init.state_dict().items():  # the pretrained decoder itself is untouched
        assert torch.equal(v, pretrained[0].state_dict()[k])


def test_modes_train_what_they_say(pretrained):
    init = pretrained[0]
    target = make_session("sub-C_ses-CO-20161013", seed=7)
    fcfg = FinetuneConfig(train=dataclasses.replace(FAST, steps=8), labelfree_steps=3,
                          stage1_fraction=0.5)
    groups = {}
    for mode in ("frozen", "full", "staged", "labelfree"):
        dec, res, _ = finetune(target, mode, fcfg, 0, init=init, selection="none")
        start = start_decoder(target, mode, 0, None, init)  # same seeded read-in rows
        m, s = dec.model, start.model
        moved = {g: any(not torch.equal(a, b) for a, b in zip(
            getattr(m, f"{g}_parameters")(), getattr(s, f"{g}_parameters")(), strict=True))
            for g in ("core", "readin", "head")}
        groups[mode] = moved
        stages = {r.get("stage") for r in res.history}
        assert res.steps_done == (11 if mode == "labelfree" else 8), mode
        assert stages == ({None} if mode in ("frozen", "full") else
                          {"readin", "all"} if mode == "staged" else {"labelfree", "decode"})
    assert groups["frozen"] == {"core": False, "readin": True, "head": True}
    assert groups["full"] == {"core": True, "readin": True, "head": True}
    assert groups["staged"] == {"core": True, "readin": True, "head": True}
    assert groups["labelfree"] == {"core": False, "readin": True, "head": True}


def test_staged_freezes_the_core_first():
    """Stage 1 of staged cannot move the core: stop after it (stage1_fraction of the
    steps) and compare."""
    from rpnt.train.finetune import _decode_stages

    target = make_session("sub-C_ses-CO-20161013", seed=7)
    init = start_decoder(target, "scratch", 0, CFG, None)
    dec = start_decoder(target, "staged", 0, None, init)
    fcfg = FinetuneConfig(train=FAST, stage1_fraction=0.5, staged_lr_scale=0.1)
    stages = _decode_stages(dec, "staged", fcfg, None, FAST, None)
    assert [s.name for s in stages] == ["readin", "all"]
    assert [s.cfg.steps for s in stages] == [3, 3]
    core = {id(p) for p in dec.model.core_parameters()}
    assert {id(p) for p in stages[0].frozen} == core
    scales = {id(p): g.get("lr_scale", 1.0) for g in stages[1].params for p in g["params"]}
    assert all(scales[i] == 0.1 for i in core)
    assert all(v == 1.0 for i, v in scales.items() if i not in core)


def test_joint_pretraining_learns_velocity_and_the_probe_reports_it(pretrained):
    dec, res, sources = pretrained
    assert all("velocity" in r for r in res.history if "loss" in r)
    report = probe_report(dec, sources, 1, 0)
    row = report["sessions"][0]
    assert set(row) == {"session", "pretrained", "random", "counts"}
    assert row["session"] == sources[0].session
    for k in ("pretrained", "random", "counts"):
        assert np.isfinite(report[k]) and report[k] <= 1
    # counts of velocity-tuned units carry velocity: the raw-count probe is well above 0
    assert report["counts"] > 0.2
    assert probe_report(dec, sources, 0, 0) == {"sessions": []}


def test_target_probe_reads_only_the_budget_trials_and_scores_the_test_trials(pretrained):
    dec = pretrained[0]
    target = make_session("sub-C_ses-CO-20161013", seed=7)
    budget = budget_bins(target, 5, 0, CFG.window)
    assert budget.trials.size == 5
    report = target_probe_report(dec, target, budget, 0)
    assert report["session"] == target.session and report["budget"] == "5"
    for k in ("pretrained", "random", "counts"):
        assert np.isfinite(report[k]) and report[k] <= 1
    assert report["counts"] > 0  # 5 trials of velocity-tuned counts carry velocity
    # every label outside the budget and the test bins replaced by noise: nothing changes
    test = scored_mask(target, "test")
    keep = budget.bins | test
    noise = np.random.default_rng(3).normal(0, 50, target.velocity.shape)
    poisoned = dataclasses.replace(
        target, velocity=np.where(keep[:, None], target.velocity, noise).astype(
            target.velocity.dtype))
    assert not np.allclose(poisoned.velocity, target.velocity)
    assert target_probe_report(dec, poisoned, budget, 0) == report
    # it is scored on the test bins: move their labels and the score moves
    moved = target.velocity.copy()
    moved[test] = moved[test][::-1]
    shuffled = dataclasses.replace(target, velocity=moved)
    x = target.spike_counts.astype(np.float64)
    assert budget_probe_r2(x, shuffled, budget) != pytest.approx(
        budget_probe_r2(x, target, budget))
