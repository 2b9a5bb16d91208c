"""The layers contract of pyproject.toml covers every module and package of rpnt/.

``lint-imports`` (run by tests/run.sh) checks that no layer imports a higher one; this
test makes sure a new module cannot escape the contract by not being named in it.
"""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layer_names() -> set[str]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in cfg["tool"]["importlinter"]["contracts"]
                   if c["type"] == "layers"]
    names = set()
    for layer in contract["layers"]:
        names |= {n.strip() for n in layer.replace(":", "|").split("|")}
    return names


def test_every_module_of_rpnt_is_in_a_layer():
    pkg = ROOT / "rpnt"
    found = {f"rpnt.{p.stem}" for p in pkg.glob("*.py") if p.stem != "__init__"}
    found |= {f"rpnt.{p.name}" for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(found - _layer_names())
    assert not missing, f"add {missing} to the layers contract in pyproject.toml"
    stale = sorted(_layer_names() - found)
    assert not stale, f"the layers contract names modules that do not exist: {stale}"
