"""rpnt installs as a package: a wheel built from this checkout, installed (not editable)
into a scratch virtual environment, validates a config and simulates without the checkout.

The scratch environment gets the pinned dependencies, torch included, from the environment
the tests run in (a venv, a conda env or a bare interpreter): a `.pth` file in it lists
that environment's site-packages folders. Not `venv --system-site-packages`: that shows
the base interpreter's packages, which inside a venv are not the venv's (the test then
failed with ModuleNotFoundError wherever the dependencies were installed into a venv). pip
installs nothing but the wheel (`--no-deps --no-index`), so it can never pull another
torch.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.workflow_helpers import REPO

pytestmark = [pytest.mark.slow]


def running_site_dirs() -> list[str]:
    """The site-packages folders of the environment running this test, where its packages
    are installed: a venv's own (and its base's only if the venv was made with
    --system-site-packages), a conda env's, a bare interpreter's, and the user site when
    this interpreter reads it."""
    paths = sysconfig.get_paths()
    dirs = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(os.path.realpath(d) for d in dirs) if os.path.isdir(d)]


def scratch_venv(venv: Path, cwd: Path, env: dict[str, str]) -> Path:
    """A virtual environment at ``venv`` that imports the running environment's packages;
    returns its python.

    Its ``.pth`` file lists the running environment's site-packages folders as plain paths,
    after the venv's own site-packages: a package installed into the venv wins, and the
    ``.pth`` files in those folders are not run (the editable install of the checkout is
    one: it would put the checkout's rpnt ahead of the wheel's). Made without pip (no
    ensurepip needed): the running environment's pip, on that path, installs into it.
    """
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd, env)
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd, env).strip()
    Path(purelib, "_rpnt_test_running_env.pth").write_text(
        "".join(f"{d}\n" for d in running_site_dirs()))
    return py


def _has_build_backend() -> bool:
    """Whether the running environment has the build backend pyproject.toml names."""
    try:
        return int(version("setuptools").split(".")[0]) >= 68
    except Exception:  # not installed, or an unparsable version
        return False


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
    # With the running environment's setuptools when it has one (offline); else pip builds
    # in isolation, fetching setuptools as `pip install -e .` (tests/run.sh) just did.
    offline = ["--no-index", "--no-build-isolation"] if _has_build_backend() else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-w", str(dist),
          str(src)], tmp_path, env)
    wheel = next(dist.glob("rpnt-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("rpnt/schemas/config.schema.yaml", "rpnt/schemas/datasets.schema.yaml",
                    "rpnt/config/datasets.yaml", "rpnt/config/assets/000688.tsv"):
        assert shipped in names, shipped

    venv = tmp_path / "venv"
    py = scratch_venv(venv, tmp_path, env)
    rpnt = venv / "bin" / "rpnt"
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
