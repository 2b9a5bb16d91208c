"""The Snakemake workflow: lint, config schema, and the DAGs it plans (dry runs, offline)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from rpnt import workflow as W
from rpnt.errors import RpntError
from tests.workflow_helpers import (
    REPO,
    job_counts,
    lint_problems,
    make_workdir,
    offline_env,
    run_snakemake,
    write_config,
)

# Every config the repository ships (a new benchmark config is checked without listing it).
CONFIGS = ["config/config.yaml", "config/tiny.yaml",
           *sorted(str(p.relative_to(REPO)) for p in (REPO / "config/benchmarks").glob("*.yaml"))]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return make_workdir(tmp_path_factory.mktemp("wf"))


def _n_baselines() -> int:
    return 4 if W.poyo_available() else 3


# ------------------------------------------------------------------ lint and schema


def test_lint_is_clean(workdir):
    """No lint but the accepted one (no per-rule conda env: docs/workflow.md)."""
    assert lint_problems(workdir) == []


@pytest.mark.parametrize("path", CONFIGS)
def test_shipped_configs_resolve_with_defaults(path):
    cfg = W.resolve_config(W.load_yaml(REPO / path), source=path)
    for key in ("registry", "seeds", "bin_ms", "models", "model", "pretrain", "finetune",
                "baselines", "figures"):
        assert key in cfg, key
    assert cfg["labels"]["selection"] in ("valid", "none") and cfg["budgets"]
    for m in cfg["models"]:  # every row is a peer, a built-in RPNT row or a variant
        assert m in W.BASELINES or W.rpnt_row(cfg, m).mode
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


def test_resolved_config_is_what_the_commands_read(tmp_path):
    """The workflow writes the validated config with defaults (before its first job, only
    when it changed); the training config readers accept it unchanged; `rpnt config
    resolve` writes the same file outside Snakemake."""
    from rpnt.cli import main
    from rpnt.train.config import finetune_config, model_config, pretrain_config

    expected = W.resolve_config(W.load_yaml(REPO / "config/tiny.yaml"))
    out = tmp_path / "config.resolved.yaml"
    assert W.write_resolved_config(expected, out)
    written = yaml.safe_load(out.read_text())
    assert written == expected
    assert written["seeds"] == [0] and written["registry"] == "config/datasets.yaml"
    assert pretrain_config(written).train.steps == 40
    assert finetune_config(written).labelfree_steps == 10
    assert model_config(written).d_model == 32  # the tiny size preset
    stamp = out.stat().st_mtime_ns
    assert not W.write_resolved_config(expected, out)  # unchanged: not rewritten
    assert out.stat().st_mtime_ns == stamp
    assert W.write_resolved_config(W.merge(expected, {"bin_ms": 25}), out)

    assert main(["config", "resolve", str(REPO / "config/tiny.yaml"),
                 "--out", str(tmp_path / "r.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "r.yaml").read_text()) == expected


# ------------------------------------------------------------------ dry runs


def test_tiny_dry_run_plans_every_stage(workdir):
    proc = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml")
    n = job_counts(proc.stdout)
    targets = 3  # cross_session: C 2016-10-13; cross_subject: T's two sessions
    assert n["simulate"] == 1 and n["ingest"] == 5 and n["manifest"] == 1
    assert n["pretrain"] == 2 * 2  # 2 scenarios x 2 objectives (ssl, joint) x 1 seed
    # every row at all; at 4 trials (model_budgets): gru, rpnt_scratch and the joint rows
    assert n["finetune"] == (5 + 3) * targets  # scratch + 4 pretrained rows; 3 at 4 trials
    assert n["baseline"] == (_n_baselines() + 1) * targets
    assert "evaluate" not in n  # each training job scores the model it trained
    assert n["ceiling"] == 1  # every target session's ceiling in one job
    assert n["table"] == n["figures"] == 1
    assert "download" not in n  # simulated: nothing to download
    jobs = _job_blocks(proc.stdout)
    for rule, model in (("finetune", "rpnt_joint_full"), ("baseline", "gru")):
        (block,) = [b for b in jobs[rule]
                    if f"/{model}/sub-T_ses-CO-20130819/4trials/" in b]
        for kind, ext in (("models", ""), ("metrics", ".json"), ("predictions", ".npz")):
            path = (f"results/tiny/bin20ms/{kind}/cross_subject/{model}/sub-T_ses-CO-20130819/"
                    f"4trials/seed0{ext}")
            assert re.search(rf"output: .*{re.escape(path)}(,|$)", block, re.M), (path, block)
    (staged,) = [b for b in jobs["finetune"]
                 if "/rpnt_joint_staged/sub-T_ses-RT-20130820/alltrials/" in b]
    assert "results/tiny/bin20ms/pretrain/cross_subject/joint/seed0" in staged.split("output:")[0]
    cfg = W.resolve_config(W.load_yaml(REPO / "config/tiny.yaml"))
    assert W.finetune_flags(cfg, "rpnt_joint_staged", "P") == "--mode staged --init P"
    assert W.finetune_flags(cfg, "rpnt_scratch", None) == "--mode scratch"
    assert W.pretrain_flags(cfg, "joint") == "--objective joint"
    (ceiling,) = jobs["ceiling"]
    assert ceiling.count("/ceiling/") == 2 * targets  # its outputs and the --run arguments


def test_default_dry_run(workdir):
    proc = run_snakemake(workdir, "-n")
    n = job_counts(proc.stdout)
    # targets: cross_session 1 (C 2016-10-21), cross_task 1; one seed; budgets 5, 10, all
    # rows: the peers, rpnt_scratch, rpnt_joint_full (one pretraining per scenario)
    runs = 2 * 1 * 3  # target sessions x seeds x budgets
    assert n["ingest"] == 12 and n["pretrain"] == 2 * 1 * 1
    assert n["finetune"] == 2 * runs
    assert n["baseline"] == _n_baselines() * runs
    assert n["ceiling"] == 1
    assert sum(n.values()) == 1 + 12 + 1 + 2 + (2 + _n_baselines()) * runs + 1 + 3
    # cross_session's pretraining sees neither 2016 session of monkey C (its holdout),
    # though only the last one is a target
    from rpnt.data.scenarios import plan_sessions, scenario_from_config

    cfg = W.resolve_config(W.load_yaml(REPO / "config/config.yaml"))
    table = plan_sessions(s["session"] for s in W.planned_sessions(W.dataset_entry(cfg)))
    scen = scenario_from_config(cfg, "cross_session", table)
    assert scen.target_sessions == ["sub-C_ses-CO-20161021"]
    assert len(scen.pretrain_sessions) == 10, scen.pretrain_sessions
    assert not any("C_ses-CO-2016" in s for s in scen.pretrain_sessions)


def test_multisite_dry_run(workdir):
    """The multi-site benchmark: three sessions of monkey N, one target per scenario; the
    held-out probe site is the cross-site target."""
    proc = run_snakemake(workdir, "-n", "--configfile", "config/benchmarks/sim_multisite.yaml")
    n = job_counts(proc.stdout)
    # pretrainings: ssl, joint and one per ablation variant (its own model settings)
    assert n["simulate"] == 1 and n["ingest"] == 3 and n["pretrain"] == 3 * 5 * 2
    assert n["finetune"] == 7 * 3 * 2  # scratch, 3 built-in pretrained rows, 3 variants
    assert n["baseline"] == _n_baselines() * 3 * 2
    for path in ("results/sim_multisite/bin20ms/models/cross_site/rpnt_ssl_full/"
                 "sub-N_ses-CO-20160302/alltrials/seed1",
                 "results/sim_multisite/bin20ms/models/cross_site/rpnt_ssl_full_rope_time/"
                 "sub-N_ses-CO-20160302/alltrials/seed1",
                 "results/sim_multisite/bin20ms/pretrain/cross_site/ssl-rpnt_ssl_full_rope_time/seed1"):
        assert path in proc.stdout, path


@pytest.mark.slow  # > 3 s: a 908-job DAG
def test_paper_dry_run_builds_the_whole_dag_offline(workdir):
    """From the committed asset manifest of DANDI 000688: one download and one ingest per
    asset, the paper's held-out sessions as targets; no network (unroutable API URL)."""
    proc = run_snakemake(workdir, "-n", "--configfile",
                         "config/benchmarks/perich_miller_2018.yaml")
    n = job_counts(proc.stdout)
    assert n["download"] == 111 and n["ingest"] == 111 and n["manifest"] == 1
    assert n["pretrain"] == 3 * 2 * 3  # scenarios x objectives x seeds
    targets = 2 + 6 + 6
    assert n["finetune"] == 4 * targets * 3
    assert n["baseline"] == _n_baselines() * targets * 3
    assert "list_assets" not in n and "simulate" not in n and "ceiling" not in n
    assert "evaluate" not in n  # each training job scores the model it trained
    out = proc.stdout
    assert "resources/raw/perich_miller_2018/sub-M/sub-M_ses-RT-20140114_behavior+ecephys.nwb" \
        in out
    for path in ("results/perich_miller_2018/bin20ms/models/C-CO/rpnt_ssl_full/"
                 "sub-C_ses-CO-20161021/alltrials/seed2",
                 "results/perich_miller_2018/bin20ms/models/T-RT/rpnt_ssl_frozen/"
                 "sub-T_ses-RT-20130910/alltrials/seed0",
                 "results/perich_miller_2018/bin20ms/pretrain/T-CO/ssl/seed1",
                 "results/perich_miller_2018/bin20ms/pretrain/T-CO/joint/seed1"):
        assert path in out, path
    # Held-out sessions are targets, not pretraining data of their own scenario.
    assert "models/T-CO/rpnt_ssl_full/sub-T_ses-RT-20130820" not in out
    # docs/workflow.md states this dry run's job count and its pretrainings
    docs = (REPO / "docs/workflow.md").read_text()
    stated = re.search(r"perich_miller_2018\.yaml +# (\d+) jobs, offline", docs)
    assert stated and int(stated[1]) == sum(n.values()), (stated, sum(n.values()))
    assert f"{n['pretrain']} pretrainings (3 scenarios x 2 objectives x 3 seeds)" in docs


def test_falcon_stand_in_dry_run(workdir):
    """FALCON M2 stand-in: the held-out days are few-shot targets at every budget, the
    last held-in day is decoded within day."""
    proc = run_snakemake(workdir, "-n", "--configfile", "config/benchmarks/falcon_m2_sim.yaml")
    n = job_counts(proc.stdout)
    runs = (2 + 1) * 3  # (held-out + held-in targets) x budgets, one seed
    assert n["simulate"] == 1 and n["ingest"] == 6 and n["pretrain"] == 2 * 2
    assert n["finetune"] == 6 * runs and n["baseline"] == _n_baselines() * runs
    out = proc.stdout
    for path in ("results/falcon_m2_sim/bin20ms/models/held_out/rpnt_joint_staged/"
                 "sub-SimN-held-out-calib_ses-20201124/5trials/seed0",
                 "results/falcon_m2_sim/bin20ms/models/held_in/wiener/"
                 "sub-SimN-held-in-calib_ses-20201028/alltrials/seed0"):
        assert path in out, path
    assert "models/held_out/gru/sub-SimN-held-in-calib" not in out


def test_real_falcon_config_lists_its_dandiset(workdir):
    proc = run_snakemake(workdir, "-n", "--configfile", "config/benchmarks/falcon_m1.yaml")
    n = job_counts(proc.stdout)
    assert n["list_assets"] == 1 and "download" not in n and "simulate" not in n
    assert "resources/assets/falcon_m1.tsv" in proc.stdout


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
    assert n["ingest"] == 3 and n["pretrain"] == 2 and n["finetune"] == 5 + 3
    assert "data/my_lab/sub-B/sub-B_ses-RT-20200105_behavior+ecephys.nwb" in proc.stdout
    assert "simulate" not in n and "download" not in n


def test_unknown_config_key_stops_snakemake(workdir):
    proc = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml",
                         "--config", "epochs=3", check=False)
    assert proc.returncode != 0
    assert "epochs" in proc.stdout + proc.stderr


def _profile(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def _job_blocks(output: str) -> dict[str, list[str]]:
    """Rule -> the dry-run blocks of its jobs (group jobs' members included)."""
    blocks: dict[str, list[str]] = {}
    for block in re.split(r"\n\s*rule ", output)[1:]:
        blocks.setdefault(block.split(":", 1)[0], []).append(block)
    return blocks


@pytest.mark.slow  # > 3 s: two dry runs
def test_slurm_profiles_request_gpus_only_when_asked(workdir):
    """`--profile slurm` (CPU) requests no GPU for any job; `--profile slurm/gpu` is the
    same file plus one GPU for each pretraining and finetuning job (with their GPU
    runtimes), and group jobs as wide as one finetuning (tests/test_workflow_groups.py).
    Runtime and memory grow with the attempt; SLURM is asked for SIGTERM before the time
    limit."""
    cpu, gpu = _profile("slurm/config.yaml"), _profile("slurm/gpu/config.yaml")
    assert cpu["executor"] == "slurm" and cpu["retries"] >= 1
    stripped = yaml.safe_load(yaml.safe_dump(gpu))
    for rule in ("pretrain", "finetune"):
        res = stripped["set-resources"].pop(rule)
        assert res.pop("gpu") == 1 and res.pop("cpus_per_gpu") >= 1
        assert eval(str(res["runtime"]), {"attempt": 2}) == 2 * eval(str(res["runtime"]),
                                                                      {"attempt": 1})
        assert set(res) == {"runtime"}  # host memory: sized by the rule, as on CPU
    # a GPU group runs its finetunings in turn: one at a time fills the group's cores
    assert stripped.pop("cores") == gpu["set-threads"]["finetune"]
    assert stripped["set-threads"].pop("pretrain") <= gpu["cores"]
    stripped["set-threads"]["pretrain"] = cpu["set-threads"]["pretrain"]
    gpu_groups, cpu_groups = stripped.pop("group-components"), cpu.pop("group-components")
    assert [g.split("=")[0] for g in gpu_groups] == [g.split("=")[0] for g in cpu_groups]
    assert cpu.pop("cores") >= max(cpu["set-threads"].values())
    assert stripped == cpu  # otherwise the GPU profile differs by its GPU lines only
    assert not any(g.startswith("pretrain=") for g in cpu_groups)
    assert "pretrain" not in cpu["set-resources"]  # sized by the rule from the config
    extra = cpu["default-resources"]["slurm_extra"]
    assert re.fullmatch(r"'--signal=TERM@\d+'", extra), extra  # no B: the job step gets it
    assert "evaluate" not in cpu["set-resources"]
    for text in ((REPO / "slurm/config.yaml").read_text(),
                 (REPO / "slurm/gpu/config.yaml").read_text()):
        body = text.split("executor:")[1]  # no site's partition or account is hard-coded
        assert "slurm_partition:" not in body and "slurm_account:" not in body

    out = run_snakemake(workdir, "-n", "--profile", "slurm", "--configfile",
                        "config/tiny.yaml").stdout
    assert "gpu" not in out
    pre = _job_blocks(out)["pretrain"][0]
    tiny = W.resolve_config(yaml.safe_load((REPO / "config/tiny.yaml").read_text()),
                            source="config/tiny.yaml")
    size = W.job_size(tiny, "pretrain", sessions=5)  # every store of sim_tiny
    assert f"mem_mb={size.mem_mb}," in pre and f"runtime={size.runtime}," in pre, pre
    assert "--signal=TERM@" in pre
    # small jobs share group jobs; pretraining is never one of them
    assert "Group job" in out and "Group job pretrain" not in out

    out = run_snakemake(workdir, "-n", "--profile", "slurm/gpu", "--configfile",
                        "config/tiny.yaml").stdout
    blocks = _job_blocks(out)
    for rule, jobs in blocks.items():
        for block in jobs:
            resources = block.split("resources:")[1].splitlines()[0]
            assert ("gpu=1" in resources) == (rule in ("pretrain", "finetune")), block


def _without_sbatch(tmp_path: Path) -> str:
    """A PATH with every command of this machine except SLURM's client commands."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    slurm = {"sbatch", "srun", "squeue", "sinfo", "scancel", "sacct", "scontrol", "salloc"}
    python_dirs = [str(Path(sys.executable).parent)]
    for folder in os.environ["PATH"].split(os.pathsep):
        if folder in python_dirs or not Path(folder).is_dir():
            continue
        for exe in Path(folder).iterdir():
            link = bin_dir / exe.name
            if exe.name not in slurm and not link.exists() and os.access(exe, os.X_OK):
                link.symlink_to(exe)
    return os.pathsep.join([*python_dirs, str(bin_dir)])


def test_slurm_profile_without_sbatch_stops_before_submitting(tmp_path):
    wd = make_workdir(tmp_path / "wf")
    env = offline_env(wd, PATH=_without_sbatch(tmp_path))
    assert shutil.which("sbatch", path=env["PATH"]) is None
    proc = run_snakemake(wd, "--profile", "slurm", "--configfile", "config/tiny.yaml",
                         check=False, env=env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "needs `sbatch`" in last and "snakemake --cores N" in last, proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (wd / "results").exists() and not (wd / "resources").exists()
    assert not (wd / ".snakemake" / "slurm_logs").exists()


# ------------------------------------------------------------------ one-line errors


@pytest.mark.parametrize("args, expected", [
    (["--config", "pretrain={stepz: 3}"],
     ["config/tiny.yaml (with --config pretrain): pretrain:", "stepz",
      "allowed: probe_sessions, subsets"]),
    (["--config", "scenarios={x: {target: {subject: [Q]}}}"],
     ["config/tiny.yaml (with --config scenarios): scenarios.x.target: matches no session",
      "subjects: C, T;", "tasks: center_out, random_target;", "5 sessions"]),
    (["--config", "dataset=nope"],
     ["config/tiny.yaml (with --config dataset): dataset 'nope': config/datasets.yaml: no "
      "dataset named 'nope'; known: [", "'sim_tiny'"]),
])
def test_config_errors_are_one_line(workdir, args, expected):
    """Like the CLI: the file, the key and the values that exist; no traceback."""
    proc = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml", *args,
                         check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_rpnt_of_another_checkout_stops_the_workflow(tmp_path):
    """The rpnt command on PATH imports rpnt from another checkout (here: the one the
    tests run from) than the workdir whose Snakefile runs: one line, before any job."""
    workdir = make_workdir(tmp_path / "wf")
    proc = run_snakemake(workdir, "--cores", "1", "--configfile", "config/tiny.yaml",
                         check=False, env=offline_env(workdir, PYTHONPATH=str(REPO)))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"imports rpnt from {REPO / 'rpnt'}, not from this checkout ({workdir})" \
        in lines[0]
    assert f"run `pip install -e .` in {workdir}" in lines[0]
    assert not (workdir / "results").exists()


# ------------------------------------------------------------------ what a rule reads


def test_rule_digests_follow_the_config_each_rule_reads():
    cfg = W.resolve_config(W.load_yaml(REPO / "config/tiny.yaml"))
    jobs = {"pretrain": {"scenario": "cross_session", "pretraining": "ssl", "seed": "0"},
            "finetune": {"scenario": "cross_session", "model": "rpnt_scratch",
                         "budget": "all", "seed": "0"},
            "baseline": {"scenario": "cross_session", "baseline": "gru", "budget": "all",
                         "seed": "0"},
            "table": {}, "figures": {}}

    def changed(change: dict) -> set[str]:
        new = W.merge(cfg, change)
        return {r for r, wc in jobs.items()
                if W.rule_digest(new, r, **wc) != W.rule_digest(cfg, r, **wc)}

    assert changed({"figures": {"example_model": "gru"}}) == {"figures"}
    assert changed({"seeds": [0, 1], "bin_ms": 25, "dataset": "sim_default"}) == set()
    assert changed({"models": ["gru"]}) == {"table", "figures"}
    assert changed({"pretrain": {"train": {"steps": 7}}}) == {"pretrain"}
    assert changed({"model": {"d_model": 48}}) == {"pretrain", "finetune"}
    assert changed({"finetune": {"staged_lr_scale": 0.5}}) == set()  # scratch ignores it
    assert changed({"baselines": {"ndt": {"layers": 2}}}) == set()  # not this job's peer
    assert changed({"baselines": {"gru": {"hidden": 8}}}) == {"baseline"}
    assert changed({"scenarios": {"cross_subject": {"target": {"subject": ["C"]}}}}) == \
        {"table", "figures"}
    assert changed({"scenarios": {"cross_session": {"pretrain_on_target_train": True}}}) \
        == set(jobs)
    assert changed({"pretrain": {"train": {"progress": True}}}) == set()  # a progress bar


def test_outputs_are_keyed_by_bin_size(workdir):
    """Two bin sizes of one benchmark: separate stores and manifests (shared by every
    benchmark of the dataset), and separate models, metrics, tables, logs and benchmark
    files, so that a 25 ms run keeps the 20 ms run's outputs."""
    out = run_snakemake(workdir, "-n", "--configfile", "config/tiny.yaml",
                        "--config", "bin_ms=25").stdout
    assert "resources/stores/sim_tiny/bin25ms/sub-T_ses-CO-20130819.zarr" in out
    assert "resources/manifests/sim_tiny/bin25ms.tsv" in out
    for path in ("results/tiny/bin25ms/models/cross_subject/gru/sub-T_ses-CO-20130819/"
                 "4trials/seed0",
                 "results/tiny/bin25ms/metrics/cross_subject/ceiling/sub-T_ses-CO-20130819.json",
                 "results/tiny/bin25ms/pretrain/cross_subject/joint/seed0",
                 "results/benchmark/tiny/bin25ms/table.md",
                 "logs/tiny/bin25ms/finetune/cross_subject/rpnt_scratch/",
                 "benchmarks/tiny/bin25ms/pretrain/cross_subject/joint/seed0.tsv"):
        assert path in out, path
    assert "bin20ms" not in out
    # every output and log sits under its bin-size level, but the raw NWB files (and the
    # simulator's log) that every bin size is made from
    for line in out.splitlines():
        m = re.match(r"\s+(output|log): (.*)", line)
        if m:
            for path in m[2].split(", "):
                assert "bin25ms" in path or path.startswith(
                    ("resources/raw/sim_tiny/", "logs/simulate/")), line


def test_config_validate_names_the_file_and_line_of_bad_yaml(tmp_path, capsys):
    """A missing file, a folder, and YAML with a tab or an unclosed bracket: one line
    each, naming the file (and the line and column of a syntax error) and the fix."""
    from rpnt.cli import main

    (tmp_path / "tab.yaml").write_text("benchmark: x\n\tdataset: y\n")
    (tmp_path / "open.yaml").write_text("benchmark: x\nmodels: [gru,\n")
    cases = {"missing.yaml": "config file not found; check the path",
             "tab.yaml": "tab.yaml:2:1: not valid YAML (",
             "open.yaml": "open.yaml:3:1: not valid YAML (",
             ".": "is a folder, not a config file"}
    for name, expected in cases.items():
        assert main(["config", "validate", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, (name, err)
        assert str(tmp_path) in err


def test_config_validate_checks_the_dataset_and_resolve_prints(capsys):
    """rpnt config validate refuses an unknown dataset (without --plan too), and resolve
    without --out prints the resolved YAML."""
    from rpnt.cli import main

    cfg = {"benchmark": "x", "dataset": "nope", "registry": str(REPO / "config/datasets.yaml"),
           "seeds": [0], "bin_ms": 20, "models": ["gru"],
           "scenarios": {"a": {"target": {"subject": ["C"]}}}}
    assert main(["config", "validate", "--json", json.dumps(cfg)]) == 2
    assert "no dataset named 'nope'" in capsys.readouterr().err
    assert main(["config", "validate", "--json", json.dumps({**cfg, "dataset": "sim_tiny",
                 "scenarios": {"a": {"target": {"subject": ["Z"]}}}})]) == 2
    assert "has subjects" in capsys.readouterr().err
    assert main(["config", "resolve", str(REPO / "config/tiny.yaml")]) == 0
    assert "benchmark: tiny" in capsys.readouterr().out
