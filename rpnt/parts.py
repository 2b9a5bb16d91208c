"""The part of a resolved workflow config that one job reads, as one dataclass per job.

A job (:mod:`rpnt.jobs`) builds its part from the resolved config and reads nothing
else of it; the workflow hashes the same part into the job's ``params`` (the digest
Snakemake compares), so a config change reruns exactly the jobs whose part changed. The
job's wildcards (scenario, row, session, budget, seed) and input files are its other
inputs; ``seeds``, ``budgets``, ``model_budgets``, ``models``, ``dataset`` and ``bin_ms``
decide which jobs and paths exist instead. Imports nothing heavy: every Snakemake start
computes digests.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from rpnt.configfile import model_section
from rpnt.data.scenarios import scenario_section
from rpnt.errors import RpntError
from rpnt.provenance import config_hash
from rpnt.rows import ALL, BASELINE_MODELS

#: finetune keys only one mode reads (the others read train, subsets, unit_sampling and
#: val_windows): a mode's part leaves out the other modes' keys, so changing, say,
#: stage1_fraction reruns the staged rows only
MODE_SETTINGS = {"full": ("encoder_lr_scale",), "staged": ("stage1_fraction", "staged_lr_scale"),
                 "labelfree": ("labelfree_steps",)}
_MODE_ONLY = {k for keys in MODE_SETTINGS.values() for k in keys}
#: the planning keys the table reads (the figures read these and ``figures``)
TABLE_KEYS = ("benchmark", "models", "ceiling", "scenarios", "budgets", "model_budgets",
              "model_scenarios", "metric")


def _plain(obj: Any) -> Any:
    """Plain dicts/lists without ``progress`` keys (a progress bar changes no output)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items() if k != "progress"}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


def _scenario(cfg: Mapping[str, Any], name: str | None) -> dict[str, Any] | None:
    return None if name is None else _plain(scenario_section(cfg, name))


def _labels(cfg: Mapping[str, Any], budget: str) -> dict[str, Any]:
    labels = _plain(cfg.get("labels") or {})
    if str(budget) == ALL:
        labels.pop("min_bins", None)  # draws k trials; all needs no draw
    return labels


class Part:
    """What every part does: its content as plain data, and the digest of that."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    def digest(self) -> str:
        """A short hash of the part: the workflow's ``params`` value that reruns a job."""
        return config_hash(self.as_dict())


@dataclass(frozen=True)
class PretrainPart(Part):
    """``rpnt pretrain``: the scenario, the model (a variant's overrides merged), the
    pretrain section and the objective."""

    scenario_name: str
    scenario: dict[str, Any]
    model: dict[str, Any]
    pretrain: dict[str, Any]
    objective: str

    @classmethod
    def of(cls, cfg: Mapping[str, Any], scenario: str, objective: str,
           variant: str | None = None) -> PretrainPart:
        return cls(scenario, _scenario(cfg, scenario), _plain(model_section(cfg, variant)),
                   _plain(cfg.get("pretrain") or {}), objective)


@dataclass(frozen=True)
class FinetunePart(Part):
    """``rpnt finetune``: the scenario (None: no scenario), the labels rule of the budget,
    the model (a variant's overrides merged), the finetune keys of the mode, the mode."""

    scenario_name: str | None
    scenario: dict[str, Any] | None
    labels: dict[str, Any]
    model: dict[str, Any]
    finetune: dict[str, Any]
    mode: str

    @classmethod
    def of(cls, cfg: Mapping[str, Any], scenario: str | None, mode: str, budget: str,
           variant: str | None = None) -> FinetunePart:
        fine = {k: v for k, v in _plain(cfg.get("finetune") or {}).items()
                if k not in _MODE_ONLY or k in MODE_SETTINGS.get(mode, ())}
        return cls(scenario, _scenario(cfg, scenario), _labels(cfg, budget),
                   _plain(model_section(cfg, variant)), fine, mode)


@dataclass(frozen=True)
class BaselinePart(Part):
    """``rpnt baseline``: the scenario, the labels rule of the budget, the peer's section
    (None: its defaults)."""

    scenario_name: str | None
    scenario: dict[str, Any] | None
    labels: dict[str, Any]
    baseline: dict[str, Any] | None

    @classmethod
    def of(cls, cfg: Mapping[str, Any], scenario: str | None, model: str,
           budget: str, source: str = "config") -> BaselinePart:
        baselines = cfg.get("baselines") or {}
        if not isinstance(baselines, Mapping):
            raise RpntError(f"{source}: baselines must be a mapping of model -> settings")
        unknown = sorted(set(baselines) - set(BASELINE_MODELS))
        if unknown:
            raise RpntError(f"{source}: unknown baselines {unknown}; known: "
                            f"{', '.join(BASELINE_MODELS)}")
        return cls(scenario, _scenario(cfg, scenario), _labels(cfg, budget),
                   _plain(baselines.get(model)))


@dataclass(frozen=True)
class TablePart(Part):
    """``rpnt table`` (and, with ``figures``, ``rpnt figures``): the rows, columns and name
    of the benchmark's table."""

    benchmark: str | None
    models: list[str] | None
    ceiling: bool | None
    scenarios: dict[str, Any] | None
    budgets: list[Any] | None
    model_budgets: dict[str, Any] | None
    model_scenarios: dict[str, Any] | None
    metric: str | None
    figures: dict[str, Any] | None = None

    @classmethod
    def of(cls, cfg: Mapping[str, Any], figures: bool = False) -> TablePart:
        keys = {k: _plain(cfg.get(k)) for k in TABLE_KEYS}
        return cls(**keys, figures=_plain(cfg.get("figures")) if figures else None)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.figures is None:
            d.pop("figures")
        return d
