"""The rows of a benchmark table and what trains each (imports nothing heavy: the workflow
plans with it).

A row is a peer (``wiener``, ``gru``, ``ndt``, ``poyo``), RPNT from scratch
(``rpnt_scratch``), or RPNT pretrained with an objective and adapted to the target session
in a mode: ``rpnt_<objective>_<mode>`` with objective ``ssl`` (the paper's masked
reconstruction) or ``joint`` (+ velocity decoding of the pretraining sessions) and mode
``frozen``, ``full``, ``staged`` or ``labelfree`` (:mod:`rpnt.train.finetune`). A
config's ``variants`` add rows that differ from one of these only in model settings.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL", "BASELINE_MODELS", "BUILTIN_ROWS", "MODES", "OBJECTIVES", "Row",
           "parse_row", "row_order"]

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
