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


class _Built(Exception):
    """Raised by the spy once a job has built its config part: the job stops there."""


def _spy(monkeypatch, module, cls_name):
    """Make ``module``'s part class record the part the job builds, then stop the job."""
    built = []
    real = getattr(module, cls_name)

    class Spy(real):
        @classmethod
        def of(cls, *args, **kwargs):
            built.append(real.of(*args, **kwargs))
            raise _Built

    monkeypatch.setattr(module, cls_name, Spy)
    return built


def test_each_job_reads_the_part_the_workflow_hashes(tmp_path, monkeypatch):
    """A job started with the flags the workflow gives it (rules' shell lines) builds the
    very part whose digest is its params, for every pretraining and row of a plan with
    variants, budgets and all modes: what a job reads is declared once."""
    from rpnt.cli import main
    from rpnt.jobs import baseline, finetune, pretrain

    cfg = _cfg(models=["gru", "wiener", "rpnt_scratch", "rpnt_ssl_labelfree",
                       "rpnt_joint_staged", "rope_full", "rope_scratch"],
               variants={k: VARIANTS[k] for k in ("rope_full", "rope_scratch")},
               budgets=[4, "all"], labels={"selection": "none"})
    path = tmp_path / "resolved.yaml"
    W.write_resolved_config(cfg, path)
    plan = _plan(cfg)
    spies = {m: _spy(monkeypatch, mod, c) for m, mod, c in (
        ("pretrain", pretrain, "PretrainPart"), ("finetune", finetune, "FinetunePart"),
        ("baseline", baseline, "BaselinePart"))}
    common = ["--config", str(path), "--out", str(tmp_path / "out"), "--seed", "0"]
    checked = 0
    for scenario, key, _seed in plan.pretrain_runs():
        argv = ["pretrain", *common, "--manifest", "m.tsv", "--scenario", scenario,
                *W.pretrain_flags(cfg, key).split()]
        with pytest.raises(_Built):
            main([*argv, "--verbose"])
        assert spies["pretrain"].pop() == W.job_part(cfg, "pretrain", scenario=scenario,
                                                      pretraining=key)
        checked += 1
    for run in plan.runs():
        wc = {"scenario": run.scenario, "budget": run.budget}
        where = ["--store", "s.zarr", "--scenario", run.scenario, "--budget", run.budget]
        if run.model in W.BASELINES:
            argv, rule = ["baseline", *common, *where, "--model", run.model], "baseline"
            wc["baseline"] = run.model
        else:
            flags = W.finetune_flags(cfg, run.model, "init_dir").split()
            argv, rule = ["finetune", *common, *where, *flags], "finetune"
            wc["model"] = run.model
        with pytest.raises(_Built):
            main([*argv, "--verbose"])
        assert spies[rule].pop() == W.job_part(cfg, rule, **wc), (rule, wc)
        checked += 1
    assert checked == len(plan.pretrain_runs()) + len(plan.runs())


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
