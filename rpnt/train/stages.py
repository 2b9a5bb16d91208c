"""Training in stages: several :func:`rpnt.train.trainer.fit` runs of one model in a row,
each with its own parameters, loss and schedule, logged as one run.

Staged finetuning trains the new read-in and the head with the core frozen, then
everything; label-free adaptation learns the read-in from unlabelled spikes, then the
head from labels. Each stage is a complete ``fit`` (warm-up and cosine schedule of its
own) with a rolling checkpoint of its own (``ckpt_dir/<stage name>``), so a run killed in
any stage resumes where it was: earlier stages restore their final weights from their
checkpoints without taking a step. The training log (``metrics.jsonl``, ``curves.png``)
holds every stage's records, steps counted from the first stage, each with its
``stage`` name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from rpnt.train import runlog
from rpnt.train.trainer import FitResult, TrainConfig, fit


@dataclass
class Stage:
    """One ``fit`` of a staged run (the arguments :func:`fit` takes)."""

    name: str
    loss_fn: Callable[[Any], Any]
    sample_batch: Callable[[np.random.Generator], Any]
    cfg: TrainConfig
    params: Iterable[Any]  #: parameters (or lr_scale groups) this stage trains
    frozen: Sequence[nn.Parameter] = ()  #: parameters without gradient in this stage
    val_fn: Callable[[], float] | None = None


def fit_stages(model: nn.Module, stages: Sequence[Stage], ckpt_dir: str | Path | None,
               log_dir: str | Path | None, run_key: str = "", title: str = "") -> FitResult:
    """Run ``stages`` in order on ``model``; one merged :class:`FitResult` and log.

    A single stage is exactly one ``fit`` (checkpoints and log in ``ckpt_dir`` and
    ``log_dir``). Every parameter requires a gradient again when this returns.
    """
    if len(stages) == 1:
        st = stages[0]
        return _fit_one(model, st, ckpt_dir, log_dir, run_key, title)
    results, history, offset = [], [], 0
    for st in stages:
        res = _fit_one(model, st, None if ckpt_dir is None else Path(ckpt_dir) / st.name,
                       None, f"{run_key}:{st.name}", f"{title}: {st.name}")
        history += [{**r, "step": r["step"] + offset, "stage": st.name} for r in res.history]
        offset += res.steps_done
        results.append(res)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        runlog.write_history(log_dir, history)
        runlog.plot_curves(log_dir, history, title=title)
    last = results[-1]
    return FitResult(steps_done=offset, best_val=last.best_val,
                     best_step=None if last.best_step is None else last.best_step
                     + offset - last.steps_done, stopped_early=last.stopped_early,
                     final_loss=last.final_loss, resumed_from=results[0].resumed_from,
                     seconds=sum(r.seconds for r in results), history=history)


def _fit_one(model: nn.Module, st: Stage, ckpt_dir: str | Path | None,
             log_dir: str | Path | None, run_key: str, title: str) -> FitResult:
    for p in st.frozen:
        p.requires_grad_(False)
    try:
        return fit(model, st.loss_fn, st.sample_batch, st.cfg, ckpt_dir=ckpt_dir,
                   log_dir=log_dir, val_fn=st.val_fn, params=st.params, run_key=run_key,
                   title=title)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
