"""The dataset registry ``config/datasets.yaml``: load, validate, plan sessions.

Every dataset the workflow can use is one entry (see ``docs/datasets.md``). The registry
is validated against ``rpnt/schemas/datasets.schema.yaml`` (unknown keys rejected);
relative paths inside it (``source.manifest``, ``source.folder``) are resolved against the
directory holding the registry file, so the returned entries carry absolute paths.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rpnt.errors import RpntError
from rpnt.registry.assets import read_asset_manifest
from rpnt.registry.naming import parse_session_id, session_id_from_asset_path, session_record

__all__ = [
    "DEFAULT_API_URL", "get_dataset", "load_registry", "parse_session_id", "pinned_version",
    "planned_sessions", "registry_entry", "resolve_api_url", "select_paths",
    "session_id_from_asset_path", "validate_registry",
]

# Shipped inside the package (importlib.resources), so a wheel install finds them too;
# rpnt/config is the checkout's config/ folder (a symlink the wheel resolves).
SCHEMA_PATH = Path(str(resources.files("rpnt") / "schemas" / "datasets.schema.yaml"))
SHIPPED_REGISTRY = Path(str(resources.files("rpnt") / "config" / "datasets.yaml"))
#: the public DANDI archive; lowest precedence (see :func:`resolve_api_url`)
DEFAULT_API_URL = "https://api.dandiarchive.org/api"
#: environment variable overriding the registry's API URL (``--api-url`` beats it)
API_URL_ENV = "RPNT_DANDI_API_URL"
#: environment variable naming the registry file when no path is given
REGISTRY_ENV = "RPNT_REGISTRY"
#: the registry of a checkout, relative to its root (the workflow configs' default)
LOCAL_REGISTRY = Path("config") / "datasets.yaml"


def default_registry_path() -> Path:
    """``$RPNT_REGISTRY``, else ``./config/datasets.yaml``, else the copy rpnt ships."""
    env = os.environ.get(REGISTRY_ENV)
    if env:
        return Path(env)
    return LOCAL_REGISTRY if LOCAL_REGISTRY.is_file() else SHIPPED_REGISTRY


@functools.cache
def _schema() -> dict:
    if not SCHEMA_PATH.is_file():
        raise RpntError(f"{SCHEMA_PATH}: registry schema missing; reinstall rpnt")
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _where(doc: dict, path: list) -> str:
    """``datasets[3] (nlb_mc_rtt) .dandi.version`` for an error path."""
    if len(path) >= 2 and path[0] == "datasets" and isinstance(path[1], int):
        i = path[1]
        try:
            name = doc["datasets"][i].get("name", "?")
        except (AttributeError, IndexError, KeyError, TypeError):
            name = "?"
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[2:])
        return f"datasets[{i}] ({name}){rest or ''}"
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "top level"


def validate_registry(doc: Any, source: str | Path = "registry") -> None:
    """Raise :class:`RpntError` naming the entry and key of the first problem in ``doc``."""
    import jsonschema  # here: a third of a second to import; rpnt ingest reads the registry

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(e.absolute_path), e.message))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        path = list(err.absolute_path)
        where = _where(doc if isinstance(doc, dict) else {}, path)
        hint = "see docs/datasets.md for the registry format"
        if "allow_draft" in err.message or (path and path[-1] == "allow_draft"):
            hint = ("'version: draft' is mutable: pin a published version, or set "
                    "'allow_draft: true' to accept it knowingly")
        elif path and path[-1] == "assets":
            hint = "'assets:' takes exactly one of 'glob: PATTERN' or 'paths: [...]'"
        raise RpntError(f"{source}: {where}: {err.message}; {hint}")
    names = [e["name"] for e in doc["datasets"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RpntError(f"{source}: dataset name(s) {dup} defined more than once; names "
                        "must be unique")


def load_registry(path: str | Path | None = None) -> dict[str, dict]:
    """Load and validate the registry: dataset name -> entry (a deep copy, paths absolute)."""
    # The configs' default (config/datasets.yaml) read outside a checkout, e.g. from a
    # wheel install, is the registry rpnt ships, as when no path is given at all.
    if path is None or (Path(path) == LOCAL_REGISTRY and not Path(path).is_file()):
        path = default_registry_path()
    path = Path(path)
    if not path.is_file():
        raise RpntError(f"{path}: dataset registry not found; pass --registry PATH or set "
                        f"{REGISTRY_ENV}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RpntError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from exc
    validate_registry(doc, path)
    base = path.resolve().parent
    out: dict[str, dict] = {}
    for entry in copy.deepcopy(doc["datasets"]):
        src = entry["source"]
        if src.get("manifest"):
            src["manifest"] = str(base / src["manifest"])
        if src.get("folder"):
            src["folder"] = str(base / src["folder"])
        entry["registry"] = str(path)
        out[entry["name"]] = entry
    return out


def get_dataset(name: str, path: str | Path | None = None) -> dict:
    """One validated registry entry; unknown names list the known ones."""
    reg = load_registry(path)
    if name not in reg:
        where = path if path is not None else default_registry_path()
        raise RpntError(f"{where}: no dataset named {name!r}; known: {sorted(reg)}")
    return reg[name]


def pinned_version(entry: dict) -> str:
    """The DANDI version to use; refuses an unpinned entry and an unpermitted draft."""
    d = entry["source"]
    version, reg = d.get("version"), entry.get("registry", "config/datasets.yaml")
    if not version:
        raise RpntError(
            f"{reg}: dataset {entry['name']} (DANDI:{d['dandiset']}) has no pinned version; "
            f"pin it by setting 'version:' in its 'source:' block to a published version "
            f"listed at https://dandiarchive.org/dandiset/{d['dandiset']} (or set "
            "'version: draft' with 'allow_draft: true' to accept the mutable draft)")
    if version == "draft" and not d.get("allow_draft", False):
        raise RpntError(
            f"{reg}: dataset {entry['name']} uses the mutable 'draft' version; pin a "
            "published version, or set 'allow_draft: true' to accept it knowingly")
    return version


def resolve_api_url(entry: dict | None = None, cli: str | None = None) -> str:
    """API URL precedence: ``--api-url`` > ``$RPNT_DANDI_API_URL`` > registry > default."""
    for url in (cli, os.environ.get(API_URL_ENV),
                (entry or {}).get("source", {}).get("api_url"), DEFAULT_API_URL):
        if url:
            return url.rstrip("/")
    raise AssertionError("unreachable: DEFAULT_API_URL is set")


def select_paths(paths: list[str], entry: dict, glob: str | None = None,
                 assets: list[str] | None = None) -> list[str]:
    """Asset paths kept by the registry selection, then ``--glob``, then ``--asset``.

    Globs are :func:`fnmatch.fnmatchcase` over the whole path (``*`` also crosses ``/``).
    """
    sel = entry["source"]["assets"]
    if "glob" in sel:
        keep = [p for p in paths if fnmatch.fnmatchcase(p, sel["glob"])]
    else:
        wanted = set(sel["paths"])
        keep = [p for p in paths if p in wanted]
    if glob:
        keep = [p for p in keep if fnmatch.fnmatchcase(p, glob)]
    if assets:
        wanted = set(assets)
        keep = [p for p in keep if p in wanted]
    return sorted(keep)


def registry_entry(path: str | Path, name: str | None) -> dict:
    """The entry ``name`` of the registry at ``path``, or its only entry when ``name`` is
    None (``rpnt ingest --registry R`` without ``--dataset``)."""
    if name is not None:
        return get_dataset(name, path)
    reg = load_registry(path)
    if len(reg) != 1:
        raise RpntError(f"{path}: holds {len(reg)} datasets; pass --dataset NAME (one of "
                        f"{', '.join(sorted(reg))})")
    return next(iter(reg.values()))


def planned_sessions(entry: dict, manifest: str | Path | None = None,
                     simulated: Callable[[str], list[str]] | None = None) -> list[dict] | None:
    """Sessions of a dataset known before any download or simulation.

    Each item is ``{"session", "subject", "task", "date", "asset_path"}`` (task and date
    ``None`` when the file name does not follow ``sub-<S>_ses-<CO|RT>-<YYYYMMDD>``).
    DANDI entries use ``manifest`` if given (e.g. the TSV a checkpoint wrote with
    ``rpnt fetch DATASET --list-only --manifest-out TSV``), else their committed asset
    manifest (``None`` when there is none: the workflow then lists the server in a
    checkpoint and calls this again with ``manifest=``); simulated entries ask
    ``simulated(preset)`` for their session ids (the workflow passes
    ``rpnt.sim.presets.session_ids``: the registry knows no simulator); local entries list
    their folder.
    """
    src = entry["source"]
    if src["type"] == "dandi":
        manifest = manifest or src.get("manifest")
        if not manifest:
            return None
        df = read_asset_manifest(manifest)
        versions = set(df["version"]) - {""}
        pinned = src.get("version")
        if pinned and versions and versions != {pinned}:
            raise RpntError(f"{manifest}: manifest is for version(s) {sorted(versions)} but "
                            f"{entry['name']} pins {pinned}; regenerate it with 'rpnt fetch "
                            f"{entry['name']} --list-only --manifest-out {manifest}'")
        paths = select_paths(df["path"].tolist(), entry)
        return _unique([session_record(p) for p in paths], manifest)
    if src["type"] == "simulated":
        if simulated is None:
            raise RpntError(f"internal error: planning the simulated dataset {entry['name']} "
                            "needs the simulator's session ids (simulated=)")
        recs = []
        for sid in simulated(src["preset"]):
            subject = sid.split("_", 1)[0]
            recs.append(session_record(f"{subject}/{sid}_behavior+ecephys.nwb"))
        return _unique(recs, f"simulator preset {src['preset']}")
    folder = Path(src["folder"])
    if not folder.is_dir():
        raise RpntError(f"{entry.get('registry', 'registry')}: dataset {entry['name']}: "
                        f"local folder {folder} does not exist; fix 'source.folder'")
    pattern = src.get("glob", "**/*.nwb")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.glob(pattern)
                   if p.is_file())
    return _unique([session_record(p) for p in files], folder)


def _unique(recs: list[dict], source: Any) -> list[dict]:
    seen: dict[str, str] = {}
    for r in recs:
        if r["session"] in seen:
            raise RpntError(f"{source}: session {r['session']} comes from two assets "
                            f"({seen[r['session']]}, {r['asset_path']}); session ids must "
                            "be unique")
        seen[r["session"]] = r["asset_path"]
    return recs
