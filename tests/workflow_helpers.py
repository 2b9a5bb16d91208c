"""Helpers for the workflow tests: a scratch copy of the workflow and a Snakemake runner.

Each test runs Snakemake in its own folder holding a copy of ``Snakefile``, ``workflow/``,
``config/`` and ``environment.yml``, so that ``resources/``, ``results/`` and ``logs/``
of a test never touch the checkout (other tests and engineers share it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def snakemake_exe() -> str:
    """The ``snakemake`` next to this Python (the one rpnt was installed with)."""
    here = Path(sys.executable).parent / "snakemake"
    return str(here) if here.exists() else (shutil.which("snakemake") or "snakemake")


def make_workdir(dst: str | Path) -> Path:
    """Copy the workflow into ``dst`` (created) and return it."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    shutil.copy2(REPO / "environment.yml", dst / "environment.yml")
    shutil.copytree(REPO / "workflow", dst / "workflow", dirs_exist_ok=True)
    shutil.copytree(REPO / "config", dst / "config", dirs_exist_ok=True)
    if (REPO / "slurm").is_dir():
        shutil.copytree(REPO / "slurm", dst / "slurm", dirs_exist_ok=True)
    return dst


def write_config(workdir: Path, name: str, base: str, **overrides) -> Path:
    """A config file ``config/<name>.yaml``: ``base`` (a config file) with top-level keys
    replaced by ``overrides``."""
    cfg = yaml.safe_load((workdir / base).read_text())
    cfg.update(overrides)
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def offline_env(**extra: str) -> dict[str, str]:
    """Offline, single-threaded environment for Snakemake and the rpnt jobs it starts."""
    env = {**os.environ, "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           # Nothing in a dry run or an offline run may reach a DANDI server.
           "RPNT_DANDI_API_URL": "http://127.0.0.1:9/api"}
    env.update(extra)
    return env


def run_snakemake(workdir: Path, *args: str, timeout: float = 600,
                  check: bool = True, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess:
    """Run ``snakemake ARGS`` in ``workdir``; on failure show the output and job logs."""
    cmd = [snakemake_exe(), *args]
    proc = subprocess.run(cmd, cwd=workdir, env=env or offline_env(), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}\n"
                             f"{failed_logs(workdir)}")
    return proc


def failed_logs(workdir: Path, n: int = 20) -> str:
    """Tails of the job logs (logs/**.log) that mention an error."""
    out = []
    for log in sorted(Path(workdir, "logs").rglob("*.log")):
        text = log.read_text(errors="replace")
        if "rror" in text or "Traceback" in text:
            out.append(f"--- {log}\n" + "\n".join(text.splitlines()[-n:]))
    return "\n".join(out)


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table."""
    m = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\ntotal", output, re.S)
    if not m:
        raise AssertionError(f"no 'Job stats' table in Snakemake's output:\n{output[-3000:]}")
    counts = {}
    for line in m.group(1).splitlines():
        name, n = line.split()
        counts[name] = int(n)
    return counts
