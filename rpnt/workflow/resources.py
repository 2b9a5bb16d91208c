"""What a training job asks the cluster for: memory and wall time from the config.

The rules' ``resources:`` call :func:`job_size` (``mem_mb`` and ``runtime`` of the
pretraining, finetuning and baseline rules), so a benchmark of the tiny model asks for
what the tiny model needs and a paper-size one for more; a profile's ``set-resources``
still overrides them (the SLURM profiles keep the GPU runtimes, docs/workflow.md).

The estimate, per job (docs/workflow.md "How big a request is"):

    seconds = overhead_s[size] + steps x step_s[size] x batch_size / 32
    runtime = max(FLOOR_MIN, ceil(TIME_SAFETY x seconds / 60)) x attempt      (minutes)
    mem_mb  = max(FLOOR_MB, ceil(MEM_SAFETY x (BASE_MB + act_mb[size] x batch_size / 32
                                                + SESSION_MB x sessions))) x attempt

``step_s``, ``overhead_s`` and ``act_mb`` were measured on one CPU thread
(``/usr/bin/time -v`` on short ``rpnt pretrain`` / ``rpnt finetune`` / ``rpnt baseline``
runs, AMD EPYC, loaded machine; the commands are in docs/workflow.md); ``attempt`` (1,
then 2, 3 on Snakemake's retries) scales both, so a job killed by its memory or time
limit asks for more on its retry. The model sizes are :data:`rpnt.model.config.PRESETS`
(a test keeps the two lists equal); width or depth overrides of a preset are not looked
at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rpnt.errors import RpntError
from rpnt.rows import pretraining_named, rpnt_row

#: seconds of one training step at batch 32 on one CPU thread, per model size preset
#: (the slower of pretraining and finetuning; medium: pretraining only; large: medium
#: scaled by d_model^2 x layers, 2.2x, not measured)
STEP_S: dict[str, float] = {"tiny": 0.08, "small": 3.4, "medium": 25.5, "large": 57.0}
#: seconds of a job besides its steps: start, imports, reading the stores, the probe or
#: the scoring at the end (grows with the model: the probe of the pretrained encoder)
OVERHEAD_S: dict[str, float] = {"tiny": 6.0, "small": 18.0, "medium": 160.0,
                                "large": 355.0}
#: MB of peak RSS above the imports at batch 32, per model size preset (same runs)
ACT_MB: dict[str, float] = {"tiny": 330.0, "small": 1270.0, "medium": 3670.0,
                            "large": 8150.0}
#: the peers (rpnt baseline): the slowest and largest of GRU, NDT and POYO at the
#: sizes of config/tiny.yaml, per step at batch 32, their overhead and activations
PEER_STEP_S = 0.04
PEER_OVERHEAD_S = 15.0
PEER_ACT_MB = 300.0
BASE_MB = 240.0  #: peak RSS of `import torch, numpy, zarr` alone (233 MB measured)
#: per session a job reads (pretraining: every store of its input, an upper bound on
#: its corpus): (peak RSS of a tiny pretraining on 4 sessions - a finetuning on 1) / 3
SESSION_MB = 25.0
#: on top of the measured times, which were taken on a loaded machine already: other
#: CPUs, evaluation passes (not in the measured runs), data of other sizes
TIME_SAFETY = 2.0
MEM_SAFETY = 2.0
FLOOR_MIN = 10  #: minutes, the least a job asks for
FLOOR_MB = 1000

RULES = ("pretrain", "finetune", "baseline")


@dataclass(frozen=True)
class JobSize:
    """A job's request: ``mem_mb`` (MB) and ``runtime`` (minutes)."""

    mem_mb: int
    runtime: int


def _size(cfg: Mapping[str, Any], variant: str | None) -> str:
    overrides = (cfg.get("variants") or {}).get(variant) or {}
    size = (overrides.get("model") or {}).get("size") or cfg["model"]["size"]
    if size not in STEP_S:
        raise RpntError(f"config model.size {size!r}: no resource estimate for it "
                        f"(rpnt/workflow/resources.py knows {sorted(STEP_S)}); set mem_mb "
                        "and runtime for the rule with the profile's set-resources")
    return size


def _train(cfg: Mapping[str, Any], rule: str, model: str | None) -> Mapping[str, Any]:
    if rule == "baseline":
        return (cfg.get("baselines") or {}).get(model, {}).get("train") or {}
    return cfg[rule]["train"]


def job_size(cfg: Mapping[str, Any], rule: str, attempt: int = 1, sessions: int = 1,
             model: str | None = None, pretraining: str | None = None) -> JobSize:
    """The request of one ``rule`` job (pretrain | finetune | baseline) of a resolved
    config: ``sessions`` the stores it reads, ``model`` the table row (a variant's size,
    or a peer's steps), ``pretraining`` a pretraining's name (``<objective>[-<variant>]``:
    its variant's size), ``attempt`` Snakemake's try (1 first)."""
    if rule not in RULES:
        raise RpntError(f"internal error: no resource estimate for rule {rule!r}")
    if attempt < 1 or sessions < 1:
        raise RpntError(f"internal error: attempt {attempt}, sessions {sessions}")
    train = _train(cfg, rule, model)
    steps = int(train.get("steps", 0))
    batch = float(train.get("batch_size", 32)) / 32.0
    variant = model
    if rule == "pretrain" and pretraining is not None:
        variant = pretraining_named(cfg, pretraining).variant
    elif rule == "finetune" and model is not None:
        variant = rpnt_row(cfg, model).variant
    if rule == "finetune":  # every finetuning asks for the label-free mode's extra stage
        steps += int(cfg["finetune"].get("labelfree_steps", 0))
    if rule == "baseline":
        step_s, overhead_s, act_mb = PEER_STEP_S, PEER_OVERHEAD_S, PEER_ACT_MB
    else:
        size = _size(cfg, variant)
        step_s, overhead_s, act_mb = STEP_S[size], OVERHEAD_S[size], ACT_MB[size]
    seconds = overhead_s + steps * step_s * batch
    runtime = max(FLOOR_MIN, math.ceil(TIME_SAFETY * seconds / 60.0))
    mem = MEM_SAFETY * (BASE_MB + act_mb * batch + SESSION_MB * sessions)
    mem_mb = max(FLOOR_MB, math.ceil(mem))
    return JobSize(mem_mb=mem_mb * attempt, runtime=runtime * attempt)


def train_group(cfg: Mapping[str, Any], model: str) -> str:
    """The group of RPNT row ``model``'s finetuning jobs: ``scratch`` when it starts
    from random weights (ready as soon as its store is), ``finetune`` when it starts from
    a pretraining (ready only after it), so no group job waits on a pretraining for
    jobs that did not need it."""
    return "scratch" if rpnt_row(cfg, model).pretraining is None else "finetune"
