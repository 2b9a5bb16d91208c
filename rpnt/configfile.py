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
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise RpntError(f"{path}: config file not found; pass the workflow's config "
                        "(results/<benchmark>/config.resolved.yaml)") from exc
    except yaml.YAMLError as exc:
        raise RpntError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the "
                        "file") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RpntError(f"{path}: a config file must hold a mapping at the top level")
    return data


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
