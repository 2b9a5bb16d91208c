"""Planning of rows, label budgets and row variants (no Snakemake run): which jobs exist,
which pretraining each row starts from, and which config part each job reads."""

from __future__ import annotations

import pytest

from rpnt import workflow as W
from rpnt.errors import RpntError
from rpnt.rows import Pretraining
from tests.workflow_helpers import REPO


def _cfg(**changes):
    """The tiny config with ``changes`` merged in (its model_budgets dropped: they name
    rows the changed models may lack)."""
    base = W.load_yaml(REPO / "config/tiny.yaml")
    base.pop("model_budgets", None)
    return W.resolve_config(W.merge(base, changes))


def _plan(cfg):
    return W.make_plan(cfg, W.planned_sessions(W.dataset_entry(cfg)), simulated=True)


VARIANTS = {
    "rope_full": {"row": "rpnt_ssl_full", "model": {"pos_encoding": "rope_time"}},
    "rope_frozen": {"row": "rpnt_ssl_frozen", "model": {"pos_encoding": "rope_time"}},
    "rope_joint": {"row": "rpnt_joint_full", "model": {"pos_encoding": "rope_time"}},
    "same_full": {"row": "rpnt_ssl_full", "model": {}},
    "rope_scratch": {"row": "rpnt_scratch", "model": {"pos_encoding": "rope_time"}},
}


def test_rows_budgets_and_shared_pretrainings():
    cfg = _cfg(models=["gru", "rpnt_scratch", "rpnt_ssl_full", "rpnt_ssl_frozen",
                       "rpnt_joint_full", *VARIANTS],
               variants=VARIANTS, budgets=[4, "all"], model_budgets={"gru": ["all"]})
    plan = _plan(cfg)
    rows = plan.rows
    assert (rows["rpnt_ssl_full"].mode, rows["rpnt_ssl_full"].pretraining.name) == ("full",
                                                                                   "ssl")
    assert rows["rpnt_scratch"].pretraining is None
    # one pretraining per objective and distinct model settings, named after the first
    # variant (config order) with those settings
    assert rows["rope_full"].pretraining == rows["rope_frozen"].pretraining
    assert rows["rope_full"].pretraining.name == "ssl-rope_full"
    assert rows["rope_joint"].pretraining.name == "joint-rope_full"
    assert rows["same_full"].pretraining.name == "ssl"  # no override: the base pretraining
    assert rows["rope_scratch"].pretraining is None and rows["rope_scratch"].variant
    assert W.pretrainings(cfg)["joint-rope_full"] == Pretraining("joint", "rope_full")
    keys = {k for _, k, _ in plan.pretrain_runs()}
    assert keys == {"ssl", "joint", "ssl-rope_full", "joint-rope_full"}
    assert len(plan.pretrain_runs()) == 4 * 2  # x 2 scenarios, 1 seed
    runs = plan.runs()
    assert {r.budget for r in runs if r.model == "gru"} == {"all"}
    assert {r.budget for r in runs if r.model == "rpnt_scratch"} == {"4", "all"}
    assert len(runs) == 3 * (1 + 2 * (len(cfg["models"]) - 1))  # 3 targets


def test_rule_digests_follow_budgets_modes_and_variants():
    cfg = _cfg(models=["gru", "rpnt_scratch", "rpnt_ssl_labelfree", "rpnt_joint_staged",
                       "rope_full"],
               variants={"rope_full": VARIANTS["rope_full"]})
    job = {"scenario": "cross_session", "seed": "0"}

    def digest(c, rule, **wc):
        return W.rule_digest(c, rule, **{**job, **wc})

    def changed(change, rule, **wc):
        return digest(W.merge(cfg, change), rule, **wc) != digest(cfg, rule, **wc)

    ft = {"model": "rpnt_joint_staged", "budget": "4"}
    assert changed({"finetune": {"stage1_fraction": 0.3}}, "finetune", **ft)
    assert not changed({"finetune": {"stage1_fraction": 0.3}}, "finetune",
                       model="rpnt_ssl_labelfree", budget="4")
    assert changed({"finetune": {"labelfree_steps": 7}}, "finetune",
                   model="rpnt_ssl_labelfree", budget="4")
    # the labelled trials of a numeric budget depend on min_bins; budget all does not
    assert changed({"labels": {"min_bins": 40}}, "finetune", **ft)
    assert not changed({"labels": {"min_bins": 40}}, "finetune", model="rpnt_joint_staged",
                       budget="all")
    assert changed({"labels": {"min_bins": 40}}, "baseline", baseline="gru", budget="4")
    # budgets decide which jobs exist; a job's own part does not hold them
    assert not changed({"budgets": [4, 8, "all"]}, "finetune", **ft)
    assert changed({"budgets": [4, 8, "all"]}, "table")
    # a variant's model overrides reach its pretraining and finetuning, not the base's
    change = {"variants": {"rope_full": {"model": {"pos_encoding": "none"}}}}
    assert changed(change, "pretrain", pretraining="ssl-rope_full")
    assert not changed(change, "pretrain", pretraining="ssl")
    assert changed(change, "finetune", model="rope_full", budget="all")
    assert not changed(change, "finetune", model="rpnt_scratch", budget="all")
    assert changed({"pretrain": {"velocity_weight": 2.0}}, "pretrain", pretraining="joint")


@pytest.mark.parametrize("change, match", [
    ({"models": ["rpnt_bogus"]}, "unknown table row 'rpnt_bogus'"),
    ({"budgets": [4, 4]}, "budgets: .* has duplicates"),
    ({"labels": {"selection": "valid"}}, "labels.selection: valid would let"),
    ({"variants": {"v": {"row": "gru", "model": {}}}, "models": ["v"]}, "is a peer"),
    ({"variants": {"v": {"row": "rpnt_ssl_full", "model": {"d_modle": 8}}},
      "models": ["v"]}, r"variants\.v\.model"),
    ({"variants": {"rpnt_scratch": {"row": "rpnt_ssl_full", "model": {}}}},
     "name of a built-in row"),
    ({"model_budgets": {"gru": [7]}}, r"model_budgets\.gru: \['7'\] not in budgets"),
    ({"model_scenarios": {"gru": ["nowhere"]}}, r"model_scenarios\.gru: \['nowhere'\] not in"),
    ({"model_scenarios": {"rpnt_ssl_full": ["cross_session"]}},
     r"model_scenarios\.rpnt_ssl_full: not one of"),
])
def test_bad_rows_budgets_and_variants(change, match):
    with pytest.raises(RpntError, match=match):
        _cfg(**change)


def test_rows_trained_in_some_scenarios_only():
    """model_scenarios: rows that do not depend on the pretraining corpus run once."""
    cfg = _cfg(models=["gru", "rpnt_scratch", "rpnt_joint_full"],
               model_scenarios={"gru": ["cross_session"], "rpnt_scratch": ["cross_session"]})
    plan = _plan(cfg)
    scens = list(cfg["scenarios"])
    assert len(scens) > 1
    runs = plan.runs()
    assert {r.scenario for r in runs if r.model in ("gru", "rpnt_scratch")} == \
        {"cross_session"}
    assert {r.scenario for r in runs if r.model == "rpnt_joint_full"} == set(scens)
    assert {s for s, _, _ in plan.pretrain_runs()} == set(scens)
    only = _plan(_cfg(models=["gru", "rpnt_joint_full"],
                      model_scenarios={"rpnt_joint_full": [scens[0]]}))
    assert {s for s, _, _ in only.pretrain_runs()} == {scens[0]}  # none for the others
