"""Provenance: what produced an output, recorded in every store, checkpoint and table."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import rpnt

#: Packages whose versions are recorded with every output.
TRACKED_PACKAGES = (
    "numpy", "torch", "pynwb", "hdmf", "h5py", "zarr", "xarray", "pandas", "dandi",
    "snakemake", "torch-brain",
)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


@functools.cache
def git_commit() -> str:
    """The commit of the checkout rpnt is imported from ("+dirty" if a tracked file is
    modified), or "unknown" when it is not imported from a git checkout (a wheel).

    Only the checkout whose top folder holds this ``rpnt`` package counts: an installed
    copy inside some other repository (a virtual environment in a clone) is "unknown",
    not that repository's commit. The workflow runs only when the ``rpnt`` it calls is
    imported from its own checkout (:func:`rpnt.workflow.check_checkout`), so this is
    the commit of the checkout that runs the workflow.
    """
    root = Path(rpnt.__file__).resolve().parent.parent
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root:
            return "unknown"
        sha = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def poyo_available() -> bool:
    """True when the POYO peer (``torch-brain``, the ``peers`` extra) can be imported.

    Here, in the lowest layer and without importing torch, so that the workflow (which
    plans POYO jobs only when it is installed), the decoders and the tables share it.
    """
    try:
        return importlib.util.find_spec("torch_brain") is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def package_versions() -> dict[str, str]:
    """Installed versions of :data:`TRACKED_PACKAGES` (absent ones are omitted)."""
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def config_hash(config: Any) -> str:
    """A stable short hash of a JSON-serialisable config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def provenance(config: Any | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: rpnt version, git commit, package versions, config hash, extras."""
    rec: dict[str, Any] = {
        "rpnt_version": rpnt.__version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    if config is not None:
        rec["config_hash"] = config_hash(config)
    rec.update(extra)
    return rec
