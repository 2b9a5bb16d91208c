"""rpnt installs as a package: a wheel built from this checkout, installed (not editable)
into a scratch virtual environment, validates a config and simulates without the checkout.

The scratch environment sees the machine's packages (`venv --system-site-packages`) for
the pinned dependencies, torch included; pip installs nothing but the wheel (`--no-deps
--no-index`), so it can never pull another torch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.workflow_helpers import REPO

pytestmark = [pytest.mark.slow]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.timeout(900)
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    # Build from a copy: an in-tree build would leave build/ in the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("rpnt", "config"):
        shutil.copytree(REPO / folder, src / folder, symlinks=True, ignore=ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
          "--no-build-isolation", "-w", str(dist), str(src)], tmp_path, env)
    wheel = next(dist.glob("rpnt-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("rpnt/schemas/config.schema.yaml", "rpnt/schemas/datasets.schema.yaml",
                    "rpnt/config/datasets.yaml", "rpnt/config/assets/000688.tsv"):
        assert shipped in names, shipped

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], tmp_path, env)
    py, rpnt = venv / "bin" / "python", venv / "bin" / "rpnt"
    _run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
          "--ignore-installed", str(wheel)], tmp_path, env)

    # Nothing of the checkout is reachable from here: another folder, no PYTHONPATH.
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(rpnt), "config", "where"], work, env).strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where
    (work / "bench.yaml").write_text((REPO / "config/tiny.yaml").read_text())
    assert "bench.yaml: valid" in _run([str(rpnt), "config", "validate", "bench.yaml"],
                                       work, env)
    # The registry the package ships, with its committed asset manifest (000688).
    out = _run([str(py), "-c", "from rpnt.registry.entries import default_registry_path, "
                "planned_sessions, get_dataset; p = default_registry_path(); print(p); "
                "print(len(planned_sessions(get_dataset('perich_miller_2018'))))"], work, env)
    path, n = out.split()
    assert Path(path).resolve().is_relative_to(venv.resolve()) and int(n) == 111
    _run([str(rpnt), "simulate", "--preset", "tiny", "--out", str(work / "sim")], work, env)
    assert len(list((work / "sim").rglob("*.nwb"))) == 5
