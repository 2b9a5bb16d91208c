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
   2-minute time limit, held at step 20 so that its steps do not fit: SLURM's warning
   signal makes it write its checkpoint and exit, the retry (attempt 2) resumes from that
   step and completes, Snakemake reports success, and the outputs equal those of the
   same command run without interruption; the log of each attempt is kept.

It skips only when not root or apt-get is missing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from rpnt import workflow as W
from tests.slurm_cluster import SlurmCluster, why_unavailable
from tests.slurm_hold import HoldAtStep
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
    pre_log = (wd / "logs/slurmtest/bin20ms/pretrain/cross_session/joint/seed0.log").read_text()
    assert "rank 0 of 2" in pre_log and "rank 1 of 2" in pre_log, pre_log[-3000:]

    # SLURM itself ran them, one SLURM job per submission: finished jobs stay visible
    # to squeue (MinJobAge).
    jobs = slurm_jobs(cluster)
    assert len(jobs) == len(line), (jobs, sorted(line))
    # each training job scored its model
    for model in ("wiener", "rpnt_joint_full"):
        assert (wd / f"results/slurmtest/bin20ms/metrics/cross_session/{model}/{SESSION}/"
                     "alltrials/seed0.json").exists(), model
    assert all(state == "COMPLETED" for _, state, _, _ in jobs), jobs

    # And the workflow's products exist.
    table = wd / "results/benchmark/slurmtest/bin20ms/table.md"
    assert table.exists() and "rpnt_joint_full" in table.read_text()
    assert any((table.parent / "figures").glob("*.png"))


# The time-limit test's job (RPNT from scratch on SESSION) and its files, relative to the
# workdir: the workflow's paths (workflow/rules/common.smk), in one place.
TL_BENCH = "timelimit"
TL_RUN = f"cross_session/rpnt_scratch/{SESSION}/alltrials/seed0"
TL_MODEL = f"results/{TL_BENCH}/bin20ms/models/{TL_RUN}"
TL_METRICS = f"results/{TL_BENCH}/bin20ms/metrics/{TL_RUN}.json"
TL_PREDICTIONS = f"results/{TL_BENCH}/bin20ms/predictions/{TL_RUN}.npz"
TL_CKPT = f"resources/checkpoints/{TL_BENCH}/bin20ms/finetune/{TL_RUN}"
TL_LOG = f"logs/{TL_BENCH}/bin20ms/finetune/{TL_RUN}.log"  # attempts: <dir>/attempts/seed0.*.log
#: The job's steps, and the step at which the test holds its first attempt until SLURM's
#: warning comes: a job whose steps do not fit in its time limit, stopped at a known step.
TL_STEPS = 60
TL_HOLD_AT = 20
#: Where the uninterrupted reference run writes, for each output flag of `rpnt finetune`
#: (every other flag is the job's).
REFERENCE_OUTPUTS = {"--out": "model", "--checkpoint-dir": "model.ckpt",
                     "--metrics": "metrics.json", "--predictions": "predictions.npz"}


def attempt_logs(wd: Path) -> list[Path]:
    """The time-limit job's log of each attempt, oldest first."""
    log = wd / TL_LOG
    return sorted((log.parent / "attempts").glob(f"{log.stem}.*.log"))


def start_reference(hold: HoldAtStep, wd: Path, out: Path) -> subprocess.Popen:
    """The job's ``rpnt finetune`` command as its first attempt ran it (same flags, same
    thread count), run here to its end with its outputs under ``out``."""
    argv = list(hold.argv)
    for flag, name in REFERENCE_OUTPUTS.items():
        argv[argv.index(flag) + 1] = str(out / name)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "rpnt.log").open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "rpnt", *argv], cwd=wd, stdout=log,
                                stderr=subprocess.STDOUT, env=offline_env(
                                    wd, OMP_NUM_THREADS=hold.environ["OMP_NUM_THREADS"]))


def _equal_but(a: dict, b: dict, ignore: dict[str, tuple[str, ...]]) -> bool:
    """``a == b`` but for the keys ``ignore`` names per sub-dictionary ("" = top level)."""
    def strip(d: dict) -> dict:
        d = {k: v for k, v in d.items() if k not in ignore.get("", ())}
        for key, names in ignore.items():
            if key and isinstance(d.get(key), dict):
                d[key] = {k: v for k, v in d[key].items() if k not in names}
        return d
    return strip(a) == strip(b)


@pytest.mark.timeout(RUN_TIMEOUT_S + 300)
def test_job_stopped_at_its_time_limit_resumes_and_ends_as_if_uninterrupted(cluster, tmp_path,
                                                                            capsys):
    """A finetuning job through the GPU profile (--gpus=1 on the stand-in GPU) with a
    2-minute limit and a retry. Its steps are made not to fit in the first attempt: the
    test freezes it at step 20 (:class:`tests.slurm_hold.HoldAtStep`), so SLURM's own warning signal
    (--signal=TERM@10) reaches it mid-run; rpnt saves its checkpoint at step N and exits
    by itself (FAILED, not TIMEOUT). The retry (attempt 2, limit 2 x attempt = 4 minutes,
    never signalled) resumes from step N and trains to the end: Snakemake reports success,
    and the model weights, training log, metrics and predictions equal those of the same
    `rpnt finetune` command run here without interruption (provenance's model_dir and the
    wall time in meta.json aside). Each attempt's log is kept.

    SLURM may send the warning signal up to 60 s earlier than asked (sbatch(1), --signal:
    "resolution of event handling"), so the limit leaves at least 50 s for the job to start
    Snakemake and rpnt before the signal can come; a 1-minute limit let the signal arrive
    before rpnt had started (seen under load)."""
    # The workdir of the sbatch run, whose store this job trains on, when it made one; else
    # a new one with the store made locally: this test is about the training job.
    wd = WORKDIRS.get("sbatch")
    if wd is None or not (wd / STORE).exists():
        wd = make_workdir(tmp_path / "wf")
    # labels.selection valid: validation, best weights and early-stopping state cross
    # the interruption too (patience never runs out in 6 evaluations)
    train = {"steps": TL_STEPS, "batch_size": 8, "eval_every": 10, "log_every": 5,
             "checkpoint_every": 1_000_000, "patience": 10}
    write_config(wd, TL_BENCH, "config/tiny.yaml", benchmark=TL_BENCH,
                 models=["rpnt_scratch"], scenarios=SCENARIO, finetune={"train": train},
                 labels={"selection": "valid"}, budgets=["all"], model_budgets={})
    if not (wd / STORE).exists():
        run_snakemake(wd, STORE, "--cores", "2", "--configfile", f"config/{TL_BENCH}.yaml",
                      timeout=600)

    profile = derive_test_profile(wd / "slurm" / "gpu" / "config.yaml", tmp_path / "profile",
                                  cluster)
    prof = yaml.safe_load((profile / "config.yaml").read_text())
    assert "--signal=TERM@" in prof["default-resources"]["slurm_extra"]
    prof["retries"] = 1
    prof["set-resources"]["finetune"].update(runtime="2 * attempt",
                                             slurm_extra="'--signal=TERM@10'")
    # One thread: two OpenMP threads on this shared 2-core node spin against each other
    # (60 steps: 37 s with two, 4 s with one, under load).
    prof["set-threads"]["finetune"] = 1
    (profile / "config.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))

    # While attempt 1 is held, the same command runs here uninterrupted (the reference).
    ref = tmp_path / "reference"
    started: list[subprocess.Popen] = []
    hold = HoldAtStep(lambda: attempt_logs(wd), wd / TL_CKPT / "log" / "metrics.jsonl",
                      TL_HOLD_AT, "rpnt", "finetune",
                      on_hold=lambda: started.append(start_reference(hold, wd, ref)))
    try:
        rc, out = run_profile(wd, profile, cluster, tmp_path / "snakemake.log", TL_MODEL,
                              "--configfile", f"config/{TL_BENCH}.yaml", poll=hold)
    finally:
        hold.release()
    assert hold.argv, f"attempt 1's rpnt was never seen\n{out[-4000:]}"
    if not started:  # SLURM's warning came before the hold
        started.append(start_reference(hold, wd, ref))
    ref_rc = started[0].wait(timeout=600)
    ref_log = (ref / "rpnt.log").read_text(errors="replace")
    calls = [c for cs in _sbatch_calls(out).values() for c in cs]
    assert rc == 0, f"snakemake exited {rc}\n{out[-4000:]}\n{failed_logs(wd)}"
    assert len(calls) == 2, out[-4000:]  # the first attempt and its retry
    for attempt, line in enumerate(calls, 1):
        assert "--gpus=1" in line and "--signal=TERM@10" in line, line
        assert re.search(rf"-t '?{2 * attempt}'?\s", line), line

    # Each attempt's log is kept (logs/.../attempts/seed0.<time>.<SLURM job>.log); the
    # job's log is the last attempt's.
    attempts = attempt_logs(wd)
    assert len(attempts) == 2, sorted(map(str, attempts))
    first, second = (a.read_text(errors="replace") for a in attempts)
    job1, job2 = (re.search(r"SLURM job (\d+) ===", t)[1] for t in (first, second))
    assert job1 == hold.job != job2 and attempts[0].name.endswith(f".{job1}.log")
    assert (wd / TL_LOG).read_text(errors="replace") == second
    saved = re.search(r"SIGTERM received at step (\d+); checkpoint saved to (\S+?);", first)
    assert saved, first[-3000:]
    resumed = re.search(r"resumed from (\S+) at step (\d+)", second)
    assert resumed, second[-3000:]
    n = int(saved[1])
    assert resumed[2] == saved[1] and 0 < n < TL_STEPS
    assert (wd / resumed[1]).resolve() == (wd / TL_CKPT).resolve() == (wd / saved[2]).resolve()
    # attempt 2 was not signalled and trained to the end; its checkpoint is gone
    assert "SIGTERM" not in second and f"{TL_STEPS} steps" in second, second[-3000:]
    assert not (wd / TL_CKPT).exists()
    with capsys.disabled():
        print(f"\nSLURM time limit: attempt 1 (job {job1}) held at step {hold.held_at} for "
              f"{hold.held_s:.0f} s until SLURM's warning, checkpointed at step {n}; "
              f"attempt 2 (job {job2}) resumed at step {resumed[2]} and completed "
              f"{TL_STEPS} steps")

    # Attempt 1 ran on the stand-in GPU and ended before SLURM's hard limit killed it:
    # the SIGTERM made rpnt exit by itself (FAILED; SLURM's kill: TIMEOUT). Attempt 2
    # completed.
    jobs = {jid: state for jid, state, _, _ in slurm_jobs(cluster)}
    for jid, expected in ((job1, "FAILED"), (job2, "COMPLETED")):
        show = subprocess.run(["scontrol", "show", "job", jid], env=cluster.env(),
                              capture_output=True, text=True, timeout=30).stdout
        assert re.search(r"gres[/:]gpu[:=]1", show), show
        assert jobs[jid] == expected, (jid, jobs[jid], show)

    # The outputs equal those of the uninterrupted run of the same command.
    assert ref_rc == 0 and "resumed from" not in ref_log, ref_log[-3000:]
    got_w = load_file(str(wd / TL_MODEL / "weights.safetensors"))
    ref_w = load_file(str(ref / "model" / "weights.safetensors"))
    assert got_w.keys() == ref_w.keys()
    assert not [k for k in got_w if not torch.equal(got_w[k], ref_w[k])], "weights differ"
    # the training log: every loss, learning rate, gradient norm and validation loss
    assert ((wd / TL_MODEL / "metrics.jsonl").read_text()
            == (ref / "model" / "metrics.jsonl").read_text())
    got_meta, ref_meta = (json.loads((d / "meta.json").read_text())
                          for d in (wd / TL_MODEL, ref / "model"))
    assert (got_meta["fit"]["resumed_from"], ref_meta["fit"]["resumed_from"]) == (n, 0)
    assert got_meta["fit"]["steps_done"] == TL_STEPS
    assert _equal_but(got_meta, ref_meta, {"fit": ("resumed_from", "seconds")})
    got_m, ref_m = (json.loads(p.read_text()) for p in (wd / TL_METRICS,
                                                        ref / "metrics.json"))
    assert _equal_but(got_m, ref_m, {"provenance": ("model_dir",)}), (got_m, ref_m)
    with np.load(wd / TL_PREDICTIONS) as got_p, np.load(ref / "predictions.npz") as ref_p:
        assert sorted(got_p.files) == sorted(ref_p.files)
        for key in got_p.files:
            a, b = got_p[key], ref_p[key]
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), key
