"""Helpers for the workflow tests: a scratch checkout of the workflow and a Snakemake runner.

Each test runs Snakemake in its own folder: a git repository holding a copy of
``Snakefile``, ``workflow/``, ``config/``, ``slurm/`` and the ``rpnt`` package, committed,
so that ``resources/``, ``results/`` and ``logs/`` of a test never touch the checkout
(other tests and engineers share it). Snakemake and the ``rpnt`` command run with
``PYTHONPATH=<that folder>``: the workflow accepts only the rpnt of the checkout whose
Snakefile runs, and outputs record that folder's commit.
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
    """Copy the workflow and the rpnt package into ``dst`` (created), commit them in a
    fresh git repository there, and return it."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("workflow", "config", "slurm", "rpnt"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, dst / folder, dirs_exist_ok=True, symlinks=True,
                            ignore=ignore)
    (dst / ".gitignore").write_text("/resources/\n/results/\n/logs/\n/benchmarks/\n"
                                    ".snakemake/\n__pycache__/\n")
    git = ["git", "-C", str(dst), "-c", "user.name=rpnt tests",
           "-c", "user.email=tests@rpnt.invalid"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "workflow under test"]):
        subprocess.run([*git, *cmd], check=True, capture_output=True, timeout=60)
    return dst


def head_commit(workdir: Path) -> str:
    """The commit of a workdir made by :func:`make_workdir`."""
    return subprocess.run(["git", "-C", str(workdir), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()


def write_config(workdir: Path, name: str, base: str, **overrides) -> Path:
    """A config file ``config/<name>.yaml``: ``base`` (a config file) with top-level keys
    replaced by ``overrides``."""
    cfg = yaml.safe_load((workdir / base).read_text())
    cfg.update(overrides)
    path = workdir / "config" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def offline_env(workdir: Path, **extra: str) -> dict[str, str]:
    """Offline, single-threaded environment for Snakemake and the rpnt jobs it starts,
    importing rpnt from ``workdir`` (a folder made by :func:`make_workdir`)."""
    env = {**os.environ, "PYTHONPATH": str(Path(workdir).resolve()),
           "DANDI_NO_ET": "1", "DANDI_CACHE": "ignore", "MPLBACKEND": "Agg",
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
    proc = subprocess.run(cmd, cwd=workdir, env=env or offline_env(workdir),
                          capture_output=True, text=True, timeout=timeout)
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


#: The one kind of lint the workflow accepts (docs/workflow.md "Software environment"):
#: every rule runs the rpnt command of the environment Snakemake runs in (rpnt depends on
#: snakemake), so no rule names a conda environment or container of its own.
ACCEPTED_LINT = "Specify a conda environment or container for each rule."


def lint_problems(workdir: Path, env: dict[str, str] | None = None) -> list[str]:
    """``snakemake --lint`` findings other than :data:`ACCEPTED_LINT` (empty: clean)."""
    proc = run_snakemake(workdir, "--lint", check=False, env=env)
    text = proc.stdout + proc.stderr
    if "Congratulations, your workflow is in a good condition" in text:
        return []
    titles = re.findall(r"^ {4}\* (.+?):?$", text, re.M)
    if not titles:  # lint did not run at all
        return [f"snakemake --lint exited {proc.returncode}: {text[-2000:]}"]
    return sorted({t for t in titles if t != ACCEPTED_LINT})


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


if __name__ == "__main__":  # tests/run.sh: python tests/workflow_helpers.py lint
    if sys.argv[1:] != ["lint"]:
        sys.exit("usage: python tests/workflow_helpers.py lint")
    problems = lint_problems(REPO, env=dict(os.environ))
    for line in problems:
        print(f"lint: {line}")
    print(f"snakemake --lint: {'clean' if not problems else 'FAILED'} (accepted everywhere: "
          f"{ACCEPTED_LINT!r}, see docs/workflow.md)")
    sys.exit(1 if problems else 0)
