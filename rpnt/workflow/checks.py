"""Stops before the first job: this checkout's rpnt, an executor this host can use, and
:func:`stop_on_error` turning a one-line :class:`RpntError` into Snakemake's exit."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import rpnt
from rpnt.errors import RpntError


@contextlib.contextmanager
def stop_on_error() -> Iterator[None]:
    """Turn an :class:`RpntError` into ``SystemExit(message)``: under Snakemake, one line
    on stderr and exit status 1 before any job starts, as the ``rpnt`` command prints."""
    try:
        yield
    except RpntError as exc:
        raise SystemExit(str(exc)) from None


def check_checkout(workflow_dir: str | Path) -> None:
    """Stop unless ``rpnt`` is imported from the checkout whose Snakefile is running.

    Checks the Snakemake process's own ``import rpnt`` (the Snakefile plans with it) and
    the ``rpnt`` command on PATH (every job runs it), which may come from another
    environment. Importing through ``PYTHONPATH=<checkout>`` counts as this checkout.
    """
    here = Path(workflow_dir).resolve()
    pkg = here / "rpnt"
    fix = f"run `pip install -e .` in {here} (or export PYTHONPATH={here})"
    if not (pkg / "__init__.py").is_file():
        raise RpntError(f"{here}: this workflow folder has no rpnt package; run the "
                        "workflow from a clone of the rpnt repository")
    mine = Path(rpnt.__file__).resolve().parent
    if mine != pkg.resolve():
        raise RpntError(f"snakemake imports rpnt from {mine}, not from this checkout "
                        f"({here}); {fix}")
    exe = shutil.which("rpnt")
    if exe is None:
        raise RpntError(f"no `rpnt` command on PATH; {fix}")
    try:
        proc = subprocess.run([exe, "config", "where"], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RpntError(f"`{exe} config where` could not run ({exc}); {fix}") from exc
    where = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if not where:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RpntError(f"`{exe} config where` failed ({last}); {fix}")
    if Path(where[0]).resolve() != pkg.resolve():
        raise RpntError(f"the `rpnt` command on PATH ({exe}) imports rpnt from {where[0]}, "
                        f"not from this checkout ({here}); {fix}")


def check_executor(executor: str) -> None:
    """Stop before the first job when the executor cannot work on this host."""
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise RpntError("the SLURM executor (--profile slurm) needs `sbatch`, and there is "
                        "none on PATH on this host: run snakemake on a SLURM login node, or "
                        "locally with `snakemake --cores N`")
