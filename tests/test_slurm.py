"""The workflow on a real single-node SLURM cluster, through the repository's profile.

Starts munged + slurmctld + slurmd from Debian's packages (tests/slurm_cluster.py,
installed with apt-get when missing), derives a test profile from slurm/config.yaml (the
same keys; the test partition; values capped to what this one node has; squeue status
checks) and runs a reduced tiny workflow through `snakemake --profile` bounded by
`timeout -s INT`: the tiny preset restricted to one scenario and two models (wiener,
rpnt_full), i.e. simulate, 5 ingests, manifest, pretrain, finetune, baseline, evaluate,
ceiling, table and figures, each as its own sbatch job. It then checks that the jobs went
through sbatch with the resources the profile declares (GPU jobs with --gpus=1) and that
SLURM ran them to completion. It skips only when not root or apt-get is missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.slurm_cluster import SlurmCluster, why_unavailable
from tests.workflow_helpers import failed_logs, make_workdir, offline_env, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GPU_RULES = ("pretrain", "finetune")
NODE_MEM_CAP_MB = 2000  # per job; this node runs two jobs at a time
RUN_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = why_unavailable()
    if reason:
        msg = f"!!! SLURM INTEGRATION TEST SKIPPED: {reason} !!!"
        print(f"\n{msg}\n", file=sys.stderr)
        pytest.skip(msg)
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except Exception as exc:
        raise AssertionError(f"could not start SLURM: {exc}\n{c.log_tail()}") from exc
    yield c
    c.stop()


def derive_test_profile(src: Path, dst: Path, cluster: SlurmCluster) -> Path:
    """slurm/config.yaml with the same keys, for this one-node test cluster.

    Memory expressions are capped (``min(<expr>, cap)``), CPU counts are capped to the
    node's cores, the partition is the test partition; status checks use squeue after 5 s.
    """
    prof = yaml.safe_load(src.read_text())
    cpus = cluster.cpus

    def fit(res: dict) -> dict:
        res = dict(res)
        if "mem_mb" in res:
            res["mem_mb"] = f"min({res['mem_mb']}, {NODE_MEM_CAP_MB})"
        for key in ("cpus_per_task", "cpus_per_gpu"):
            if key in res:
                res[key] = min(int(res[key]), cpus)
        return res

    prof["default-resources"] = {**fit(prof.get("default-resources", {})),
                                 "slurm_partition": cluster.partition}
    prof["set-resources"] = {rule: fit(res) for rule, res in prof["set-resources"].items()}
    prof["set-threads"] = {rule: min(int(n), cpus) for rule, n in
                           prof.get("set-threads", {}).items()}
    prof["retries"] = 0  # a failure should fail the test at once
    prof["latency-wait"] = 5
    prof["slurm-init-seconds-before-status-checks"] = 5
    prof["slurm-status-command"] = "squeue"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dst


def _sbatch_calls(output: str) -> dict[str, list[str]]:
    """Rule name -> the sbatch command lines Snakemake's SLURM executor ran."""
    calls: dict[str, list[str]] = {}
    for line in output.splitlines():
        m = re.search(r"sbatch call: (sbatch .*)", line)
        if m:
            rule = re.search(r"--comment '?rule_([A-Za-z0-9_]+?)(?:_wildcards_|'|\s)", m[1])
            calls.setdefault(rule[1] if rule else "?", []).append(m[1])
    return calls


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_tiny_workflow_runs_through_sbatch(cluster, tmp_path, capsys):
    wd = make_workdir(tmp_path / "wf")
    # Few training steps: this test is about submission and scheduling, not accuracy.
    short = {"steps": 6, "batch_size": 8, "eval_every": 3, "checkpoint_every": 3,
             "progress": False}
    write_config(wd, "slurmtest", "config/tiny.yaml", benchmark="slurmtest",
                 models=["wiener", "rpnt_full"],
                 scenarios={"cross_session": {"target": {"subject": ["C"],
                                                          "date_from": "2016-10-01"}}},
                 pretrain={"train": short}, finetune={"train": short})
    profile = derive_test_profile(wd / "slurm" / "config.yaml", tmp_path / "profile", cluster)
    src = yaml.safe_load((wd / "slurm" / "config.yaml").read_text())
    derived = yaml.safe_load((profile / "config.yaml").read_text())
    assert set(src["set-resources"]) == set(derived["set-resources"])
    for rule, res in src["set-resources"].items():
        assert set(res) == set(derived["set-resources"][rule]) - {"slurm_partition"}, rule

    cmd = ["timeout", "-s", "INT", str(RUN_TIMEOUT_S), sys.executable, "-m", "snakemake",
           "--profile", str(profile), "--configfile", "config/slurmtest.yaml",
           "--jobs", "2", "--verbose"]
    env = offline_env(SLURM_CONF=str(cluster.conf))
    log_path = tmp_path / "snakemake.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=wd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            proc.wait(timeout=RUN_TIMEOUT_S + 60)
        finally:
            if proc.poll() is None:  # `timeout` itself hung: end the whole process group
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    out = log_path.read_text(errors="replace")
    calls = _sbatch_calls(out)
    # The CI log shows what SLURM received (outside pytest's capture).
    with capsys.disabled():
        print("\nsbatch calls of the SLURM integration test:")
        for line in (c for cs in calls.values() for c in cs):
            print("  " + line.split(" --wrap=")[0])
    if proc.returncode != 0:
        slurm_logs = "\n".join(
            f"--- {p}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted((wd / ".snakemake" / "slurm_logs").rglob("*.log")))
        raise AssertionError(f"snakemake --profile exited {proc.returncode}\n{out[-6000:]}\n"
                             f"{failed_logs(wd)}\n{slurm_logs}\n{cluster.log_tail()}")

    # Every non-local rule went through sbatch, with the declared resources.
    local = {"resolve_config", "all"}
    expected_rules = {"simulate", "ingest", "manifest", "pretrain", "finetune", "baseline",
                      "evaluate", "ceiling", "table", "figures"}
    assert expected_rules <= set(calls), sorted(calls)
    assert not local & set(calls)
    assert len(calls["ingest"]) == 5 and len(calls["evaluate"]) == 2
    for rule, lines in calls.items():
        res = derived["set-resources"].get(rule, {})
        runtime = int(eval(str(res.get("runtime", src["default-resources"]["runtime"])),
                           {"attempt": 1}))
        for line in lines:
            assert f"-p {cluster.partition}" in line or f"-p '{cluster.partition}'" in line
            assert re.search(rf"-t '?{runtime}'?(\s|$)", line), (rule, runtime, line)
            assert re.search(r"--mem '?\d+", line), line
            if rule in GPU_RULES:
                assert "--gpus=1" in line, line
                assert "--cpus-per-gpu=" in line, line
            else:
                assert "--gpus" not in line, line
    mem = re.search(r"--mem '?(\d+)", calls["pretrain"][0])
    assert int(mem[1]) == NODE_MEM_CAP_MB

    # SLURM itself ran them: finished jobs stay visible to squeue (MinJobAge).
    sq = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%k"], env=env,
                        capture_output=True, text=True, timeout=30).stdout
    jobs = [line.split("|", 2) for line in sq.strip().splitlines()]
    n_calls = sum(len(v) for v in calls.values())
    assert len(jobs) >= n_calls
    assert all(state == "COMPLETED" for _, state, _ in jobs), sq
    gpu_job = next(jid for jid, _, comment in jobs if comment.startswith("rule_pretrain"))
    show = subprocess.run(["scontrol", "show", "job", gpu_job], env=env,
                          capture_output=True, text=True, timeout=30).stdout
    assert re.search(r"gres[/:]gpu[:=]1", show), show

    # And the workflow's products exist.
    table = wd / "results/benchmark/slurmtest/table.md"
    assert table.exists() and "rpnt_full" in table.read_text()
    assert any((wd / "results/benchmark/slurmtest/figures").glob("*.png"))
