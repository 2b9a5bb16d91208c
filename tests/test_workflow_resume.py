"""Killing a training job and rerunning Snakemake resumes from its rolling checkpoint.

The checkpoint lives under resources/checkpoints/ (not a declared output), so Snakemake's
clean-up of the failed job's outputs leaves it in place, and the rerun's training log says
where it resumed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.workflow_helpers import (
    make_workdir,
    offline_env,
    run_snakemake,
    snakemake_exe,
    write_config,
)

SESSION = "sub-T_ses-CO-20130819"
RUN = f"cross_subject/rpnt_scratch/{SESSION}/alltrials/seed0"
TARGET = f"results/resume/bin20ms/models/{RUN}"
CKPT = f"resources/checkpoints/resume/bin20ms/finetune/{RUN}"
LOG = f"logs/resume/bin20ms/finetune/{RUN}.log"


def _our_training_pids(session_leader: int) -> list[int]:
    """PIDs of `rpnt finetune` processes in the process session we started."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            sid = os.getsid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
        if sid == session_leader and "rpnt finetune" in cmd and "/bin/sh" not in cmd \
                and "bash" not in cmd.split(" ")[0]:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_training_job_resumes_from_checkpoint(tmp_path):
    wd = make_workdir(tmp_path / "wf")
    write_config(
        wd, "resume", "config/tiny.yaml", benchmark="resume", models=["rpnt_scratch"],
        budgets=["all"], model_budgets={},
        scenarios={"cross_subject": {"target": {"subject": ["T"]}}},
        finetune={"train": {"steps": 300, "batch_size": 8, "lr": 1.0e-3,
                            "warmup_steps": 5, "eval_every": 1000, "checkpoint_every": 10,
                            "patience": 0}},
    )
    args = [TARGET, "--cores", "1", "--configfile", "config/resume.yaml"]
    # The store first (simulate + ingest of the target session), then the training job.
    run_snakemake(wd, f"resources/stores/sim_tiny/bin20ms/{SESSION}.zarr", "--cores", "2",
                  "--configfile", "config/resume.yaml", timeout=300)
    proc = subprocess.Popen([snakemake_exe(), *args], cwd=wd, env=offline_env(wd),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        ckpt = wd / CKPT / "last.pt"
        deadline = time.monotonic() + 240
        while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        assert ckpt.exists(), f"no checkpoint appeared at {ckpt}:\n{(wd / LOG).read_text()}"
        time.sleep(1.0)  # let it get a few more steps past the first checkpoint
        pids = _our_training_pids(proc.pid)
        assert pids, "the training process was not found"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # a lost node: no chance to save anything more
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=60)
    assert proc.returncode != 0, out
    assert not (wd / TARGET).exists()  # the failed job's declared output is gone...
    assert ckpt.exists()               # ...its rolling checkpoint is not

    # The rerun (same config) finds the checkpoint and finishes from there.
    run_snakemake(wd, *args, timeout=300)
    text = (wd / LOG).read_text(errors="replace")
    resumed = re.search(r"resumed from (\S+) at step (\d+)", text)
    assert resumed, f"the rerun did not resume:\n{text}"
    assert int(resumed.group(2)) >= 10
    assert (wd / resumed.group(1)).resolve() == (wd / CKPT).resolve()
    assert (wd / TARGET / "meta.json").exists()
