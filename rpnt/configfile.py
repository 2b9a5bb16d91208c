"""Read a YAML config file (the one reader of workflow configs and resolved configs), merge
configs, and the model settings of a row variant."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rpnt.errors import RpntError


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file is an empty mapping).

    RpntError naming the file when it is missing, is not YAML or holds no mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise RpntError(f"{path}: config file not found; check the path (the shipped "
                        "configs are config/*.yaml and config/benchmarks/*.yaml; a job's "
                        "is results/<benchmark>/bin<B>ms/config.resolved.yaml)") from exc
    except IsADirectoryError as exc:
        raise RpntError(f"{path}: is a folder, not a config file; name a .yaml file "
                        "in it") from exc
    except yaml.YAMLError as exc:
        raise RpntError(f"{path}{_yaml_where(exc)}: not valid YAML ({_yaml_problem(exc)}); "
                        "fix the file there (indent with spaces, not tabs; close every "
                        "bracket and quote)") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RpntError(f"{path}: a config file must hold a mapping at the top level")
    return data


def _yaml_where(exc: yaml.YAMLError) -> str:
    """``:LINE:COLUMN`` (1-based) of a YAML error, or "" when PyYAML gives no place."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return "" if mark is None else f":{mark.line + 1}:{mark.column + 1}"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's one-phrase reason (e.g. "found character '\\t' that cannot start any
    token"), not its multi-line excerpt of the file."""
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = "; ".join(p for p in parts if p)
    return text or str(exc).splitlines()[0]


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge as Snakemake merges ``--configfile``s: mappings recursively, else replace."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def model_section(cfg: Mapping[str, Any], variant: str | None = None,
                  source: str = "config") -> dict[str, Any]:
    """A config's ``model`` mapping, with the model overrides of ``variants.<variant>``
    merged in (nested mappings key by key) when a variant is named."""
    d = cfg.get("model") or {}
    if not isinstance(d, Mapping):
        raise RpntError(f"{source}: model must be a mapping")
    if variant is None:
        return copy.deepcopy(dict(d))
    variants = cfg.get("variants") or {}
    if variant not in variants:
        raise RpntError(f"{source}: variants: no variant named {variant!r}; known: "
                        f"{sorted(variants)}")
    over = (variants[variant] or {}).get("model") or {}
    if not isinstance(over, Mapping):
        raise RpntError(f"{source}: variants.{variant}.model must be a mapping")
    return merge(d, over)
