"""SLURM submissions: small jobs share group jobs, requests are sized from the config.

The dry runs go through Snakemake's own command line with the repository's profiles;
the only addition is a print of each group job's request, computed by Snakemake's own
``GroupResources.basic_layered`` exactly as a cluster run computes it before sbatch
(``run_local=False``: the maximum over a group's layers, runtimes summed), so the test
sees what SLURM would be asked for without a cluster.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from rpnt.errors import RpntError
from rpnt.workflow import job_size, train_group
from rpnt.workflow import resources as R
from tests.workflow_helpers import job_counts, make_workdir, offline_env, write_config

#: Snakemake's command line, plus one line per group job with the request of the group
#: (what the SLURM executor turns into sbatch flags).
_SNAKEMAKE_PRINTING_GROUPS = r"""
import json, sys
from snakemake import jobs
from snakemake.resources import GroupResources

shown = jobs.GroupJob.log_info

def log_info(self):
    shown(self)
    res = GroupResources.basic_layered(
        toposorted_jobs=self.toposorted, constraints=self.global_resources,
        run_local=False, additive_resources=["runtime"], sortby=["runtime"])
    print("GROUP-REQUEST " + json.dumps({
        "group": self.groupid, "rules": sorted(j.rule.name for j in self.jobs),
        "resources": {k: v for k, v in res.items() if isinstance(v, (int, str))}}),
        flush=True)

jobs.GroupJob.log_info = log_info
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def dry_run(wd: Path, *args: str) -> tuple[list[dict], dict[str, int], str]:
    """(group requests, rule -> job count, output) of ``snakemake -n ARGS`` in ``wd``."""
    proc = subprocess.run([sys.executable, "-c", _SNAKEMAKE_PRINTING_GROUPS, "-n", *args],
                          cwd=wd, env=offline_env(wd), capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    groups = [json.loads(line.split(" ", 1)[1]) for line in proc.stdout.splitlines()
              if line.startswith("GROUP-REQUEST ")]
    return groups, job_counts(proc.stdout), out


def submissions(groups: list[dict], counts: dict[str, int],
                local: tuple[str, ...] = ("all",)) -> int:
    """sbatch submissions of a dry run: one per group job, one per other non-local job."""
    grouped = sum(len(g["rules"]) for g in groups)
    ungrouped = sum(n for rule, n in counts.items() if rule not in local) - grouped
    return len(groups) + ungrouped


class _Resources(dict):
    __getattr__ = dict.__getitem__


def sbatch_flags(group: dict) -> str:
    """The sbatch flags the SLURM executor plugin builds for a group's request (its own
    functions, as tests/test_workflow_ranks.py does for a pretraining)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    res = _Resources(group["resources"])
    job = SimpleNamespace(resources=res, threads=res["_cores"], name=group["group"])
    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "",
              "partition": "", "workdir": ""}
    return get_submit_command(job, params) + set_gres_string(job)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("groups") / "wf")


def _by_name(groups: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for g in groups:
        out.setdefault(g["group"], []).append(g)
    return out


@pytest.mark.slow  # two dry runs, ~8 s
def test_tiny_benchmark_submits_tens_of_group_jobs_and_no_grouped_pretraining(workdir):
    groups, counts, _ = dry_run(workdir, "--profile", "slurm", "--configfile",
                                "config/tiny.yaml")
    # before grouping: one sbatch job per job, 53 for this config
    assert sum(counts.values()) - counts["all"] == 53
    n = submissions(groups, counts)
    print(f"tiny benchmark, --profile slurm: {n} submissions for 53 jobs")
    assert 10 <= n <= 20, n
    # The grouped structure (profile: cores 8; group-components ingest=8, baselines=8,
    # scratch=8, finetune=8): 5 sessions, 15 peers, 6 RPNT-from-scratch, 18 pretrained
    # RPNT finetunings, and the ceilings with the table and figures.
    named = _by_name(groups)
    assert {k: len(v) for k, v in named.items()} == {
        "ingest": 1, "baselines": 2, "scratch": 1, "finetune": 3, "report": 1}
    assert sorted(len(g["rules"]) for g in named["finetune"]) == [2, 8, 8]
    assert named["report"][0]["rules"] == ["ceiling", "figures", "table"]
    for g in groups:
        assert "pretrain" not in g["rules"]  # multi-rank, long: never grouped
        assert len(set(g["rules"]) - {"ceiling", "figures", "table"}) <= 1, g
        res = g["resources"]
        assert res["_cores"] <= 8 and "gpu" not in res, g  # the CPU profile
    assert counts["pretrain"] == 4 and n == 1 + 1 + counts["pretrain"] + len(groups)
    # 8 finetunings of 4 threads, 8 cores: two at a time, four layers one after another
    full = next(g for g in named["finetune"] if len(g["rules"]) == 8)["resources"]
    one = job_size(_resolved(workdir), "finetune")
    assert full["_cores"] == 8 and full["runtime"] == 4 * one.runtime
    assert full["mem_mb"] == 2 * one.mem_mb

    # The GPU profile: a group of finetunings asks for ONE GPU and runs them in turn.
    groups, counts, _ = dry_run(workdir, "--profile", "slurm/gpu", "--configfile",
                                "config/tiny.yaml")
    named = _by_name(groups)
    for name in ("scratch", "finetune"):
        for g in named[name]:
            res = g["resources"]
            assert res["gpu"] == 1 and res["_cores"] == 4, g
            assert res["runtime"] == 60 * len(g["rules"]), g  # one after another
            sbatch = sbatch_flags(g)  # what the SLURM executor plugin submits
            assert "--gpus=1" in sbatch and "--cpus-per-gpu=4" in sbatch, sbatch
            assert f"-t {60 * len(g['rules'])} " in sbatch, sbatch
    assert max(len(g["rules"]) for g in named["finetune"]) == 4
    for name in ("ingest", "baselines", "report"):
        assert all("gpu" not in g["resources"] for g in named[name]), name
    print(f"tiny benchmark, --profile slurm/gpu: {submissions(groups, counts)} submissions")


def _resolved(workdir: Path) -> dict:
    from rpnt.workflow import resolve_config
    cfg = yaml.safe_load((workdir / "config/tiny.yaml").read_text())
    return resolve_config(cfg, source="config/tiny.yaml")


def _planned(out: str, rule: str) -> list[dict[str, str]]:
    """The planned resources of every ``rule`` job of a dry run."""
    found = []
    for block in out.split(f"rule {rule}:")[1:]:
        line = block.split("resources:")[1].splitlines()[0]
        found.append(dict(item.strip().split("=", 1) for item in line.split(", ")))
    return found


@pytest.mark.slow  # three dry runs, ~10 s
def test_requests_follow_model_size_steps_and_attempt(workdir):
    write_config(workdir, "paper_size", "config/tiny.yaml", benchmark="paper_size",
                 model={"size": "small"},
                 pretrain={"train": {"steps": 100000, "batch_size": 128}},
                 finetune={"train": {"steps": 5000, "batch_size": 64}})
    sizes = {}
    for name, extra in (("tiny", ()), ("paper_size", ()), ("tiny2", ("--attempt", "2"))):
        cfg = "tiny" if name == "tiny2" else name
        _, _, out = dry_run(workdir, "--profile", "slurm", "--configfile",
                            f"config/{cfg}.yaml", *extra)
        sizes[name] = {rule: {(int(r["mem_mb"]), int(r["runtime"]))
                              for r in _planned(out, rule)}
                       for rule in ("pretrain", "finetune")}
    for rule in ("pretrain", "finetune"):
        (tiny_mem, tiny_min), = sizes["tiny"][rule]
        (big_mem, big_min), = sizes["paper_size"][rule]
        assert big_mem > 2 * tiny_mem and big_min > 10 * tiny_min, (rule, sizes)
        (mem2, min2), = sizes["tiny2"][rule]
        assert (mem2, min2) == (2 * tiny_mem, 2 * tiny_min), (rule, sizes)
    # the old one-size-for-all requests are gone for the tiny model
    (tiny_mem, tiny_min), = sizes["tiny"]["pretrain"]
    assert tiny_mem < 32000 // 8 and tiny_min < 240


# -- the sizing function ------------------------------------------------------------

def _cfg(size: str = "tiny", steps: int = 1000, batch: int = 32, **extra) -> dict:
    train = {"steps": steps, "batch_size": batch}
    return {"model": {"size": size}, "pretrain": {"train": dict(train)},
            "finetune": {"train": dict(train), "labelfree_steps": 10},
            "baselines": {"gru": {"train": {"steps": steps, "batch_size": batch}}},
            **extra}


def test_job_size_grows_with_model_steps_batch_sessions_and_attempt():
    base = job_size(_cfg(steps=20000), "pretrain")
    for size in ("small", "medium", "large"):
        bigger = job_size(_cfg(size, steps=20000), "pretrain")
        assert bigger.mem_mb > base.mem_mb and bigger.runtime > base.runtime, size
        base = bigger
    one = job_size(_cfg(steps=20000), "pretrain")
    assert job_size(_cfg(steps=40000), "pretrain").runtime > one.runtime
    assert job_size(_cfg(steps=20000, batch=128), "pretrain").mem_mb > one.mem_mb
    assert job_size(_cfg(steps=20000), "pretrain", sessions=48).mem_mb > one.mem_mb
    for attempt in (2, 3):
        again = job_size(_cfg(steps=20000), "pretrain", attempt=attempt)
        assert again == R.JobSize(attempt * one.mem_mb, attempt * one.runtime)


def test_job_size_follows_the_documented_formula():
    cfg = _cfg("small", steps=5000, batch=64)
    seconds = R.OVERHEAD_S["small"] + 5000 * R.STEP_S["small"] * 2
    mem = R.MEM_SAFETY * (R.BASE_MB + R.ACT_MB["small"] * 2 + R.SESSION_MB * 12)
    got = job_size(cfg, "pretrain", sessions=12)
    assert got.runtime == max(R.FLOOR_MIN, math.ceil(R.TIME_SAFETY * seconds / 60))
    assert got.mem_mb == math.ceil(mem)
    # the worked example of docs/workflow.md "How big a request is"
    assert got == R.JobSize(mem_mb=6160, runtime=1134)
    # finetuning counts its label-free steps; a peer its own steps at the peers' cost
    ft = job_size(cfg, "finetune")
    assert ft.runtime * 60 >= R.TIME_SAFETY * (R.OVERHEAD_S["small"] + 5010 * R.STEP_S["small"] * 2)
    peer = job_size(cfg, "baseline", model="gru")
    assert peer.runtime < ft.runtime
    # a short job asks for the floors
    assert job_size(_cfg(steps=10), "finetune").runtime == R.FLOOR_MIN
    assert job_size(_cfg(steps=10, batch=1), "baseline", model="gru").mem_mb == R.FLOOR_MB


def test_job_size_uses_a_variants_model_size():
    cfg = _cfg("tiny", steps=20000, variants={"big": {"row": "rpnt_ssl_full",
                                                      "model": {"size": "small"}}})
    assert (job_size(cfg, "finetune", model="big").runtime
            > job_size(cfg, "finetune", model="rpnt_ssl_full").runtime)


def test_a_variants_pretraining_is_sized_from_the_variants_model():
    cfg = _cfg("tiny", steps=20000, models=["rpnt_ssl_full", "big"],
               variants={"big": {"row": "rpnt_ssl_full", "model": {"size": "small"}}})
    assert (job_size(cfg, "pretrain", pretraining="ssl-big")
            == job_size(_cfg("small", steps=20000), "pretrain"))
    assert job_size(cfg, "pretrain", pretraining="ssl") == job_size(cfg, "pretrain")


def test_job_size_refuses_what_it_cannot_size():
    with pytest.raises(RpntError, match=r"model.size 'huge'.*set-resources"):
        job_size(_cfg("huge"), "pretrain")
    with pytest.raises(RpntError):
        job_size(_cfg(), "table")


def test_every_model_size_preset_has_an_estimate():
    from rpnt.model.config import PRESETS
    assert set(R.STEP_S) == set(R.OVERHEAD_S) == set(R.ACT_MB) == set(PRESETS)


def test_finetunings_from_a_pretraining_never_share_a_group_with_scratch_ones():
    cfg = {"variants": {}}
    assert train_group(cfg, "rpnt_scratch") == "scratch"
    for row in ("rpnt_ssl_frozen", "rpnt_ssl_labelfree", "rpnt_joint_full",
                "rpnt_joint_staged"):
        assert train_group(cfg, row) == "finetune", row
