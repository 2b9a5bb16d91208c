"""The workflow on a real single-node SLURM cluster, through the repository's profiles.

Starts munged + slurmctld + slurmd from Debian's packages (tests/slurm_cluster.py,
installed with apt-get when missing) and derives test profiles from slurm/config.yaml
and slurm/gpu/config.yaml (the same keys; the test partition; values capped to what
this one node has; squeue status checks). Two runs, each bounded by `timeout -s INT`:

1. The reduced tiny workflow (one scenario, wiener and rpnt_joint_full) through the CPU
   profile: every non-local job goes through sbatch with the profile's (or the rules'
   sized) resources and SIGTERM warning, no job asks for a GPU, small jobs share group
   jobs (the five ingests one submission, the ceilings, table and figures one; training
   jobs score their models) with the group's summed runtime; SLURM runs them all to
   completion. The pretraining job, never grouped, runs as two data-parallel ranks
   (`srun -n 2` in an sbatch `--ntasks=2` job).
2. One RPNT training job through the GPU profile (--gpus=1 on the stand-in GPU) with a
   2-minute time limit: SLURM's warning signal makes it write its checkpoint, the retry
   (attempt 2) resumes from that step, and the log of each attempt is kept.

It skips only when not root or apt-get is missing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from rpnt import workflow as W
from tests.slurm_cluster import SlurmCluster, why_unavailable
from tests.workflow_helpers import (
    failed_logs,
    make_workdir,
    offline_env,
    run_snakemake,
    write_config,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

NODE_MEM_CAP_MB = 2000  # per job; this node runs two jobs at a time
RUN_TIMEOUT_S = 900
SESSION = "sub-C_ses-CO-20161013"  # the one target of the scenario below
SCENARIO = {"cross_session": {"target": {"subject": ["C"], "date_from": "2016-10-01"}}}


#: Workdirs of this module's runs: the time-limit test trains on the store the sbatch run
#: made (stores are per dataset and bin size, shared by every benchmark of a workdir).
WORKDIRS: dict[str, Path] = {}
STORE = f"resources/stores/sim_tiny/bin20ms/{SESSION}.zarr"


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
    if "cores" in prof:  # the widest group job
        prof["cores"] = min(int(prof["cores"]), cpus)
    prof["retries"] = 0  # a failure should fail the test at once
    prof["latency-wait"] = 5
    prof["slurm-init-seconds-before-status-checks"] = 5
    prof["slurm-status-command"] = "squeue"
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dst


def run_profile(wd: Path, profile: Path, cluster: SlurmCluster, log_path: Path,
                *args: str, poll: Callable[[], bool] | None = None) -> tuple[int, str]:
    """``snakemake --profile PROFILE ARGS`` in ``wd``, bounded by ``timeout -s INT``;
    ``poll`` (if given) is called every second while it runs, until it returns True."""
    cmd = ["timeout", "-s", "INT", str(RUN_TIMEOUT_S), sys.executable, "-m", "snakemake",
           "--profile", str(profile), "--jobs", "2", "--verbose", *args]
    env = offline_env(wd, SLURM_CONF=str(cluster.conf))
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=wd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            while poll is not None and proc.poll() is None:
                if poll():
                    poll = None
                else:
                    time.sleep(1.0)
            proc.wait(timeout=RUN_TIMEOUT_S + 60)
        finally:
            if proc.poll() is None:  # `timeout` itself hung: end the whole process group
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return proc.returncode, log_path.read_text(errors="replace")


def slurm_jobs(cluster: SlurmCluster) -> list[list[str]]:
    """[job id, state, comment, elapsed] of every job SLURM still remembers (MinJobAge)."""
    sq = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%k|%M"],
                        env=cluster.env(), capture_output=True, text=True, timeout=30).stdout
    return [line.split("|", 3) for line in sq.strip().splitlines()]


def _sbatch_calls(output: str) -> dict[str, list[str]]:
    """Rule -> the sbatch command lines Snakemake's SLURM executor ran."""
    calls: dict[str, list[str]] = {}
    for line in output.splitlines():
        m = re.search(r"sbatch call: (sbatch .*)", line)
        if m:
            rule = re.search(r"--comment '?rule_([A-Za-z0-9_]+?)(?:_wildcards_|'|\s)", m[1])
            calls.setdefault(rule[1] if rule else "?", []).append(m[1])
    return calls


def _one(root: Path, tail: str) -> Path:
    """The one file ``root/**/tail`` (outputs and logs may sit under a bin-size folder)."""
    found = sorted(root.rglob(tail))
    assert len(found) == 1, (root, tail, found)
    return found[0]


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_tiny_workflow_runs_through_sbatch(cluster, tmp_path, capsys):
    wd = make_workdir(tmp_path / "wf")
    WORKDIRS["sbatch"] = wd
    # Few training steps: this test is about submission and scheduling, not accuracy.
    short = {"steps": 6, "batch_size": 8, "eval_every": 3, "checkpoint_every": 3}
    write_config(wd, "slurmtest", "config/tiny.yaml", benchmark="slurmtest",
                 models=["wiener", "rpnt_joint_full"], scenarios=SCENARIO,
                 budgets=["all"], model_budgets={},
                 pretrain={"train": short}, finetune={"train": short})
    profile = derive_test_profile(wd / "slurm" / "config.yaml", tmp_path / "profile", cluster)
    src = yaml.safe_load((wd / "slurm" / "config.yaml").read_text())
    derived = yaml.safe_load((profile / "config.yaml").read_text())
    assert set(src["set-resources"]) == set(derived["set-resources"])
    for rule, res in src["set-resources"].items():
        assert set(res) == set(derived["set-resources"][rule]) - {"slurm_partition"}, rule
    # Pretraining as two data-parallel ranks that srun starts inside the job (the
    # profiles' documented way, rpnt.workflow.launch): one CPU each on this 2-core node.
    derived["set-resources"].setdefault("pretrain", {}).update(tasks=2, mpi='"srun"',
                                                               cpus_per_task=1)
    (profile / "config.yaml").write_text(yaml.safe_dump(derived, sort_keys=False))

    rc, out = run_profile(wd, profile, cluster, tmp_path / "snakemake.log",
                          "--configfile", "config/slurmtest.yaml")
    calls = _sbatch_calls(out)
    # The CI log shows what SLURM received (outside pytest's capture).
    with capsys.disabled():
        print("\nsbatch calls of the SLURM integration test:")
        for line in (c for cs in calls.values() for c in cs):
            print("  " + line.split(" --wrap=")[0])
    if rc != 0:
        slurm_logs = "\n".join(
            f"--- {p}\n{p.read_text(errors='replace')[-2000:]}"
            for p in sorted((wd / ".snakemake" / "slurm_logs").rglob("*.log")))
        raise AssertionError(f"snakemake --profile exited {rc}\n{out[-6000:]}\n"
                             f"{failed_logs(wd)}\n{slurm_logs}\n{cluster.log_tail()}")

    # Every non-local job went through sbatch with the declared resources; the small
    # ones in group jobs (the comment names the group and its rules), the pretraining
    # alone; a training job scores its model itself, one group has the ceilings, the
    # table and the figures.
    groups = {"ingest": "ingest_ingest", "baselines": "baselines_baseline",
              "finetune": "finetune_finetune", "report": "report_ceiling_figures_table"}
    assert set(calls) == {"simulate", "manifest", "pretrain", *groups.values()}, sorted(calls)
    assert all(len(lines) == 1 for lines in calls.values()), calls
    line = {name: lines[0] for name, lines in calls.items()}
    assert len(re.findall(r"\bingest:session=", line["ingest_ingest"])) == 5
    for rule in ("ceiling", "table", "figures"):
        assert re.search(rf"\b{rule}:", line[groups["report"]]), rule
    assert "baseline:" in line[groups["baselines"]] and "pretrain:" not in line[groups["finetune"]]
    assert "--local-groupid" not in line["pretrain"]
    cfg = W.resolve_config(yaml.safe_load((wd / "config/slurmtest.yaml").read_text()),
                           source="config/slurmtest.yaml")

    def profile_runtime(rule: str) -> int:
        res = derived["set-resources"].get(rule, {})
        return int(eval(str(res.get("runtime", src["default-resources"]["runtime"])),
                        {"attempt": 1}))

    # a group's runtime is the sum of its layers: jobs side by side up to `cores` CPUs
    cores = derived["cores"]
    ingest_layers = -(-5 // max(1, cores // 2))  # ingest jobs have 2 threads
    report_layers = [profile_runtime("ceiling"),  # then table and figures (1 thread each)
                     *([max(profile_runtime("table"), profile_runtime("figures"))]
                       if cores >= 2 else [profile_runtime("table"),
                                           profile_runtime("figures")])]
    runtime = {"simulate": profile_runtime("simulate"),
               "manifest": profile_runtime("manifest"),
               "pretrain": W.job_size(cfg, "pretrain", sessions=5).runtime,
               groups["ingest"]: ingest_layers * profile_runtime("ingest"),
               groups["baselines"]: W.job_size(cfg, "baseline", model="wiener").runtime,
               groups["finetune"]: W.job_size(cfg, "finetune",
                                              model="rpnt_joint_full").runtime,
               groups["report"]: sum(report_layers)}
    signal_flag = src["default-resources"]["slurm_extra"].strip("'")
    for name, sbatch in line.items():
        assert f"-p {cluster.partition}" in sbatch or f"-p '{cluster.partition}'" in sbatch
        assert re.search(rf"-t '?{runtime[name]}'?(\s|$)", sbatch), (name, sbatch)
        assert re.search(r"--mem '?\d+", sbatch), sbatch
        assert signal_flag in sbatch, sbatch
        assert "--gpus" not in sbatch and "gres" not in sbatch, sbatch  # the CPU profile
    # the pretraining's memory: sized from the tiny model (below this node's cap)
    mem = re.search(r"--mem '?(\d+)", line["pretrain"])
    assert int(mem[1]) == W.job_size(cfg, "pretrain", sessions=5).mem_mb < NODE_MEM_CAP_MB
    assert "--ntasks=2" in line["pretrain"].split()
    # both ranks of the srun step trained (rpnt.ranks from SLURM's variables); rank 0
    # wrote the pretrained encoder the finetuning job started from
    pre_log = _one(wd / "logs/slurmtest", "pretrain/cross_session/joint/seed0.log").read_text()
    assert "rank 0 of 2" in pre_log and "rank 1 of 2" in pre_log, pre_log[-3000:]

    # SLURM itself ran them, one SLURM job per submission: finished jobs stay visible
    # to squeue (MinJobAge).
    jobs = slurm_jobs(cluster)
    assert len(jobs) == len(line), (jobs, sorted(line))
    # each training job scored its model
    for model in ("wiener", "rpnt_joint_full"):
        assert _one(wd / "results/slurmtest",
                    f"metrics/cross_session/{model}/{SESSION}/alltrials/seed0.json"), model
    assert all(state == "COMPLETED" for _, state, _, _ in jobs), jobs

    # And the workflow's products exist.
    table = _one(wd / "results/benchmark/slurmtest", "table.md")
    assert table.exists() and "rpnt_joint_full" in table.read_text()
    assert any((table.parent / "figures").glob("*.png"))


#: How long the retry trains after its log says it resumed, before the test signals it.
RETRY_TRAINS_S = 10.0


def signal_retry_once_resumed(logs: Path, cluster: SlurmCluster) -> Callable[[], bool]:
    """A ``poll`` for :func:`run_profile`: once the second attempt's log says it resumed,
    and it has trained for :data:`RETRY_TRAINS_S`, send its job SIGTERM with ``scancel
    --signal=TERM`` (to the job's steps, not the batch shell: what ``--signal=TERM@N``
    sends at the time limit), so that the retry need not wait for its own limit."""
    resumed_at: list[float] = []

    def poll() -> bool:
        attempts = sorted((logs / "attempts").glob("seed0.*.log"))
        if len(attempts) < 2:
            return False
        text = attempts[1].read_text(errors="replace")
        if "resumed from" not in text:
            return False
        if not resumed_at:
            resumed_at.append(time.monotonic())
        if time.monotonic() - resumed_at[0] < RETRY_TRAINS_S:
            return False
        job = re.search(r"SLURM job (\d+) ===", text)[1]
        # check=False: SLURM's own warning may have ended the job just before.
        subprocess.run(["scancel", "--signal=TERM", job], env=cluster.env(),
                       capture_output=True, text=True, timeout=30, check=False)
        return True

    return poll


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_training_job_at_its_time_limit_checkpoints_and_its_retry_resumes(cluster, tmp_path,
                                                                          capsys):
    """A finetuning job with a 2-minute limit and far more steps than fit in it: SLURM's
    SIGTERM (profile: --signal, here 10 s before the limit) makes it save its checkpoint
    at step N and exit; the retry (attempt 2) resumes from step N. Attempt 2 gets the same
    SIGTERM once it has trained for a few seconds (the test sends it with `scancel
    --signal=TERM` rather than wait another 2 minutes for the limit; SLURM's own warning
    would come at the limit anyway, the steps never fit), saves and exits the same way, so
    the run ends failed after its one retry, with the log of each attempt kept.

    SLURM may send the warning signal up to 60 s earlier than asked (sbatch(1), --signal:
    "resolution of event handling"), so the limit leaves at least 50 s for the job to start
    Snakemake and rpnt before the signal can come; a 1-minute limit let the signal arrive
    before rpnt had started (seen under load)."""
    # The workdir of the sbatch run, whose store this job trains on, when it made one; else
    # a new one with the store made locally: this test is about the training job.
    wd = WORKDIRS.get("sbatch")
    if wd is None or not (wd / STORE).exists():
        wd = make_workdir(tmp_path / "wf")
    long = {"steps": 1_000_000, "batch_size": 8, "eval_every": 1_000_000,
            "checkpoint_every": 1_000_000, "patience": 0}
    write_config(wd, "timelimit", "config/tiny.yaml", benchmark="timelimit",
                 models=["rpnt_scratch"], scenarios=SCENARIO, finetune={"train": long},
                 budgets=["all"], model_budgets={})
    if not (wd / STORE).exists():
        run_snakemake(wd, STORE, "--cores", "2", "--configfile", "config/timelimit.yaml",
                      timeout=600)

    profile = derive_test_profile(wd / "slurm" / "gpu" / "config.yaml", tmp_path / "profile",
                                  cluster)
    prof = yaml.safe_load((profile / "config.yaml").read_text())
    assert "--signal=TERM@" in prof["default-resources"]["slurm_extra"]
    prof["retries"] = 1
    prof["set-resources"]["finetune"].update(runtime=2, slurm_extra="'--signal=TERM@10'")
    (profile / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))

    target = f"results/timelimit/models/cross_session/rpnt_scratch/{SESSION}/alltrials/seed0"
    logs = wd / f"logs/timelimit/finetune/cross_session/rpnt_scratch/{SESSION}/alltrials"
    rc, out = run_profile(wd, profile, cluster, tmp_path / "snakemake.log", target,
                          "--configfile", "config/timelimit.yaml",
                          poll=signal_retry_once_resumed(logs, cluster))
    calls = [c for cs in _sbatch_calls(out).values() for c in cs]
    assert len(calls) == 2, out[-4000:]  # the first attempt and its retry
    for line in calls:
        assert "--gpus=1" in line and "--signal=TERM@10" in line, line
        assert re.search(r"-t '?2'?\s", line), line
    assert rc != 0  # attempt 2 was stopped by SIGTERM too: the steps never fit
    assert not (wd / target).exists()

    # Each attempt's log is kept (logs/.../attempts/seed0.<time>.<SLURM job>.log); the
    # job's log is the last attempt's.
    attempts = sorted((logs / "attempts").glob("seed0.*.log"))
    assert len(attempts) == 2, sorted(map(str, logs.rglob("*")))
    first, second = (a.read_text(errors="replace") for a in attempts)
    job1, job2 = (re.search(r"SLURM job (\d+) ===", t)[1] for t in (first, second))
    assert job1 != job2 and attempts[0].name.endswith(f".{job1}.log")
    assert (logs / "seed0.log").read_text(errors="replace") == second
    saved = re.search(r"SIGTERM received at step (\d+); checkpoint saved to (\S+)", first)
    assert saved, first[-3000:]
    resumed = re.search(r"resumed from (\S+) at step (\d+)", second)
    assert resumed, second[-3000:]
    assert resumed[2] == saved[1] and int(saved[1]) > 0
    ckpt = (f"resources/checkpoints/timelimit/finetune/cross_session/rpnt_scratch/{SESSION}/"
            "alltrials/seed0")
    assert (wd / resumed[1]).resolve() == (wd / ckpt).resolve()
    again = re.search(r"SIGTERM received at step (\d+)", second)
    assert again and int(again[1]) > int(saved[1]), second[-3000:]
    with capsys.disabled():
        print(f"\nSLURM time limit: attempt 1 (job {job1}) checkpointed at step {saved[1]}; "
              f"attempt 2 (job {job2}) resumed at step {resumed[2]}, stopped at {again[1]}")

    # Both attempts ran on the stand-in GPU and ended before SLURM's hard limit killed
    # them: the SIGTERM made rpnt exit by itself.
    jobs = {jid: (state, elapsed) for jid, state, _, elapsed in slurm_jobs(cluster)}
    for jid in (job1, job2):
        show = subprocess.run(["scontrol", "show", "job", jid], env=cluster.env(),
                              capture_output=True, text=True, timeout=30).stdout
        assert re.search(r"gres[/:]gpu[:=]1", show), show
        assert jobs[jid][0] == "FAILED", (jid, jobs[jid], show)
