"""Read the ``model``, ``pretrain``, ``finetune`` and ``labels`` sections of a workflow config.

The workflow passes its resolved config (all sections) as ``--config CFG.yaml``; each
command reads only its own sections. Layout (defaults in the dataclasses below)::

    model:    {size: tiny, n_units: 50, window: 50, ...RPNTConfig fields}
    pretrain: {train: {...TrainConfig fields}, subsets: 2, velocity_weight: 1.0, ...}
    finetune: {train: {...TrainConfig fields}, stage1_fraction: 0.5, ...}
    labels:   {selection: valid, min_bins: 50}

Unknown keys are an :class:`RpntError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from rpnt.configfile import model_section
from rpnt.data.budget import Budget, budget_bins
from rpnt.data.session import SessionData
from rpnt.errors import RpntError
from rpnt.fields import check_fields, setting
from rpnt.model import RPNTConfig
from rpnt.train.trainer import TrainConfig


def _pretrain_train() -> TrainConfig:
    # ~1-2 min for the tiny model on one CPU core (~80-130 ms per step of 32 windows).
    return TrainConfig(steps=1000, batch_size=32, lr=1e-3, warmup_steps=100, eval_every=100,
                       checkpoint_every=250, patience=0)


def _finetune_train() -> TrainConfig:
    # ~10-25 s for the tiny model on one CPU core; early stopping on the valid trials.
    return TrainConfig(steps=200, batch_size=32, lr=3e-3, warmup_steps=20, eval_every=25,
                       checkpoint_every=100, patience=4)


@dataclass
class PretrainConfig:
    """``pretrain`` section (the objective, ssl or joint, is the job's: ``--objective``)."""

    train: TrainConfig = field(default_factory=_pretrain_train)  #: optimisation settings
    #: unit subsets drawn of each window (augmentation of a shared read-in; the fixed
    #: unit choice of a per-session read-in draws every window once)
    subsets: int = setting(2, minimum=1)
    #: fixed windows of valid bins (non-target sessions) for the curve
    val_windows: int = setting(64, minimum=1)
    #: joint objective: weight of the velocity MSE (per-session normalised velocity)
    velocity_weight: float = setting(1.0, exclusive_minimum=0)
    #: pretraining sessions on whose test trials the ridge probe of the frozen features
    #: is scored after pretraining (0: no probe)
    probe_sessions: int = setting(2, minimum=0)

    def __post_init__(self) -> None:
        check_fields(self, "pretrain")


@dataclass
class FinetuneConfig:
    """``finetune`` section."""

    train: TrainConfig = field(default_factory=_finetune_train)  #: optimisation settings
    #: unit subsets drawn of each window (unit_sampling random only)
    subsets: int = setting(1, minimum=1)
    #: "fixed": the evaluation choice of units in every batch (stable slot identity);
    #: "random": random subsets of sites with more than N units (augmentation)
    unit_sampling: str = setting("fixed", enum=("fixed", "random"))
    val_windows: int = setting(128, minimum=1)  #: max windows of valid bins for early stopping
    #: lr of a pretrained encoder relative to the head's (mode full)
    encoder_lr_scale: float = setting(1.0, minimum=0)
    #: mode staged: the fraction of train.steps that trains read-in and head with the
    #: core frozen; the rest trains everything, the core at staged_lr_scale x lr
    stage1_fraction: float = setting(0.5, exclusive_minimum=0, exclusive_maximum=1)
    #: mode staged, stage 2: core lr / head lr
    staged_lr_scale: float = setting(0.1, minimum=0)
    #: mode labelfree: steps of the pretraining objective on the target's unlabelled
    #: training spikes (read-in and read-out learned, core frozen) before the head
    labelfree_steps: int = setting(300, minimum=1)

    def __post_init__(self) -> None:
        check_fields(self, "finetune")


@dataclass
class LabelsConfig:
    """``labels`` section: how labelled target trials are drawn and used by every decoder
    (budgets themselves are the planning key ``budgets``)."""

    #: "valid": early stopping and model selection on the valid trials' labels (the
    #: default benchmark, budget all only); "none": a fixed schedule, the last weights,
    #: the Wiener penalty by cross-validation within the budget: no label outside it
    selection: str = setting("valid", enum=("valid", "none"))
    #: a trial may enter a budget when it holds this many consecutive labelled training
    #: bins (the decoders' window, so each chosen trial gives a training window)
    min_bins: int = setting(50, minimum=1)

    def __post_init__(self) -> None:
        check_fields(self, "labels")


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check(d: Any, cls: type, where: str) -> dict[str, Any]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise RpntError(f"{where}: must be a mapping, got {d!r}")
    unknown = sorted(set(d) - _fields(cls))
    if unknown:
        raise RpntError(f"{where}: unknown keys {unknown}; known: {sorted(_fields(cls))}")
    return d


def train_config(d: Any, default: TrainConfig, where: str) -> TrainConfig:
    """A TrainConfig from a ``train`` mapping over ``default`` (``seed`` comes from the CLI)."""
    d = _check(d, TrainConfig, where)
    try:
        return dataclasses.replace(default, **d)
    except (TypeError, ValueError, RpntError) as exc:
        raise RpntError(f"{where}: {exc}") from exc


def _section(cfg: dict[str, Any], name: str, cls: type, source: str) -> Any:
    """Section ``name`` of ``cfg`` as dataclass ``cls`` (its ``train`` over cls's default)."""
    d = dict(_check(cfg.get(name), cls, f"{source}: {name}"))
    train = train_config(d.pop("train", None), cls().train, f"{source}: {name}.train")
    try:
        return cls(train=train, **d)
    except RpntError as exc:
        raise RpntError(f"{source}: {exc}") from exc


def pretrain_config(cfg: dict[str, Any], source: str = "config") -> PretrainConfig:
    """The ``pretrain`` section (RpntError naming ``source`` and the key)."""
    return _section(cfg, "pretrain", PretrainConfig, source)


def finetune_config(cfg: dict[str, Any], source: str = "config") -> FinetuneConfig:
    """The ``finetune`` section (RpntError naming ``source`` and the key)."""
    return _section(cfg, "finetune", FinetuneConfig, source)


def labels_config(cfg: dict[str, Any], source: str = "config") -> LabelsConfig:
    """The ``labels`` section (RpntError naming ``source`` and the key)."""
    d = _check(cfg.get("labels"), LabelsConfig, f"{source}: labels")
    try:
        return LabelsConfig(**d)
    except RpntError as exc:
        raise RpntError(f"{source}: {exc}") from exc


def model_config(cfg: dict[str, Any], source: str = "config", variant: str | None = None,
                 **fixed: Any) -> RPNTConfig:
    """The RPNTConfig of the ``model`` section (``size`` preset + field overrides), with a
    variant's model overrides when ``variant`` names one."""
    d = model_section(cfg, variant, source)
    size = d.pop("size", "small")
    d.update(fixed)
    where = f"{source} (variant {variant})" if variant else source
    try:
        return RPNTConfig.preset(size, **d)
    except RpntError as exc:
        raise RpntError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise RpntError(f"{where}: model: {exc}") from exc


def labelled_trials(cfg: dict[str, Any], source: str, session: SessionData,
                    budget: str, seed: int) -> tuple[Budget, str]:
    """The labelled trials of ``budget`` and the model selection rule, from the config's
    ``labels`` section (RpntError when the selection would read labels outside the
    budget)."""
    labels = labels_config(cfg, source)
    b = budget_bins(session, budget, seed, labels.min_bins)
    if b.budget != "all" and labels.selection == "valid":
        raise RpntError(f"{source}: labels.selection: valid would read the valid trials' "
                        f"labels, more than a budget of {b.budget} trials; set "
                        "labels.selection: none (a fixed schedule)")
    return b, labels.selection
