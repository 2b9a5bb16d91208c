"""The jobs of one benchmark: every (scenario, row, target session, label budget, seed),
the shared pretrainings they start from, and the command-line flags of each."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpnt.errors import RpntError
from rpnt.provenance import poyo_available
from rpnt.rows import ALL, BASELINE_MODELS, RpntRow, pretraining_named, rpnt_row
from rpnt.workflow.datasets import target_sessions


def active_models(cfg: Mapping[str, Any]) -> list[str]:
    """The configured rows that will be trained here (POYO only with torch-brain)."""
    models = list(cfg["models"])
    if "poyo" in models and not poyo_available():
        models.remove("poyo")  # the table marks the row "not installed"
    return models


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
    """The ``rpnt pretrain`` flags of the pretraining named ``key``."""
    pre = pretraining_named(cfg, key)
    return f"--objective {pre.objective}" + (f" --variant {pre.variant}" if pre.variant else "")


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
    #: rows trained in some scenarios only (row -> scenarios)
    model_scenarios: dict[str, list[str]] = field(default_factory=dict)
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
            if scen in self.model_scenarios.get(model, [scen])
            for sess in targets
            for budget in self.model_budgets.get(model, self.budgets)
            for seed in self.seeds
        ]

    def pretrain_runs(self) -> list[tuple[str, str, int]]:
        """(scenario, pretraining, seed) of every pretrained encoder the rows start from."""
        return list(dict.fromkeys(
            (scen, row.pretraining.name, seed) for scen in self.targets
            for m, row in self.rows.items()
            if row.pretraining and scen in self.model_scenarios.get(m, [scen])
            for seed in self.seeds))

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
        model_scenarios={m: [str(x) for x in sc]
                         for m, sc in (cfg.get("model_scenarios") or {}).items()},
        rows={m: rpnt_row(cfg, m) for m in models if m not in BASELINE_MODELS},
        ceiling=bool(cfg.get("ceiling", True)) and simulated,
    )


def prune_empty_dirs(root: str | Path) -> int:
    """Remove the empty folders under ``root`` (and ``root`` if it ends up empty), bottom
    up; returns how many. A finished training job deletes its rolling checkpoints, which
    leaves the folders they were in: the workflow prunes them after a successful run."""
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    for here, _dirs, _files in os.walk(root, topdown=False):
        try:
            os.rmdir(here)  # fails, and is skipped, unless the folder is empty
            removed += 1
        except OSError:
            pass
    return removed
