"""The logic behind the Snakemake workflow: config resolution and job planning.

The ``Snakefile`` and ``workflow/rules/*.smk`` stay thin: they call the functions here to
check that the ``rpnt`` they run is this checkout's (:func:`check_checkout`), to validate
the config (``rpnt/schemas/config.schema.yaml``, defaults filled, unknown keys rejected),
to know the sessions of the configured dataset before anything is downloaded or
simulated, to list the jobs of a benchmark (scenario x model x target session x seed) and
to say which part of the config each rule reads (:func:`rule_config`), so that a config
change reruns only the jobs it affects. Errors are :class:`RpntError` with a one-line
message; :func:`stop_on_error` turns them into Snakemake's exit without a traceback.
``rpnt config resolve|validate`` uses the same functions outside Snakemake.

Paths follow docs/architecture.md "Paths of the workflow".
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd
import yaml
from snakemake.utils import validate

import rpnt
from rpnt.atomic import write_text
from rpnt.configfile import load_yaml, merge, model_section
from rpnt.data.scenarios import scenario_from_config
from rpnt.errors import RpntError
from rpnt.provenance import config_hash, poyo_available
from rpnt.registry.entries import get_dataset, load_registry
from rpnt.registry.entries import planned_sessions as registry_sessions
from rpnt.sim.presets import session_ids
from rpnt.train.rows import ALL, BASELINE_MODELS, BUILTIN_ROWS, parse_row

# re-exported: the workflow plans POYO jobs only when installed; merge for the Snakefile
__all__ = ["merge", "poyo_available"]

#: The workflow config's schema, shipped inside the package (importlib.resources).
SCHEMA_PATH = Path(str(resources.files("rpnt") / "schemas" / "config.schema.yaml"))

BASELINES = BASELINE_MODELS


# ---------------------------------------------------------------------------- errors


@contextlib.contextmanager
def stop_on_error() -> Iterator[None]:
    """Turn an :class:`RpntError` into ``SystemExit(message)``: under Snakemake, one line
    on stderr and exit status 1 before any job starts, as the ``rpnt`` command prints."""
    try:
        yield
    except RpntError as exc:
        raise SystemExit(str(exc)) from None


def check_checkout(workflow_dir: str | Path) -> None:
    """Stop unless ``rpnt`` is imported from the checkout whose Snakefile is running.

    Checks the Snakemake process's own ``import rpnt`` (the Snakefile plans with it) and
    the ``rpnt`` command on PATH (every job runs it), which may come from another
    environment. Importing through ``PYTHONPATH=<checkout>`` counts as this checkout.
    """
    here = Path(workflow_dir).resolve()
    pkg = here / "rpnt"
    fix = f"run `pip install -e .` in {here} (or export PYTHONPATH={here})"
    if not (pkg / "__init__.py").is_file():
        raise RpntError(f"{here}: this workflow folder has no rpnt package; run the "
                        "workflow from a clone of the rpnt repository")
    mine = Path(rpnt.__file__).resolve().parent
    if mine != pkg.resolve():
        raise RpntError(f"snakemake imports rpnt from {mine}, not from this checkout "
                        f"({here}); {fix}")
    exe = shutil.which("rpnt")
    if exe is None:
        raise RpntError(f"no `rpnt` command on PATH; {fix}")
    try:
        proc = subprocess.run([exe, "config", "where"], capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RpntError(f"`{exe} config where` could not run ({exc}); {fix}") from exc
    where = proc.stdout.strip().splitlines()[-1:] if proc.returncode == 0 else []
    if not where:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RpntError(f"`{exe} config where` failed ({last}); {fix}")
    if Path(where[0]).resolve() != pkg.resolve():
        raise RpntError(f"the `rpnt` command on PATH ({exe}) imports rpnt from {where[0]}, "
                        f"not from this checkout ({here}); {fix}")


def check_executor(executor: str) -> None:
    """Stop before the first job when the executor cannot work on this host."""
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise RpntError("the SLURM executor (--profile slurm) needs `sbatch`, and there is "
                        "none on PATH on this host: run snakemake on a SLURM login node, or "
                        "locally with `snakemake --cores N`")


def config_source(configfiles: Sequence[str | Path], overrides: Mapping[str, Any]) -> str:
    """How error messages name the config: its files, plus ``--config`` when given."""
    names = [os.path.relpath(f) if Path(f).is_absolute() else str(f) for f in configfiles]
    text = ", ".join(names) or "config"
    return f"{text} (with --config {', '.join(sorted(overrides))})" if overrides else text


# ---------------------------------------------------------------------------- config


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
    _check_variants(cfg, source)
    for m in models:
        if m not in (cfg.get("variants") or {}):
            try:
                parse_row(m)
            except RpntError as exc:
                raise RpntError(f"{source}: models: {exc}") from None


def _check_variants(cfg: Mapping[str, Any], source: str) -> None:
    """Each variant names a built-in RPNT row and valid model settings (the model's
    cross-field checks run when a command builds it)."""
    model_schema = load_yaml(SCHEMA_PATH)["properties"]["model"]
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
    return json.dumps(_plain(cfg), sort_keys=True, separators=(",", ":"))


def write_resolved_config(cfg: Mapping[str, Any], out: str | Path) -> bool:
    """Write the resolved config as YAML (atomically), the ``--config`` of every command.

    Only when its content changes (returns whether it wrote): the workflow writes it
    before its first job, and an unchanged config must leave the file as it was.
    """
    text = (
        "# Resolved rpnt workflow config: every default filled in. Written by the\n"
        "# workflow before its first job; edit config/*.yaml instead.\n"
        + yaml.safe_dump(_plain(cfg), sort_keys=True, default_flow_style=False)
    )
    out = Path(out)
    if out.is_file() and out.read_text() == text:
        return False
    write_text(out, text)
    return True


def _plain(obj: Any) -> Any:
    """Snakemake config objects -> plain dict/list/scalars (safe_dump-able)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ------------------------------------------------------------ what each rule reads


def _drop_progress(obj: Any) -> Any:
    """``obj`` without ``progress`` keys: a progress bar changes no output."""
    if isinstance(obj, Mapping):
        return {k: _drop_progress(v) for k, v in obj.items() if k != "progress"}
    return obj


#: finetune keys each mode reads besides train, subsets, unit_sampling and val_windows
_MODE_KEYS = {"full": ("encoder_lr_scale",), "staged": ("stage1_fraction", "staged_lr_scale"),
              "labelfree": ("labelfree_steps",)}
_MODE_ONLY = {k for keys in _MODE_KEYS.values() for k in keys}


def rule_config(cfg: Mapping[str, Any], rule: str, **wildcards: str) -> dict[str, Any]:
    """The part of the resolved config that the command of one ``rule`` job reads.

    Besides this, a job depends on its wildcards (scenario, model, pretraining, session,
    budget, seed) and its input files. The workflow puts :func:`rule_digest` of it in the
    job's ``params`` and hands the resolved config file to the command by path (a
    ``params``, not an input: the file changes with any config value), so a config change
    reruns exactly the jobs whose part changed (Snakemake's ``params`` rerun trigger) plus
    what depends on their outputs; ``seeds``, ``budgets``, ``model_budgets``, ``models``,
    ``dataset`` and ``bin_ms`` decide which jobs and paths exist instead. Keep this in
    step with what the commands read (``rpnt pretrain|finetune|baseline|table|figures
    --config``; the training jobs' own evaluation reads the scenario, which their part
    holds).
    """
    cfg = _plain(cfg)
    if rule in ("pretrain", "finetune", "baseline"):
        scen = {"scenario": cfg["scenarios"][wildcards["scenario"]]}
    if rule in ("finetune", "baseline"):
        labels = dict(cfg.get("labels") or {})
        if wildcards["budget"] == ALL:
            labels.pop("min_bins", None)  # draws k trials; all needs no draw
        scen["labels"] = labels
    if rule == "pretrain":
        objective, variant = pretraining_spec(cfg, wildcards["pretraining"])
        part = {"model": model_section(cfg, variant), "pretrain": cfg["pretrain"],
                "objective": objective, **scen}
    elif rule == "finetune":
        row = rpnt_row(cfg, wildcards["model"])
        fine = {k: v for k, v in cfg["finetune"].items()
                if k not in _MODE_ONLY or k in _MODE_KEYS.get(row.mode, ())}
        part = {"model": model_section(cfg, row.variant), "finetune": fine, "mode": row.mode,
                **scen}
    elif rule == "baseline":
        part = {"baseline": (cfg.get("baselines") or {}).get(wildcards["baseline"]), **scen}
    elif rule == "table":
        part = {k: cfg.get(k) for k in ("benchmark", "models", "ceiling", "scenarios",
                                        "budgets", "model_budgets")}
    elif rule == "figures":
        part = {k: cfg.get(k) for k in ("benchmark", "models", "ceiling", "scenarios",
                                        "budgets", "model_budgets", "figures")}
    else:
        raise RpntError(f"internal error: no config part declared for rule {rule!r}")
    return _drop_progress(part)


def rule_digest(cfg: Mapping[str, Any], rule: str, **wildcards: str) -> str:
    """A short hash of :func:`rule_config`: the ``params`` value that reruns a job."""
    return config_hash(rule_config(cfg, rule, **wildcards))


def ingest_digest(entry: Mapping[str, Any]) -> str:
    """A short hash of what ``rpnt ingest`` reads from a registry entry.

    Description and metadata are documentation; the asset manifest and folder paths are
    left out because they are absolute (moving the checkout must not re-ingest).
    """
    part = {k: v for k, v in _plain(entry).items()
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


# ---------------------------------------------------------------------------- planning


def active_models(cfg: Mapping[str, Any]) -> list[str]:
    """The configured rows that will be trained here (POYO only with torch-brain)."""
    models = list(cfg["models"])
    if "poyo" in models and not poyo_available():
        models.remove("poyo")  # the table marks the row "not installed"
    return models


@dataclass(frozen=True)
class RpntRow:
    """What trains an RPNT row: finetune ``mode``, from the pretraining named
    ``pretraining`` (None for scratch), with the model overrides of ``variant``."""

    name: str
    mode: str
    objective: str | None
    variant: str | None
    pretraining: str | None


def _overrides(cfg: Mapping[str, Any], variant: str | None) -> str:
    over = ((cfg.get("variants") or {}).get(variant) or {}).get("model") or {} if variant \
        else {}
    return json.dumps(_plain(over), sort_keys=True)


def rpnt_row(cfg: Mapping[str, Any], name: str) -> RpntRow:
    """The RPNT row ``name``: a built-in row or a variant of one.

    Pretrainings are shared: every row with the same objective and the same model
    settings starts from one pretraining per scenario and seed, named by the objective
    (``ssl``, ``joint``) or, with model overrides, ``<objective>-<variant>`` after the
    first variant (config order) that has those overrides.
    """
    variants = cfg.get("variants") or {}
    variant = name if name in variants else None
    row = parse_row(variants[name]["row"] if variant else name)
    if row.mode is None:
        raise RpntError(f"internal error: {name} is not an RPNT row")
    key = None
    if row.objective is not None:
        key = row.objective
        mine = _overrides(cfg, variant)
        if mine != _overrides(cfg, None):
            first = next(v for v in variants if _overrides(cfg, v) == mine)
            key = f"{row.objective}-{first}"
    return RpntRow(name, row.mode, row.objective, variant, key)


def pretraining_spec(cfg: Mapping[str, Any], key: str) -> tuple[str, str | None]:
    """(objective, variant or None) of the pretraining named ``key`` (:func:`rpnt_row`)."""
    objective, _, variant = key.partition("-")
    return objective, variant or None


def rpnt_rows(cfg: Mapping[str, Any]) -> list[str]:
    """The configured RPNT rows (every model that is not a peer), config order."""
    return [m for m in cfg["models"] if m not in BASELINES]


def names_pattern(names: Sequence[str]) -> str:
    """A wildcard constraint that matches exactly ``names`` (none: matches nothing)."""
    return "|".join(re.escape(n) for n in names) or r"(?!x)x"


def finetune_flags(cfg: Mapping[str, Any], model: str, init: str | None) -> str:
    """The ``rpnt finetune`` flags that make row ``model``: its mode, the pretrained
    encoder it starts from (``init``, none for scratch) and its variant."""
    row = rpnt_row(cfg, model)
    flags = [f"--mode {row.mode}"]
    if row.pretraining is not None:
        if not init:
            raise RpntError(f"internal error: row {model} needs a pretrained encoder")
        flags.append(f"--init {init}")
    if row.variant is not None:
        flags.append(f"--variant {row.variant}")
    return " ".join(flags)


def pretrain_flags(cfg: Mapping[str, Any], key: str) -> str:
    """The ``rpnt pretrain`` flags of the pretraining named ``key`` (:func:`rpnt_row`)."""
    objective, variant = pretraining_spec(cfg, key)
    return f"--objective {objective}" + (f" --variant {variant}" if variant else "")


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
          "task": s.get("task"), "date": s.get("date")} for s in sessions],
        columns=["dataset", "session", "subject", "task", "date"],
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


@dataclass(frozen=True)
class Run:
    """One trained decoder: ``model`` on ``session`` for ``scenario`` at label ``budget``
    (``all`` or a number of trials) with ``seed``."""

    scenario: str
    model: str
    session: str
    budget: str
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
    budgets: list[str] = field(default_factory=lambda: [ALL])
    #: rows trained at some budgets only (row -> budgets, in ``budgets`` order)
    model_budgets: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, RpntRow] = field(default_factory=dict)  #: the RPNT rows
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
        """Every (scenario, model, target session, budget, seed), in a stable order."""
        return [
            Run(scen, model, sess, budget, seed)
            for scen, targets in self.targets.items()
            for model in self.models
            for sess in targets
            for budget in self.model_budgets.get(model, self.budgets)
            for seed in self.seeds
        ]

    def pretrain_runs(self) -> list[tuple[str, str, int]]:
        """(scenario, pretraining, seed) of every pretrained encoder the rows start from."""
        keys = list(dict.fromkeys(r.pretraining for r in self.rows.values() if r.pretraining))
        return [(scen, key, seed) for scen in self.targets for key in keys
                for seed in self.seeds]

    def ceiling_runs(self) -> list[tuple[str, str]]:
        """(scenario, session) pairs with a noise-ceiling row (simulated data only)."""
        if not self.ceiling:
            return []
        return [(scen, sess) for scen, targets in self.targets.items() for sess in targets]


def make_plan(
    cfg: Mapping[str, Any], sessions: Iterable[Mapping[str, Any]], simulated: bool,
    source: str = "config",
) -> Plan:
    """The benchmark plan from a resolved config and the dataset's session records."""
    sessions = [dict(s) for s in sessions]
    if not sessions:
        raise RpntError(f"{source}: dataset {cfg['dataset']}: no sessions to plan from "
                        f"(registry {cfg['registry']})")
    models = active_models(cfg)
    budgets = [str(b) for b in cfg.get("budgets", [ALL])]
    return Plan(
        benchmark=cfg["benchmark"],
        dataset=cfg["dataset"],
        sessions=sessions,
        targets=target_sessions(cfg, sessions, source),
        models=models,
        seeds=[int(s) for s in cfg["seeds"]],
        budgets=budgets,
        model_budgets={m: [b for b in budgets if b in {str(x) for x in bs}]
                       for m, bs in (cfg.get("model_budgets") or {}).items()},
        rows={m: rpnt_row(cfg, m) for m in models if m not in BASELINES},
        ceiling=bool(cfg.get("ceiling", True)) and simulated,
    )
