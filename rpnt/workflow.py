"""The logic behind the Snakemake workflow: config resolution and job planning.

The ``Snakefile`` and ``workflow/rules/*.smk`` stay thin: they call the functions here to
validate the config (``workflow/schemas/config.schema.yaml``, defaults filled, unknown keys
rejected), to know the sessions of the configured dataset before anything is downloaded
or simulated, and to list the jobs of a benchmark (scenario x model x target session x
seed). ``rpnt config resolve|validate`` uses the same functions outside Snakemake.

Paths follow docs/architecture.md "Paths of the workflow".
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rpnt.errors import RpntError

#: The repository root (the Snakefile's folder) when rpnt is installed from a checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"

FINETUNE_MODES = ("scratch", "frozen", "fewshot", "full")
BASELINES = ("wiener", "gru", "ndt", "poyo")
#: Table rows, in table order: baselines, then the RPNT variants.
MODELS = (*BASELINES, *(f"rpnt_{m}" for m in FINETUNE_MODES))


# ---------------------------------------------------------------------------- config


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path`` (an empty file is an empty mapping)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise RpntError(f"{path}: no such config file") from exc
    except yaml.YAMLError as exc:
        raise RpntError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
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


def load_configs(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Merge config files left to right (later files override earlier ones)."""
    cfg: dict[str, Any] = {}
    for p in paths:
        cfg = merge(cfg, load_yaml(p))
    return cfg


def _error_path(err: Any) -> str:
    parts = [str(p) for p in err.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def resolve_config(
    config: Mapping[str, Any], schema: str | Path | None = None, source: str = "config"
) -> dict[str, Any]:
    """Validate ``config`` against the workflow schema and fill every default.

    Returns a new dict (the input is not modified). Unknown keys, wrong types and
    inconsistent settings raise :class:`RpntError` naming the key path, e.g.
    ``config: pretrain.stepz: unknown key (allowed: ...)``.
    """
    import jsonschema
    from snakemake.utils import validate

    schema_path = Path(schema) if schema else SCHEMA_PATH
    cfg = copy.deepcopy(dict(config))
    sch = load_yaml(schema_path)
    # jsonschema first, for a one-line message naming the offending key path.
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        msg = err.message
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            msg = f"{msg} (allowed: {', '.join(allowed)})"
        raise RpntError(f"{source}: {_error_path(err)}: {msg}; see {schema_path}")
    # Snakemake's own validator fills the defaults (the one the Snakefile uses).
    validate(cfg, str(schema_path), set_default=True)
    check_config(cfg, source)
    return cfg


def check_config(cfg: Mapping[str, Any], source: str = "config") -> None:
    """Cross-field checks a JSON schema cannot express."""
    if not cfg.get("scenarios"):
        raise RpntError(f"{source}: scenarios: at least one scenario is needed")
    for name, scen in cfg["scenarios"].items():
        if not scen.get("target"):
            raise RpntError(f"{source}: scenarios.{name}.target: empty selector selects "
                            "every session; name a subject, task, date range or session")
    seeds = list(cfg.get("seeds", []))
    if len(set(seeds)) != len(seeds):
        raise RpntError(f"{source}: seeds: {seeds} has duplicates")
    models = list(cfg.get("models", []))
    if len(set(models)) != len(models):
        raise RpntError(f"{source}: models: {models} has duplicates")


def config_digest(cfg: Mapping[str, Any]) -> str:
    """A short stable hash of a (resolved) config."""
    from rpnt.provenance import config_hash

    return config_hash(_plain(cfg))


def config_json(cfg: Mapping[str, Any]) -> str:
    """The config as one line of JSON (sorted keys): how the workflow hands it over."""
    import json

    return json.dumps(_plain(cfg), sort_keys=True, separators=(",", ":"))


def write_resolved_config(cfg: Mapping[str, Any], out: str | Path) -> Path:
    """Write the resolved config as YAML (atomically), the ``--config`` of every command."""
    from rpnt.atomic import write_text

    text = (
        "# Resolved rpnt workflow config: every default filled in. Generated by the\n"
        "# workflow (rule resolve_config); edit config/*.yaml instead.\n"
        + yaml.safe_dump(_plain(cfg), sort_keys=True, default_flow_style=False)
    )
    return write_text(out, text)


def _plain(obj: Any) -> Any:
    """Snakemake config objects -> plain dict/list/scalars (safe_dump-able)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ---------------------------------------------------------------------------- planning


def poyo_available() -> bool:
    """True when the POYO peer (``torch-brain``) is importable."""
    try:
        return importlib.util.find_spec("torch_brain") is not None
    except (ImportError, ValueError):
        return False


def active_models(cfg: Mapping[str, Any]) -> list[str]:
    """The configured models that will be trained here (POYO only with torch-brain)."""
    models = [m for m in cfg["models"] if m in MODELS]
    if "poyo" in models and not poyo_available():
        models.remove("poyo")  # the table marks the row "not installed"
    return models


def dataset_entry(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The registry entry of the configured dataset."""
    from rpnt.acquire.registry import get_dataset

    return get_dataset(cfg["dataset"], cfg["registry"])


def dataset_names(registry: str | Path, source: str) -> list[str]:
    """Names of the registry's datasets of one ``source`` (dandi | simulated | local)."""
    from rpnt.acquire.registry import load_registry

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
    from rpnt.acquire.registry import planned_sessions as registry_sessions

    sessions = registry_sessions(entry)
    return None if sessions is None else [dict(s) for s in sessions]


def sessions_from_asset_tsv(entry: Mapping[str, Any], path: str | Path) -> list[dict[str, Any]]:
    """Session records from an asset list written at run time (checkpoint list_assets)."""
    from rpnt.acquire.registry import planned_sessions as registry_sessions

    return [dict(s) for s in registry_sessions(dict(entry), manifest=path) or []]


def target_sessions(
    cfg: Mapping[str, Any], sessions: Sequence[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """Scenario name -> target session ids (table order), planned from session records.

    The scenarios are resolved by :func:`rpnt.train.scenarios.scenario_from_config`, the
    same code the training commands run on the manifest, over a session table built from
    the records (session-level keys only: units are not known before ingest).
    """
    import pandas as pd

    from rpnt.train.scenarios import scenario_from_config

    table = pd.DataFrame(
        [{"dataset": cfg["dataset"], "session": s["session"], "subject": s.get("subject"),
          "task": s.get("task"), "date": s.get("date")} for s in sessions],
        columns=["dataset", "session", "subject", "task", "date"],
    )
    out: dict[str, list[str]] = {}
    for name in cfg["scenarios"]:
        try:
            out[name] = list(scenario_from_config(cfg, name, table).target_sessions)
        except RpntError as exc:
            raise RpntError(f"config (dataset {cfg['dataset']}, {len(table)} sessions): "
                            f"{exc}") from exc
    return out


@dataclass(frozen=True)
class Run:
    """One trained decoder: ``model`` on ``session`` for ``scenario`` with ``seed``."""

    scenario: str
    model: str
    session: str
    seed: int


@dataclass
class Plan:
    """Everything the Snakefile needs to lay out the DAG of one benchmark."""

    benchmark: str
    dataset: str
    sessions: list[dict[str, Any]]
    targets: dict[str, list[str]]
    models: list[str]
    seeds: list[int]
    ceiling: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def session_ids(self) -> list[str]:
        return [s["session"] for s in self.sessions]

    def asset_path(self, session: str) -> str:
        for s in self.sessions:
            if s["session"] == session:
                return s["asset_path"]
        raise RpntError(f"session {session} is not a session of dataset {self.dataset}")

    def runs(self) -> list[Run]:
        """Every (scenario, model, target session, seed), in a stable order."""
        return [
            Run(scen, model, sess, seed)
            for scen, targets in self.targets.items()
            for model in self.models
            for sess in targets
            for seed in self.seeds
        ]

    def pretrain_runs(self) -> list[tuple[str, int]]:
        """(scenario, seed) pairs that need a pretrained encoder."""
        if not any(m in self.models for m in ("rpnt_frozen", "rpnt_fewshot", "rpnt_full")):
            return []
        return [(scen, seed) for scen in self.targets for seed in self.seeds]

    def ceiling_runs(self) -> list[tuple[str, str]]:
        """(scenario, session) pairs with a noise-ceiling row (simulated data only)."""
        if not self.ceiling:
            return []
        return [(scen, sess) for scen, targets in self.targets.items() for sess in targets]


def make_plan(
    cfg: Mapping[str, Any], sessions: Iterable[Mapping[str, Any]], simulated: bool
) -> Plan:
    """The benchmark plan from a resolved config and the dataset's session records."""
    sessions = [dict(s) for s in sessions]
    if not sessions:
        raise RpntError(f"dataset {cfg['dataset']}: no sessions to plan from")
    return Plan(
        benchmark=cfg["benchmark"],
        dataset=cfg["dataset"],
        sessions=sessions,
        targets=target_sessions(cfg, sessions),
        models=active_models(cfg),
        seeds=[int(s) for s in cfg["seeds"]],
        ceiling=bool(cfg.get("ceiling", True)) and simulated,
    )
