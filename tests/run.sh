#!/usr/bin/env bash
# The test command of rpnt (README): bash tests/run.sh
#
# Self-sufficient on a fresh machine: installs the package with its dev and peer extras,
# the SLURM packages for the integration test (when root and apt-get is available), then
# runs ruff, `snakemake --lint`, `lint-imports` (the layers of rpnt) and the whole pytest
# suite: the end-to-end tiny workflow (and what config changes would rerun after it), a
# wheel installed into a scratch virtual environment, and the SLURM tests included. Extra
# arguments go to pytest (e.g. `-k workflow`).
#
# Runs in the environment of `python` on PATH (an activated venv or conda env, or a bare
# interpreter), or of $PYTHON when set (`PYTHON=/path/to/venv/bin/python bash tests/run.sh`):
# that interpreter's scripts folder goes first on PATH, so that ruff, lint-imports,
# snakemake and the `rpnt` command the workflow's jobs run are the ones installed with it.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python}
PATH="$("$PY" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
export PATH

export DANDI_NO_ET=1 DANDI_CACHE=ignore MPLBACKEND=Agg
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n=== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

step "install rpnt (pip install -e '.[dev,peers]')"
"$PY" -m pip install --quiet --root-user-action=ignore -e '.[dev,peers]'

step "SLURM packages for the integration test"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null \
            || ! command -v sbatch >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client \
            >/dev/null
    fi
    echo "slurm: $(slurmctld -V 2>/dev/null || echo missing)"
else
    echo "!!! not root or no apt-get: the SLURM integration test will be SKIPPED !!!"
fi

step "ruff"
"$PY" -m ruff check .

step "snakemake --lint"
# Clean but for one accepted lint: rules name no conda env (docs/workflow.md).
"$PY" tests/workflow_helpers.py lint

step "lint-imports (the layers of rpnt, pyproject.toml [tool.importlinter])"
lint-imports  # import-linter has no `python -m` entry; PATH above makes it this env's

step "pytest"
# Two workers (pytest-xdist), each taking whole modules (--dist loadscope: a module-scoped
# fixture, such as the tiny workflow run, runs once) in collection order, where conftest.py
# puts the longest modules first (--no-loadscope-reorder: xdist would otherwise start with
# the modules that have the most tests). The SLURM tests mostly wait on the scheduler and
# most tests use one core (conftest.py), so the two cores are used while they wait.
# `-n 0` (last wins) runs everything in one process.
"$PY" -m pytest -q -rs --durations=15 -n 2 --dist loadscope --no-loadscope-reorder "$@"
