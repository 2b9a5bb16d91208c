"""The workflow config: resolved against the schema generated from the config dataclasses
(:mod:`.schema`) with every default filled, checked across fields, written for the
commands, and cut into the part each rule's jobs read (:func:`job_part`), so that a
config change reruns only the jobs it affects."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rpnt.atomic import write_text
from rpnt.configfile import load_yaml, merge
from rpnt.errors import RpntError
from rpnt.parts import BaselinePart, FinetunePart, Part, PretrainPart, TablePart
from rpnt.provenance import config_hash
from rpnt.rows import ALL, BUILTIN_ROWS, parse_row, pretraining_named, rpnt_row

#: The workflow config's schema, generated from the config dataclasses
#: (rpnt.workflow.schema; `rpnt config schema --out` writes it), shipped in the package.
SCHEMA_PATH = Path(str(resources.files("rpnt") / "schemas" / "config.schema.yaml"))


def config_source(configfiles: Sequence[str | Path], overrides: Mapping[str, Any]) -> str:
    """How error messages name the config: its files, plus ``--config`` when given."""
    names = [os.path.relpath(f) if Path(f).is_absolute() else str(f) for f in configfiles]
    text = ", ".join(names) or "config"
    return f"{text} (with --config {', '.join(sorted(overrides))})" if overrides else text


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

    ``schema``: a schema file to use instead of the workflow's (:data:`SCHEMA_PATH`).
    Returns a new dict (the input is not
    modified). Unknown keys, wrong types and inconsistent settings raise
    :class:`RpntError` naming the key path, e.g. ``config: pretrain.stepz: unknown key
    (allowed: ...)``.
    """
    cfg = plain(copy.deepcopy(dict(config)))
    sch = load_yaml(schema or SCHEMA_PATH)
    where = f"; see {schema}" if schema else "; see `rpnt config schema`"
    # jsonschema first, for a one-line message naming the offending key path.
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        msg = err.message
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            msg = f"{msg} (allowed: {', '.join(allowed)})"
        raise RpntError(f"{source}: {_error_path(err)}: {msg}{where}")
    fill_defaults(cfg, sch)
    check_config(cfg, source, sch)
    return cfg


def fill_defaults(cfg: dict[str, Any], schema: dict[str, Any],
                  root: dict[str, Any] | None = None) -> dict[str, Any]:
    """``cfg`` with the default of every property it leaves out, recursively through the
    mappings the schema describes (``properties``, and ``additionalProperties`` such as
    each scenario; ``$ref`` within ``root``), in place; returns ``cfg``."""
    root = schema if root is None else root
    props = schema.get("properties", {})
    for name, prop in props.items():
        if name not in cfg and "default" in prop:
            cfg[name] = copy.deepcopy(prop["default"])
    extra = schema.get("additionalProperties")
    for name, value in cfg.items():
        sub = props.get(name, extra if isinstance(extra, dict) else None)
        if isinstance(value, dict) and sub:
            if "$ref" in sub:
                sub = root["$defs"][sub["$ref"].rsplit("/", 1)[1]]
            fill_defaults(value, sub, root)
    return cfg


def check_config(cfg: Mapping[str, Any], source: str = "config",
                 schema: Mapping[str, Any] | None = None) -> None:
    """Cross-field checks a JSON schema cannot express (``schema``: the loaded schema,
    default the workflow's)."""
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
    budgets = [str(b) for b in cfg.get("budgets", [ALL])]
    if len(set(budgets)) != len(budgets):
        raise RpntError(f"{source}: budgets: {budgets} has duplicates")
    if any(b != ALL for b in budgets) and (cfg.get("labels") or {}).get(
            "selection", "valid") == "valid":
        raise RpntError(f"{source}: labels.selection: valid would let decoders select on "
                        f"the valid trials' labels, more than a budget of "
                        f"{min(int(b) for b in budgets if b != ALL)} trials; set "
                        "labels.selection: none (a fixed schedule)")
    for m, bs in (cfg.get("model_budgets") or {}).items():
        if m not in models:
            raise RpntError(f"{source}: model_budgets.{m}: not one of models {models}")
        extra = sorted({str(b) for b in bs} - set(budgets))
        if extra:
            raise RpntError(f"{source}: model_budgets.{m}: {extra} not in budgets {budgets}")
    for m, scens in (cfg.get("model_scenarios") or {}).items():
        if m not in models:
            raise RpntError(f"{source}: model_scenarios.{m}: not one of models {models}")
        extra = sorted(set(map(str, scens)) - set(cfg.get("scenarios") or {}))
        if extra:
            raise RpntError(f"{source}: model_scenarios.{m}: {extra} not in scenarios "
                            f"{sorted(cfg.get('scenarios') or {})}")
    _check_variants(cfg, source, schema or load_yaml(SCHEMA_PATH))
    for m in models:
        if m not in (cfg.get("variants") or {}):
            try:
                parse_row(m)
            except RpntError as exc:
                raise RpntError(f"{source}: models: {exc}") from None


def _check_variants(cfg: Mapping[str, Any], source: str, schema: Mapping[str, Any]) -> None:
    """Each variant names a built-in RPNT row and valid model settings (the model's
    cross-field checks run when a command builds it)."""
    model_schema = schema["properties"]["model"]
    for name, var in (cfg.get("variants") or {}).items():
        where = f"{source}: variants.{name}"
        if name in BUILTIN_ROWS:
            raise RpntError(f"{where}: a variant cannot take the name of a built-in row")
        try:
            row = parse_row(var["row"])
        except RpntError as exc:
            raise RpntError(f"{where}.row: {exc}") from None
        if row.mode is None:
            raise RpntError(f"{where}.row: {var['row']} is a peer; variants vary an RPNT "
                            "row's model settings")
        err = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(model_schema).iter_errors(var["model"]))
        if err is not None:
            raise RpntError(f"{where}.model: {_error_path(err)}: {err.message}")


def config_json(cfg: Mapping[str, Any]) -> str:
    """The config as one line of JSON (sorted keys): how the workflow hands it over."""
    return json.dumps(plain(cfg), sort_keys=True, separators=(",", ":"))


def write_resolved_config(cfg: Mapping[str, Any], out: str | Path) -> bool:
    """Write the resolved config as YAML (atomically), the ``--config`` of every command.

    Only when its content changes (returns whether it wrote): the workflow writes it
    before its first job, and an unchanged config must leave the file as it was.
    """
    text = (
        "# Resolved rpnt workflow config: every default filled in. Written by the\n"
        "# workflow before its first job; edit config/*.yaml instead.\n"
        + yaml.safe_dump(plain(cfg), sort_keys=True, default_flow_style=False)
    )
    out = Path(out)
    if out.is_file() and out.read_text() == text:
        return False
    write_text(out, text)
    return True


def plain(obj: Any) -> Any:
    """Snakemake config objects -> plain dict/list/scalars (safe_dump-able)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def job_part(cfg: Mapping[str, Any], rule: str, **wildcards: str) -> Part:
    """The part of the resolved config that the command of one ``rule`` job reads
    (:mod:`rpnt.parts`): the job builds the same part from the same config and its flags,
    and reads nothing else of the config."""
    cfg = plain(cfg)
    scenario = wildcards.get("scenario")
    if rule == "pretrain":
        pre = pretraining_named(cfg, wildcards["pretraining"])
        return PretrainPart.of(cfg, scenario, pre.objective, pre.variant)
    if rule == "finetune":
        row = rpnt_row(cfg, wildcards["model"])
        return FinetunePart.of(cfg, scenario, row.mode, wildcards["budget"], row.variant)
    if rule == "baseline":
        return BaselinePart.of(cfg, scenario, wildcards["baseline"], wildcards["budget"])
    if rule in ("table", "figures"):
        return TablePart.of(cfg, figures=rule == "figures")
    raise RpntError(f"internal error: no config part declared for rule {rule!r}")


def rule_digest(cfg: Mapping[str, Any], rule: str, **wildcards: str) -> str:
    """A short hash of :func:`job_part`: the ``params`` value that reruns a job.

    The workflow puts it in each job's ``params`` and hands the resolved config file to
    the command by path (a ``params``, not an input: the file changes with any config
    value), so a config change reruns exactly the jobs whose part changed (Snakemake's
    ``params`` rerun trigger) plus what depends on their outputs.
    """
    return job_part(cfg, rule, **wildcards).digest()


def ingest_digest(entry: Mapping[str, Any]) -> str:
    """A short hash of what ``rpnt ingest`` reads from a registry entry.

    Description and metadata are documentation; the asset manifest and folder paths are
    left out because they are absolute (moving the checkout must not re-ingest).
    """
    part = {k: v for k, v in plain(entry).items()
            if k not in ("description", "metadata", "registry")}
    part["source"] = {k: v for k, v in part.get("source", {}).items()
                      if k not in ("manifest", "folder")}
    return config_hash(part)


def store_tag(cfg: Mapping[str, Any]) -> str:
    """The folder of a dataset's stores made with this config's ingest options.

    Stores are keyed by what made them: two benchmarks with different ``bin_ms`` on one
    dataset keep their own stores side by side (``resources/stores/<dataset>/<tag>/``).
    """
    return f"bin{int(cfg['bin_ms'])}ms"
