"""The configured dataset: its registry entry, where its NWB files live, and the sessions
(and each scenario's target sessions) known before anything is downloaded or simulated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from rpnt.data.scenarios import scenario_from_config
from rpnt.errors import RpntError
from rpnt.registry.entries import get_dataset, load_registry
from rpnt.registry.entries import planned_sessions as registry_sessions
from rpnt.sim.presets import session_ids


def dataset_entry(cfg: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """The registry entry of the configured dataset (errors name the config key)."""
    try:
        return get_dataset(cfg["dataset"], cfg["registry"])
    except RpntError as exc:
        raise RpntError(f"{source}: dataset {cfg['dataset']!r}: {exc}") from None


def dataset_names(registry: str | Path, source: str) -> list[str]:
    """Names of the registry's datasets of one ``source`` (dandi | simulated | local)."""
    return sorted(n for n, e in load_registry(registry).items() if source_type(e) == source)


def source_type(entry: Mapping[str, Any]) -> str:
    """``dandi``, ``simulated`` or ``local`` (the registry entry's ``source.type``)."""
    return entry["source"]["type"]


def is_simulated(entry: Mapping[str, Any]) -> bool:
    """A simulated dataset is made by ``rpnt simulate``, not downloaded."""
    return source_type(entry) == "simulated"


def raw_root(entry: Mapping[str, Any]) -> str:
    """The dandiset-like folder holding a dataset's NWB files.

    Simulated and downloaded datasets live in ``resources/raw/<dataset>``; a ``local``
    registry entry points at the user's own folder, used in place.
    """
    if source_type(entry) == "local":
        return str(entry["source"]["folder"])
    return f"resources/raw/{entry['name']}"


def planned_sessions(entry: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """Sessions known before download: simulator presets and committed asset manifests.

    ``None`` means the dataset has no committed asset manifest: the workflow then lists
    its assets at run time (checkpoint ``list_assets``) and plans from that TSV.
    """
    sessions = registry_sessions(entry, simulated=session_ids)
    return None if sessions is None else [dict(s) for s in sessions]


def sessions_from_asset_tsv(entry: Mapping[str, Any], path: str | Path) -> list[dict[str, Any]]:
    """Session records from an asset list written at run time (checkpoint list_assets)."""
    return [dict(s) for s in registry_sessions(dict(entry), manifest=path) or []]


def target_sessions(
    cfg: Mapping[str, Any], sessions: Sequence[Mapping[str, Any]], source: str = "config"
) -> dict[str, list[str]]:
    """Scenario name -> target session ids (table order), planned from session records.

    The scenarios are resolved by :func:`rpnt.data.scenarios.scenario_from_config`, the
    same code the training commands run on the manifest, over a session table built from
    the records (session-level keys only: units are not known before ingest).
    """
    table = pd.DataFrame(
        [{"dataset": cfg["dataset"], "session": s["session"], "subject": s.get("subject"),
          "task": s.get("task"), "date": s.get("date"), "split": s.get("split") or ""}
         for s in sessions],
        columns=["dataset", "session", "subject", "task", "date", "split"],
    )
    out: dict[str, list[str]] = {}
    for name in cfg["scenarios"]:
        try:
            out[name] = list(scenario_from_config(cfg, name, table).target_sessions)
        except RpntError as exc:
            raise RpntError(f"{source}: {exc}; {_what_exists(cfg, table)}") from None
    return out


def _what_exists(cfg: Mapping[str, Any], table: Any) -> str:
    """The values a scenario selector can take on this dataset, for error messages."""
    def values(col: str) -> str:
        return ", ".join(sorted({str(v) for v in table[col] if v is not None})) or "none"

    dates = sorted(str(d) for d in table["date"] if d is not None)
    span = f"{dates[0]} to {dates[-1]}" if dates else "unknown"
    return (f"dataset {cfg['dataset']} ({cfg['registry']}) has subjects: "
            f"{values('subject')}; tasks: {values('task')}; dates: {span}; "
            f"{len(table)} sessions")
