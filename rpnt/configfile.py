"""Read a YAML config file: the one reader of workflow configs and resolved configs."""

from __future__ import annotations

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
