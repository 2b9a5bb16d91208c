"""The layers contract of pyproject.toml covers every module and package of rpnt/.

``lint-imports`` (run by tests/run.sh) checks that no layer imports a higher one; this
test makes sure a new module cannot escape the contract by not being named in it.
"""

import ast
import re
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


def _layers() -> list[list[str]]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (contract,) = [c for c in cfg["tool"]["importlinter"]["contracts"]
                   if c["type"] == "layers"]
    return [[n.strip() for n in layer.split("|")] for layer in contract["layers"]]


def _where(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """(layer index, sibling) of an rpnt module: 0 is the top layer."""
    for i, layer in enumerate(layers):
        for name in layer:
            if module == name or module.startswith(name + "."):
                return i, name
    return None


def _hidden_imports(path: Path) -> list[tuple[int, str]]:
    """rpnt modules named where import-linter cannot see them: a string that is a module
    name (for importlib), the constant prefix of an f-string (``f"rpnt.commands.{x}"``),
    or Python code in a string (``from rpnt.x import y`` run by a child process).
    Docstrings are prose and are skipped."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            if re.fullmatch(r"rpnt(\.\w+)+", node.value):
                found.append((node.lineno, node.value))
            for m in re.finditer(r"^\s*(?:from|import)\s+(rpnt(?:\.\w+)*)", node.value, re.M):
                found.append((node.lineno, m.group(1)))
        elif isinstance(node, ast.JoinedStr) and node.values \
                and isinstance(node.values[0], ast.Constant):
            head = str(node.values[0].value)
            if re.fullmatch(r"rpnt(\.\w+)+\.", head):
                found.append((node.lineno, head.rstrip(".")))
    return found


def test_no_upward_import_hidden_in_a_string():
    layers = _layers()
    bad = []
    for path in sorted((ROOT / "rpnt").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = _where(module, layers)
        for line, target in _hidden_imports(path):
            dst = _where(target, layers)
            if src is None or dst is None or dst[1] == src[1]:
                continue  # the package itself, or outside the contract (test above)
            if dst[0] <= src[0]:  # a higher layer, or an independent sibling
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module} names {target}")
    assert not bad, "upward or sideways imports hidden from lint-imports:\n" + "\n".join(bad)


def test_hidden_import_scan_finds_what_it_should(tmp_path):
    """The scan itself: an importlib name, an f-string prefix and code in a string."""
    p = tmp_path / "m.py"
    p.write_text('"""Docstring: from rpnt.cli import main."""\n'
                 'import importlib\n'
                 'importlib.import_module("rpnt.workflow")\n'
                 'x = f"rpnt.commands.{1}"\n'
                 'CHILD = """\nimport sys\nfrom rpnt.cli import main\n"""\n')
    assert sorted(t for _, t in _hidden_imports(p)) == ["rpnt.cli", "rpnt.commands",
                                                        "rpnt.workflow"]
