"""The rows of a benchmark table and what trains each (imports nothing heavy: the workflow
plans with it, the tables and figures order by it).

A row is a peer (``wiener``, ``gru``, ``ndt``, ``poyo``), RPNT from scratch
(``rpnt_scratch``), or RPNT pretrained with an objective and adapted to the target session
in a mode: ``rpnt_<objective>_<mode>`` with objective ``ssl`` (the paper's masked
reconstruction) or ``joint`` (+ velocity decoding of the pretraining sessions) and mode
``frozen``, ``full``, ``staged`` or ``labelfree`` (:mod:`rpnt.train.finetune`). A
config's ``variants`` add rows that differ from one of these only in model settings.

Pretrainings are shared: every RPNT row with the same objective and the same model
settings starts from one pretraining per scenario and seed (:class:`Pretraining`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ALL", "BASELINE_MODELS", "BUILTIN_ROWS", "MODES", "OBJECTIVES", "Pretraining",
           "Row", "RpntRow", "parse_row", "pretraining_name", "pretraining_named",
           "pretrainings", "row_order", "rpnt_row", "rpnt_rows"]

from rpnt.data.budget import ALL
from rpnt.errors import RpntError

#: The peers ``rpnt baseline --model`` trains.
BASELINE_MODELS = ("wiener", "gru", "ndt", "poyo")
#: ``rpnt finetune --mode``: scratch, then the modes that start from pretraining.
MODES = ("scratch", "frozen", "full", "staged", "labelfree")
#: ``rpnt pretrain --objective``.
OBJECTIVES = ("ssl", "joint")
SCRATCH = "rpnt_scratch"
PRETRAINED_MODES = tuple(m for m in MODES if m != "scratch")
#: Built-in rows in table order (peers, scratch, then objective x mode).
BUILTIN_ROWS = (*BASELINE_MODELS, SCRATCH,
                *(f"rpnt_{o}_{m}" for o in OBJECTIVES for m in PRETRAINED_MODES))


@dataclass(frozen=True)
class Row:
    """What trains one built-in row: a peer, or RPNT in ``mode`` (from ``objective``)."""

    name: str
    baseline: str | None = None  #: the peer, for peer rows
    mode: str | None = None  #: finetune mode, for RPNT rows
    objective: str | None = None  #: pretraining objective (None for scratch)


def parse_row(name: str) -> Row:
    """The built-in row ``name`` (RpntError naming the rows that exist)."""
    if name in BASELINE_MODELS:
        return Row(name, baseline=name)
    if name == SCRATCH:
        return Row(name, mode="scratch")
    parts = name.split("_")
    if len(parts) == 3 and parts[0] == "rpnt" and parts[1] in OBJECTIVES \
            and parts[2] in PRETRAINED_MODES:
        return Row(name, mode=parts[2], objective=parts[1])
    raise RpntError(f"unknown table row {name!r}; rows are {', '.join(BUILTIN_ROWS)} "
                    "(or a name under variants)")


def row_order(names: list[str], config_order: list[str] | None = None) -> list[str]:
    """``names`` in table order: built-in rows first (their order), then the others in
    ``config_order`` (the config's models list), then sorted; ``ceiling`` last."""
    known = [r for r in BUILTIN_ROWS if r in names]
    rest = [n for n in (config_order or []) if n in names and n not in known]
    rest += sorted(set(names) - set(known) - set(rest) - {"ceiling"})
    return known + [n for n in rest if n != "ceiling"] + (["ceiling"] if "ceiling" in names
                                                          else [])


@dataclass(frozen=True)
class Pretraining:
    """One shared pretraining: its ``objective`` and the variant whose model overrides it
    uses (None: the config's model section)."""

    objective: str
    variant: str | None = None

    @property
    def name(self) -> str:
        """Its folder name: the objective, or ``<objective>-<variant>``."""
        return self.objective if self.variant is None else f"{self.objective}-{self.variant}"


@dataclass(frozen=True)
class RpntRow:
    """What trains an RPNT row: finetune ``mode``, from ``pretraining`` (None for
    scratch), with the model overrides of ``variant``."""

    name: str
    mode: str
    objective: str | None
    variant: str | None
    pretraining: Pretraining | None


def _overrides(cfg: Mapping[str, Any], variant: str | None) -> str:
    over = ((cfg.get("variants") or {}).get(variant) or {}).get("model") if variant else None
    return json.dumps(over or {}, sort_keys=True, default=str)


def rpnt_row(cfg: Mapping[str, Any], name: str) -> RpntRow:
    """The RPNT row ``name`` of a config: a built-in row or a variant of one.

    Its pretraining is shared with every row of the same objective and model settings:
    the base model (no variant) when its overrides change nothing, else the first
    variant (config order) with the same overrides.
    """
    variants = cfg.get("variants") or {}
    variant = name if name in variants else None
    row = parse_row(variants[name]["row"] if variant else name)
    if row.mode is None:
        raise RpntError(f"internal error: {name} is not an RPNT row")
    pre = None
    if row.objective is not None:
        mine = _overrides(cfg, variant)
        owner = None if mine == _overrides(cfg, None) else next(
            v for v in variants if _overrides(cfg, v) == mine)
        pre = Pretraining(row.objective, owner)
    return RpntRow(name, row.mode, row.objective, variant, pre)


def rpnt_rows(cfg: Mapping[str, Any]) -> list[str]:
    """The configured RPNT rows (every model that is not a peer), config order."""
    return [m for m in cfg["models"] if m not in BASELINE_MODELS]


def pretrainings(cfg: Mapping[str, Any]) -> dict[str, Pretraining]:
    """Name -> every pretraining the config's RPNT rows start from (config order)."""
    out: dict[str, Pretraining] = {}
    for m in rpnt_rows(cfg):
        pre = rpnt_row(cfg, m).pretraining
        if pre is not None:
            out.setdefault(pre.name, pre)
    return out


def pretraining_named(cfg: Mapping[str, Any], name: str) -> Pretraining:
    """The pretraining called ``name``: one the config's rows start from, or the base
    pretraining of an objective (which needs no row to be defined)."""
    known = pretrainings(cfg)
    if name in known:
        return known[name]
    if name in OBJECTIVES:
        return Pretraining(name)
    raise RpntError(f"no pretraining named {name!r} in this config (have: "
                    f"{', '.join(known) or 'none'})")


def pretraining_name(pretraining: dict[str, Any]) -> str:
    """How tables name a pretraining (a pretrained meta.json's ``pretraining``): its
    objective, with its variant in brackets."""
    name = str(pretraining.get("objective") or "ssl")
    return name + (f" ({pretraining['variant']})" if pretraining.get("variant") else "")
