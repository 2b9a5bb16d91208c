"""The Snakemake workflow: lint, config schema, and the DAGs it plans (dry runs, offline)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from rpnt import workflow as W
from rpnt.errors import RpntError
from tests.workflow_helpers import (
    REPO,
    job_counts,
    make_workdir,
    run_snakemake,
    write_config,
)

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIGS = ["config/config.yaml", "config/tiny.yaml",
           "config/benchmarks/perich_miller_2018.yaml", "config/benchmarks/nlb_mc_maze.yaml",
           "config/benchmarks/sim_multisite.yaml"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return make_workdir(tmp_path_factory.mktemp("wf"))


def _n_baselines() -> int:
    return 4 if W.poyo_available() else 3


# ------------------------------------------------------------------ lint and schema


def test_lint_is_clean(workdir):
    proc = run_snakemake(workdir, "--lint")
    assert "Congratulations, your workflow is in a good condition" in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_resolve_with_defaults(path):
    cfg = W.resolve_config(W.load_yaml(REPO / path), source=path)
    for key in ("registry", "seeds", "bin_ms", "models", "model", "pretrain", "finetune",
                "baselines", "figures"):
        assert key in cfg, key
    assert cfg["finetune"]["fewshot_fraction"] > 0
    for scen in cfg["scenarios"].values():
        assert scen["pretrain_on_target_train"] in (True, False)


@pytest.mark.parametrize("bad, where", [
    ({"pretrain": {"stepz": 3}}, "pretrain"),
    ({"scenarios": {"x": {"target": {"subjekt": ["C"]}}}}, "scenarios.x.target"),
    ({"baselines": {"gru": {"hiden": 3}}}, "baselines.gru"),
    ({"model": {"size": "huge"}}, "model.size"),
    ({"resources": {"mem_mb": 1}}, "(top level)"),
])
def test_unknown_or_bad_keys_are_rejected(bad, where):
    cfg = W.merge(W.load_yaml(REPO / "config/tiny.yaml"), bad)
    with pytest.raises(RpntError, match=rf"config: {__import__('re').escape(where)}"):
        W.resolve_config(cfg)


def test_scenario_selecting_nothing_is_an_error():
    cfg = W.resolve_config(W.merge(W.load_yaml(REPO / "config/tiny.yaml"),
                                   {"scenarios": {"none": {"target": {"subject": ["Q"]}}}}))
    sessions = W.planned_sessions(W.dataset_entry(cfg))
    with pytest.raises(RpntError, match=r"none\.target"):
        W.make_plan(cfg, sessions, simulated=True)


def _props(node: dict) -> set[str]:
    if "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].split("/")[-1]]
    return set(node.get("properties", {}))


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_schema_sections_match_the_training_dataclasses():
    """Every key the schema accepts is a field the commands read, and vice versa."""
    from rpnt.baselines import WienerConfig
    from rpnt.decoders.gru import GRUParams
    from rpnt.decoders.ndt import NDTParams
    from rpnt.decoders.poyo import POYOParams
    from rpnt.model.config import RPNTConfig
    from rpnt.train.config import FinetuneConfig, PretrainConfig
    from rpnt.train.trainer import TrainConfig

    top = SCHEMA["properties"]
    train = _fields(TrainConfig) - {"seed"}  # the seed comes from --seed
    assert _props(SCHEMA["$defs"]["train"]) == train
    assert _props(top["model"]) == _fields(RPNTConfig) | {"size"}
    assert _props(top["pretrain"]) == _fields(PretrainConfig)
    assert _props(top["finetune"]) == _fields(FinetuneConfig)
    base = top["baselines"]["properties"]
    assert _props(base["wiener"]) == _fields(WienerConfig)
    assert _props(base["gru"]) == _fields(GRUParams) | {"train"}
    assert _props(base["ndt"]) == _fields(NDTParams) | {"train", "pretrain", "mask_ratio"}
    assert _props(base["poyo"]) == _fields(POYOParams) | {"train"}
    assert _props(SCHEMA["$defs"]["ndt_pretrain"]) == train | {"mask_ratio"}
    # Defaults the schema fills must equal the dataclass defaults.
    assert top["finetune"]["properties"]["fewshot_fraction"]["default"] == \
        FinetuneConfig().fewshot_fraction


def test_resolved_config_is_what_the_commands_read(workdir, tmp_path):
    """rule resolve_config writes the validated config with defaults; the training config
    readers accept it unchanged."""
    from rpnt.train.config import finetune_config, model_config, pretrain_config

    run_snakemake(workdir, "results/tiny/config.resolved.yaml", "--cores", "1",
                  "--configfile", "config/tiny.yaml")
    written = yaml.safe_load((workdir / "results/tiny/config.resolved.yaml").read_text())
    expected = W.resolve_config(W.load_yaml(REPO / "config/tiny.yaml"))
    assert written == expected
    assert written["seeds"] == [0] and written["registry"] == "config/datasets.yaml"
    assert pretrain_config(written).train.steps == 40
    assert finetune_config(written).fewshot_fraction == 0.2
    assert model_config(written).d_model == 32  # the tiny size preset
    # A changed config value makes the resolved config (and all it feeds) out of date.
    proc = run_snakemake(workdir, "-n", "results/tiny/config.resolved.yaml",
                         "--configfile", "config/tiny.yaml", "--config", "bin_ms=25")
    assert "resolve_config" in job_counts(proc.stdout)
    # rpnt config resolve writes the same file outside Snakemake.
    from rpnt.cli import main

    assert main(["config", "resolve", str(REPO / "config/tiny.yaml"),
                 "--out", str(tmp_path / "r.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "r.yaml").read_text()) == expected


# ------------------------------------------------------------------ dry runs


def test_tiny_dry_run_plans_every_stage(workdir):
    proc = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml")
    n = job_counts(proc.stdout)
    targets = 3  # cross_session: C 2016-10-13; cross_subject: T's two sessions
    assert n["simulate"] == 1 and n["ingest"] == 5 and n["manifest"] == 1
    assert n["pretrain"] == 2  # 2 scenarios x 1 seed
    assert n["finetune"] == 4 * targets
    assert n["baseline"] == _n_baselines() * targets
    assert n["evaluate"] == n["finetune"] + n["baseline"]
    assert n["ceiling"] == targets
    assert n["table"] == n["figures"] == 1
    assert "download" not in n  # simulated: nothing to download


def test_default_dry_run(workdir):
    proc = run_snakemake(workdir, "-n")
    n = job_counts(proc.stdout)
    # targets: cross_session 2 (C 2016), cross_subject 3 (T), cross_task 1, cross_site 1;
    # two seeds
    assert n["ingest"] == 12 and n["pretrain"] == 4 * 2
    assert n["finetune"] == 4 * 7 * 2
    assert n["baseline"] == _n_baselines() * 7 * 2
    assert n["ceiling"] == 7


def test_multisite_dry_run(workdir):
    """The multi-site benchmark: three sessions of monkey N, one target per scenario; the
    held-out probe site is the cross-site target."""
    proc = run_snakemake(workdir, "-n", "--configfile", "config/benchmarks/sim_multisite.yaml")
    n = job_counts(proc.stdout)
    assert n["simulate"] == 1 and n["ingest"] == 3 and n["pretrain"] == 3 * 2
    assert n["finetune"] == 4 * 3 * 2
    assert n["baseline"] == _n_baselines() * 3 * 2
    assert "results/sim_multisite/models/cross_site/rpnt_full/sub-N_ses-CO-20160302/seed1" \
        in proc.stdout


def test_paper_dry_run_builds_the_whole_dag_offline(workdir):
    """From the committed asset manifest of DANDI 000688: one download and one ingest per
    asset, the paper's held-out sessions as targets; no network (unroutable API URL)."""
    proc = run_snakemake(workdir, "-n", "--configfile",
                         "config/benchmarks/perich_miller_2018.yaml")
    n = job_counts(proc.stdout)
    assert n["download"] == 111 and n["ingest"] == 111 and n["manifest"] == 1
    assert n["pretrain"] == 3 * 3
    targets = 2 + 6 + 6
    assert n["finetune"] == 4 * targets * 3
    assert n["evaluate"] == (4 + _n_baselines()) * targets * 3
    assert "list_assets" not in n and "simulate" not in n and "ceiling" not in n
    out = proc.stdout
    assert "resources/raw/perich_miller_2018/sub-M/sub-M_ses-RT-20140114_behavior+ecephys.nwb" \
        in out
    for path in ("results/perich_miller_2018/models/C-CO/rpnt_full/sub-C_ses-CO-20161021/seed2",
                 "results/perich_miller_2018/models/T-RT/rpnt_fewshot/sub-T_ses-RT-20130910/"
                 "seed0",
                 "results/perich_miller_2018/pretrain/T-CO/seed1"):
        assert path in out, path
    # Held-out sessions are targets, not pretraining data of their own scenario.
    assert "models/T-CO/rpnt_full/sub-T_ses-RT-20130820" not in out


def test_dataset_without_manifest_is_listed_by_a_checkpoint(workdir):
    proc = run_snakemake(workdir, "-n", "--configfile", "config/benchmarks/nlb_mc_maze.yaml")
    n = job_counts(proc.stdout)
    assert n["list_assets"] == 1
    assert "download" not in n  # planned once the checkpoint has listed the assets
    assert "resources/assets/nlb_mc_maze.tsv" in proc.stdout


def test_adding_a_dataset_is_one_registry_entry(workdir):
    """The worked example of docs/workflow.md: a folder of NWB files becomes a dataset
    with one registry entry; the workflow plans its ingest and scenario jobs."""
    folder = workdir / "data" / "my_lab"
    for sid in ("sub-A_ses-CO-20200101", "sub-A_ses-CO-20200102", "sub-B_ses-RT-20200105"):
        subject = sid.split("_")[0]
        (folder / subject).mkdir(parents=True, exist_ok=True)
        (folder / subject / f"{sid}_behavior+ecephys.nwb").write_bytes(b"")
    registry = yaml.safe_load((workdir / "config/datasets.yaml").read_text())
    registry["datasets"].append({
        "name": "my_lab", "description": "our own recordings",
        "source": {"type": "local", "folder": "../data/my_lab"}, "adapter": "perich_miller"})
    (workdir / "config/datasets.yaml").write_text(yaml.safe_dump(registry, sort_keys=False))
    write_config(workdir, "my_lab", "config/tiny.yaml", benchmark="my_lab", dataset="my_lab",
                 ceiling=False,
                 scenarios={"new_subject": {"target": {"subject": ["B"]}}})
    proc = run_snakemake(workdir, "-n", "--configfile", "config/my_lab.yaml")
    n = job_counts(proc.stdout)
    assert n["ingest"] == 3 and n["pretrain"] == 1 and n["finetune"] == 4
    assert "data/my_lab/sub-B/sub-B_ses-RT-20200105_behavior+ecephys.nwb" in proc.stdout
    assert "simulate" not in n and "download" not in n


def test_unknown_config_key_stops_snakemake(workdir):
    proc = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml",
                         "--config", "epochs=3", check=False)
    assert proc.returncode != 0
    assert "epochs" in proc.stdout + proc.stderr


def test_slurm_profile_declares_training_resources(workdir):
    """`--profile slurm` parses; GPU and memory land on the training rules, and runtime
    and memory grow with the attempt (retries after a time or memory limit)."""
    prof = yaml.safe_load((REPO / "slurm/config.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["retries"] >= 1
    for rule in ("pretrain", "finetune"):
        res = prof["set-resources"][rule]
        assert res["gpu"] == 1 and res["cpus_per_gpu"] >= 1
        assert "attempt" in str(res["runtime"]) and "attempt" in str(res["mem_mb"])
        assert eval(str(res["runtime"]), {"attempt": 2}) == 2 * eval(str(res["runtime"]),
                                                                      {"attempt": 1})
    text = (REPO / "slurm/config.yaml").read_text()
    assert "slurm_partition:" not in text.replace("`slurm_partition:`", "").split(
        "executor:")[1]  # no site's partition or account is hard-coded
    assert "slurm_account:" not in text.split("executor:")[1]
    proc = run_snakemake(workdir, "-n", "--profile", "slurm", "--configfile",
                         "config/tiny.yaml")
    blocks = proc.stdout.split("\nrule ")
    pre = next(b for b in blocks if b.startswith("pretrain:"))
    assert "gpu=1" in pre and "mem_mb=32000" in pre and "runtime=240" in pre
    ing = next(b for b in blocks if b.startswith("ingest:"))
    assert "gpu=" not in ing
