"""Where a file came from: the dataset registry entry and the asset manifest of ``rpnt fetch``.

Both are optional. The registry (``config/datasets.yaml``, owned by rpnt.acquire) is read
as plain dicts, leniently: it may be ``{datasets: [...]}``, ``{datasets: {name: {...}}}``,
a list, or a mapping of name -> entry; unknown keys are ignored here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rpnt.errors import RpntError


def load_registry_entry(registry: str | Path, name: str | None) -> dict[str, Any]:
    """The registry entry called ``name`` (or the only entry if ``name`` is None)."""
    import yaml

    registry = Path(registry)
    try:
        doc = yaml.safe_load(registry.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RpntError(f"{registry}: cannot read the dataset registry ({exc})") from exc
    items = doc.get("datasets", doc) if isinstance(doc, dict) else doc
    entries: dict[str, dict] = {}
    if isinstance(items, list):
        entries = {str(e.get("name")): e for e in items if isinstance(e, dict)}
    elif isinstance(items, dict):
        for k, e in items.items():
            if isinstance(e, dict):
                entries[str(e.get("name", k))] = {"name": str(e.get("name", k)), **e}
    if name is None:
        if len(entries) == 1:
            return next(iter(entries.values()))
        raise RpntError(f"{registry}: holds {len(entries)} datasets; pass --dataset NAME "
                        f"(one of {', '.join(sorted(entries))})")
    if name not in entries:
        raise RpntError(f"{registry}: no dataset named {name!r} (have: "
                        f"{', '.join(sorted(entries)) or 'none'})")
    return entries[name]


def find_asset(manifest: str | Path, nwb: str | Path) -> dict[str, str] | None:
    """The asset-manifest row whose ``path`` is the trailing part of ``nwb``'s path, or None.

    Matching compares whole path components from the end (``sub-C/sub-C_ses-...nwb``), so a
    file is never matched by a substring of an unrelated path.
    """
    import pandas as pd

    manifest = Path(manifest)
    try:
        df = pd.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise RpntError(f"{manifest}: cannot read the asset manifest ({exc})") from exc
    if "path" not in df.columns:
        raise RpntError(f"{manifest}: asset manifest has no 'path' column; write it with "
                        "rpnt fetch")
    parts = Path(nwb).resolve().parts
    best = None
    for row in df.to_dict("records"):
        p = Path(row["path"]).parts
        if p and len(p) <= len(parts) and tuple(parts[-len(p):]) == tuple(p):
            if best is None or len(p) > len(Path(best["path"]).parts):
                best = row
    return best
