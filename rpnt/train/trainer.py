"""The generic trainer every trainable decoder uses (RPNT, GRU, NDT, POYO).

API::

    from rpnt.train.trainer import TrainConfig, fit

    cfg = TrainConfig(steps=300, batch_size=32, lr=1e-3, seed=0)
    result = fit(
        model,                # torch.nn.Module (moved to cfg's device)
        loss_fn,              # batch -> scalar Tensor, or dict with "loss" (+ scalars to log)
        sample_batch,         # np.random.Generator -> batch (tensors, nested dict/list/tuple)
        cfg,
        ckpt_dir="out.ckpt",  # rolling resume checkpoint (last.pt); None: no checkpoints
        log_dir="out_logs",   # metrics.jsonl + curves.png; None: no log files
        val_fn=lambda: 0.5,   # validation loss (lower is better); None: no early stopping
        params=None,          # parameters to optimise (default: all with requires_grad),
                              # or [{"params": [...], "lr_scale": 0.1}, ...] groups
    )
    result.best_val, result.steps_done, result.stopped_early

What ``fit`` does, step by step (``step`` counts finished optimizer steps, 0..cfg.steps):

- ``batch = sample_batch(rng)`` with ``rng = np.random.default_rng(cfg.seed)``; tensors in
  the batch are moved to the device. All randomness of a run flows from ``cfg.seed``:
  the batch ``Generator``, ``torch.manual_seed`` (dropout, masks) and Python ``random``.
- AdamW (weight decay only on parameters with >= 2 dims), linear warm-up over
  ``warmup_steps`` then cosine decay to ``min_lr_ratio * lr`` at ``steps`` (:func:`lr_factor`),
  gradient-norm clipping at ``grad_clip``, bf16 autocast on CUDA, fp32 on CPU,
  optional ``torch.compile`` of ``loss_fn``.
- Every ``eval_every`` steps (and at the last step) ``val_fn()`` is called with the model
  in eval mode under ``torch.no_grad``; the best weights are kept; after ``patience``
  evaluations without improvement training stops early (0 disables early stopping).
  At the end the best weights are loaded back into ``model`` (when ``val_fn`` is given).
- Every ``checkpoint_every`` steps, at the end, and when SIGTERM or SIGUSR1 arrives (SLURM
  preemption), ``ckpt_dir/last.pt`` is rewritten atomically (:mod:`rpnt.train.checkpoint`).
  After a signal the run raises :class:`TrainingInterrupted`; rerunning the same call
  resumes from the checkpoint and ends with bit-identical weights and history (on CPU).
  A checkpoint written under a different ``run_key`` (config fingerprint) is ignored with
  a warning and overwritten.
- Data parallel (several ranks: :mod:`rpnt.ranks`, started by torchrun or srun):
  ``sample_batch`` must then be an indexed sampler, with ``draw(index, part, parts)``
  giving rank ``part``'s share of batch ``index`` (:class:`rpnt.data.sampler.EpochSampler`;
  batch ``index`` = ``step * accumulation + micro``, a pure function of the index, so a
  run resumes with any number of ranks). Gradients are averaged over ranks in one flat
  all_reduce before clipping (the loss function normalises by global counts: the mean of
  the ranks' losses is the loss of the whole batch); logged scalars are means over
  ranks; every rank validates (the same fixed batches, no collective); rank 0 alone
  writes checkpoints and logs. A SIGTERM/SIGUSR1 on any rank reaches every rank at the
  next step's all_reduce: all checkpoint (rank 0 writes) and raise
  :class:`TrainingInterrupted`. With ``accumulation`` > 1 each micro-step's loss is
  divided by ``accumulation``. An indexed sampler is used the same way in one process.
- ``log_dir/metrics.jsonl`` gets ``{"step", "loss", "lr", "grad_norm", <extra losses>}``
  every ``log_every`` steps (means over the interval) and ``{"step", "val_loss"}`` at
  each evaluation; ``log_dir/curves.png`` is drawn at the end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rpnt import ranks
from rpnt.data.device import choose_device, to_device
from rpnt.errors import RpntError
from rpnt.fields import check_fields, setting
from rpnt.train import runlog
from rpnt.train.state import FitState, SignalFlag

log = logging.getLogger(__name__)

Batch = Any


@dataclass
class TrainConfig:
    """Optimisation settings of one run (shared by pretraining, finetuning and peers)."""

    steps: int = setting(1000, minimum=1)  #: optimizer steps
    #: windows per optimizer step over all ranks and micro-steps (read by the batch
    #: samplers, not by fit): each rank's forward pass sees batch_size / (ranks x
    #: accumulation), whatever the number of ranks
    batch_size: int = setting(32, minimum=1)
    #: micro-steps per optimizer step (gradient accumulation): each is its own batch of
    #: batch_size / accumulation windows over all ranks
    accumulation: int = setting(1, minimum=1)
    lr: float = setting(1e-3, exclusive_minimum=0)  #: peak learning rate
    #: AdamW decoupled weight decay (matrices only)
    weight_decay: float = setting(0.01, minimum=0)
    warmup_steps: int = setting(50, minimum=0)  #: linear warm-up length
    min_lr_ratio: float = setting(0.0, minimum=0, maximum=1)  #: final lr = ratio * lr
    grad_clip: float = setting(1.0)  #: max gradient norm; <= 0 disables clipping
    eval_every: int = setting(50, minimum=1)  #: steps between validations
    #: steps between rolling checkpoints; <= 0: only at the end
    checkpoint_every: int = setting(100)
    #: evaluations without improvement before stopping; 0 = never stop
    patience: int = setting(0, minimum=0)
    log_every: int = setting(10, minimum=1)  #: steps per metrics.jsonl training record
    compile: bool = setting(False)  #: torch.compile the loss function
    seed: int = setting(0, configurable=False)  #: from the command line (--seed)
    #: "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1"
    device: str = setting("auto")

    def __post_init__(self) -> None:
        check_fields(self, "train")


@dataclass
class FitResult:
    """What a run achieved. ``history`` holds the metrics.jsonl records."""

    steps_done: int
    best_val: float | None
    best_step: int | None
    stopped_early: bool
    final_loss: float | None
    resumed_from: int  #: step restored from a checkpoint (0 for a fresh run)
    seconds: float  #: wall time of this call (not of earlier interrupted calls)
    history: list[dict[str, Any]] = field(default_factory=list)
    loader_seconds: float = 0.0  #: of ``seconds``, drawing batches (this rank)


class TrainingInterrupted(RpntError):
    """Raised after a SIGTERM/SIGUSR1 checkpoint; rerun the same command to resume."""


def lr_factor(step: int, steps: int, warmup_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the peak lr for optimizer step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` for ``step < warmup_steps``, then a half
    cosine from 1 to ``min_lr_ratio`` reached at ``step == steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with decay on matrices/embeddings only (biases and norm gains are not decayed).

    ``params``: parameters, or dicts ``{"params": [...], "lr_scale": s}`` whose learning
    rate is ``s * cfg.lr`` (e.g. a smaller rate for a pretrained encoder).
    """
    parts = [p if isinstance(p, dict) else {"params": [p]} for p in params]
    groups = []
    for part in parts:
        ps = [p for p in part["params"] if p.requires_grad]
        lr = cfg.lr * float(part.get("lr_scale", 1.0))
        groups += [{"params": [p for p in ps if p.ndim >= 2], "weight_decay": cfg.weight_decay,
                    "lr": lr},
                   {"params": [p for p in ps if p.ndim < 2], "weight_decay": 0.0, "lr": lr}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise RpntError("nothing to train: no parameter requires a gradient")
    # merge groups that share lr and decay so the optimizer state stays compact
    merged: dict[tuple[float, float], list[nn.Parameter]] = {}
    for g in groups:
        merged.setdefault((g["lr"], g["weight_decay"]), []).extend(g["params"])
    return torch.optim.AdamW([{"params": ps, "lr": lr, "weight_decay": wd}
                              for (lr, wd), ps in merged.items()], lr=cfg.lr)


def _split_loss(out: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if isinstance(out, dict):
        if "loss" not in out:
            raise RpntError("internal error: loss_fn returned a dict without 'loss'")
        return out["loss"], {k: v for k, v in out.items() if k != "loss"}
    return out, {}


def fit(
    model: nn.Module,
    loss_fn: Callable[[Batch], Any],
    sample_batch: Callable[[np.random.Generator], Batch],
    cfg: TrainConfig,
    ckpt_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    val_fn: Callable[[], float] | None = None,
    params: Iterable[Any] | None = None,
    run_key: str = "",
    title: str = "",
) -> FitResult:
    """Train ``model`` (see the module docstring for the full contract)."""
    t0 = time.perf_counter()
    device = choose_device(cfg.device)
    model.to(device)
    me = ranks.current()
    indexed = callable(getattr(sample_batch, "draw", None))
    if me.world > 1 and not indexed:
        raise RpntError(f"{me.world} ranks need an indexed batch sampler (draw(index, part, "
                        "parts)); this training stage runs in one process only")
    if not me.main:  # rank 0 alone writes logs and checkpoints
        log_dir = None
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = make_optimizer(list(model.parameters() if params is None else params), cfg)
    trained = [p for g in opt.param_groups for p in g["params"]]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio))
    step_fn = torch.compile(loss_fn) if cfg.compile else loss_fn
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    key = run_key or repr(sorted(asdict(cfg).items()))
    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")

    state = None
    if ckpt_dir is not None:
        Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
        state = FitState.restore(ckpt_dir, key, model, opt, sched, rng)
    state = state or FitState()
    resumed_from = state.step
    if me.world > 1:
        ranks.broadcast_parameters(model)  # one start for all ranks
        # dropout differs between ranks (rank 0 keeps the single-process stream)
        if me.rank:
            torch.manual_seed(cfg.seed * 7919 + me.rank * 1000003 + state.step)

    def save() -> None:
        if ckpt_dir is not None and me.main:
            state.save(ckpt_dir, key, model, opt, sched, rng)

    def emit(record: dict[str, Any]) -> None:  # live log, rewritten whole at the end
        if log_dir is not None:
            runlog.append_record(log_dir, record)

    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        runlog.write_history(log_dir, state.history)

    last_loss: float | None = None
    loader_seconds = 0.0
    # disable=None: a progress bar on a terminal only, none in log files
    bar = tqdm(total=cfg.steps, initial=state.step, disable=None if me.main else True,
               desc=title or "train", dynamic_ncols=True, leave=False)
    with SignalFlag() as flag:
        while state.step < cfg.steps and not state.stopped:
            # the schedule's lr (of parameters with lr_scale 1) for the step being taken
            lr_now = cfg.lr * lr_factor(state.step, cfg.steps, cfg.warmup_steps,
                                        cfg.min_lr_ratio)
            model.train()
            opt.zero_grad(set_to_none=True)
            scalars: dict[str, float] = {}
            for micro in range(cfg.accumulation):
                index = state.step * cfg.accumulation + micro
                t_load = time.perf_counter()
                raw = (sample_batch.draw(index, me.rank, me.world) if indexed  # type: ignore[attr-defined]
                       else sample_batch(rng))
                loader_seconds += time.perf_counter() - t_load
                with autocast:
                    loss, extra = _split_loss(step_fn(to_device(raw, device)))
                (loss / cfg.accumulation if cfg.accumulation > 1 else loss).backward()
                for k, v in {"loss": loss, **extra}.items():
                    scalars[k] = scalars.get(k, 0.0) + float(v.detach()) / cfg.accumulation
            signalled = flag.received is not None
            if me.world > 1:  # means over ranks; a signal on any rank stops every rank
                vec = torch.tensor([*scalars.values(), float(signalled)], dtype=torch.float64,
                                   device=device)
                vec = ranks.global_sum(vec).tolist()
                scalars = {k: v / me.world for k, v in zip(scalars, vec, strict=False)}
                signalled = vec[-1] > 0
            if not math.isfinite(scalars["loss"]):
                raise RpntError(f"training diverged: loss is {scalars['loss']} at step "
                                f"{state.step}; lower the learning rate or check the input data")
            ranks.average_gradients(trained)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trained, clip))
            opt.step()
            sched.step()
            last_loss = scalars["loss"]
            state.add_step({"loss": last_loss, "grad_norm": grad_norm,
                            **{k: v for k, v in scalars.items() if k != "loss"}})
            bar.update(1)
            last = state.step == cfg.steps
            if state.step % cfg.log_every == 0 or last:
                record = state.close_interval(lr_now)
                emit(record)
                bar.set_postfix(loss=f"{record['loss']:.4g}")
            if val_fn is not None and (state.step % cfg.eval_every == 0 or last):
                model.eval()
                with torch.no_grad(), autocast:
                    val = float(val_fn())
                emit(state.add_validation(val, model, cfg.patience))
            if last or state.stopped or (cfg.checkpoint_every > 0
                                         and state.step % cfg.checkpoint_every == 0):
                save()
            if signalled:
                save()
                bar.close()
                ranks.barrier()  # the checkpoint is written before any rank leaves
                name = (signal.Signals(flag.received).name if flag.received is not None
                        else "a signal on another rank")
                raise TrainingInterrupted(
                    f"{name} received at step {state.step}; "
                    f"checkpoint saved to {ckpt_dir}; rerun the same command to resume")
    bar.close()
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    if last_loss is None:  # resumed after the last step: the last logged loss
        losses = [r["loss"] for r in state.history if "loss" in r]
        last_loss = losses[-1] if losses else None
    if log_dir is not None:
        runlog.write_history(log_dir, state.history)
        runlog.plot_curves(log_dir, state.history, title=title)
    return FitResult(steps_done=state.step, best_val=state.best_val,
                     best_step=state.best_step, stopped_early=state.stopped,
                     final_loss=last_loss, resumed_from=resumed_from,
                     seconds=time.perf_counter() - t0, history=state.history,
                     loader_seconds=loader_seconds)
