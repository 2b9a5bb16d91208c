"""What the trainer carries between steps (:class:`FitState`, saved in the rolling
checkpoint) and how it hears SLURM's signals (:class:`SignalFlag`); see
:mod:`rpnt.train.trainer`."""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rpnt.train import checkpoint as ckpt_io

log = logging.getLogger(__name__)


class SignalFlag:
    """Record SIGTERM/SIGUSR1 instead of dying, so the loop can checkpoint first."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None))
                    if s is not None)

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> SignalFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


@dataclass
class FitState:
    """Everything a run carries from one step to the next besides the model, optimizer,
    scheduler and random generators; the rolling checkpoint holds all of them."""

    step: int = 0  #: finished optimizer steps
    history: list[dict[str, Any]] = field(default_factory=list)  #: metrics.jsonl records
    best_val: float | None = None
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None  #: CPU copy of the best weights
    bad_evals: int = 0  #: evaluations since the last improvement
    stopped: bool = False  #: early stopping triggered
    #: sums of the scalars logged over the open logging interval, and its step count
    #: (checkpointed, so that resumed means cover the same steps)
    interval: dict[str, float] = field(default_factory=dict)
    interval_steps: int = 0

    def add_step(self, scalars: dict[str, float]) -> None:
        """Count one finished step with its scalars (loss, grad_norm, extra losses)."""
        self.step += 1
        for k, v in scalars.items():
            self.interval[k] = self.interval.get(k, 0.0) + v
        self.interval_steps += 1

    def close_interval(self, lr: float) -> dict[str, Any]:
        """The training record of the interval just ended (means); starts the next."""
        record = {"step": self.step, "lr": lr,
                  **{k: v / self.interval_steps for k, v in self.interval.items()}}
        self.interval, self.interval_steps = {}, 0
        self.history.append(record)
        return record

    def add_validation(self, val: float, model: nn.Module, patience: int) -> dict[str, Any]:
        """Record a validation loss; keep the best weights; decide on early stopping."""
        if self.best_val is None or val < self.best_val:
            self.best_val, self.best_step, self.bad_evals = val, self.step, 0
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in model.state_dict().items()}
        else:
            self.bad_evals += 1
            self.stopped = patience > 0 and self.bad_evals >= patience
        record = {"step": self.step, "val_loss": val}
        self.history.append(record)
        return record

    def save(self, ckpt_dir: str | Path, run_key: str, model: nn.Module,
             opt: torch.optim.Optimizer, sched: Any, rng: np.random.Generator) -> None:
        """Atomically rewrite the rolling checkpoint (loadable with weights_only=True)."""
        ckpt_io.save_checkpoint(ckpt_dir, {
            "run_key": run_key, "step": self.step, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": ckpt_io.rng_state(rng), "history": json.dumps(self.history),
            "best_val": self.best_val, "best_step": self.best_step,
            "best_state": self.best_state, "bad_evals": self.bad_evals,
            "stopped": self.stopped,
            "log_acc": json.dumps([self.interval, self.interval_steps]),
        })

    @classmethod
    def restore(cls, ckpt_dir: str | Path, run_key: str, model: nn.Module,
                opt: torch.optim.Optimizer, sched: Any,
                rng: np.random.Generator) -> FitState | None:
        """The state of ``ckpt_dir``'s checkpoint, loading model, optimizer, scheduler and
        generators in place; None without a checkpoint of this ``run_key``."""
        saved = ckpt_io.load_checkpoint(ckpt_dir)
        if saved is None:
            return None
        if saved.get("run_key") != run_key:
            log.warning("%s: checkpoint belongs to another configuration; starting afresh",
                        ckpt_dir)
            return None
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        ckpt_io.set_rng_state(saved["rng"], rng)
        interval, interval_steps = json.loads(saved["log_acc"])
        log.info("resumed from %s at step %d", ckpt_dir, int(saved["step"]))
        return cls(step=int(saved["step"]), history=json.loads(saved["history"]),
                   best_val=saved["best_val"], best_step=saved["best_step"],
                   best_state=saved["best_state"], bad_evals=int(saved["bad_evals"]),
                   stopped=bool(saved["stopped"]), interval=interval,
                   interval_steps=interval_steps)
