"""Velocity decoding on a target session: RPNT from scratch, or adapted from pretraining.

Modes (every pretrained mode first gives the target session read-in rows of its own,
seeded, since its units fill the slots in an order pretraining never saw):

- ``scratch``: a randomly initialised RPNT, all of it trained on the labelled trials;
- ``frozen``: the pretrained core frozen; the target's read-in and the velocity head
  trained on the labelled trials;
- ``full``: everything trained (the encoder at ``encoder_lr_scale`` x lr);
- ``staged``: first the read-in and the head with the core frozen
  (``stage1_fraction`` of the steps), then everything, the core at ``staged_lr_scale``
  x lr: the new read-in is learned before the core may move;
- ``labelfree``: the core frozen, the target's read-in and reconstruction read-out
  learned with the pretraining objective on the target's *unlabelled* training-split
  spikes (``labelfree_steps``; no velocity, no valid or test bin is read), then the
  velocity head alone on the labelled trials.

Labelled trials: a :class:`rpnt.data.budget.Budget` (the label-efficiency benchmark's k
trials, or every training trial); velocity normalisation uses its bins only. Loss: MSE
on normalised velocity. Model selection (``selection``): ``valid`` keeps the weights of
the best evaluation by ``1 - R²`` on the valid trials (stitched, on the scored bins, as
evaluation does; else the MSE on fixed windows of valid trials) with early stopping;
``none`` trains a fixed schedule and keeps the last weights, so no label outside the
budget is read.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from rpnt.data.batches import (
    BatchSampler,
    Observer,
    SessionWindows,
    Vocab,
    eval_unit_choice,
    velocity_stats,
)
from rpnt.data.budget import Budget, budget_bins
from rpnt.data.device import to_device
from rpnt.data.session import SessionData
from rpnt.data.windows import evenly_spaced, valid_window_starts
from rpnt.decoders.rpnt_decoder import RPNTDecoder
from rpnt.errors import RpntError
from rpnt.model import RPNTConfig
from rpnt.rows import MODES
from rpnt.scoring.stitch import evaluate_session, scored_mask
from rpnt.train.config import FinetuneConfig
from rpnt.train.stages import Stage, fit_stages
from rpnt.train.trainer import FitResult

log = logging.getLogger(__name__)

SELECTIONS = ("valid", "none")


def valid_batch(sw: SessionWindows, n_windows: int, seed: int) -> dict[str, Any] | None:
    """Fixed windows (at most ``n_windows``, evenly spaced) of valid trials, or None."""
    starts = evenly_spaced(valid_window_starts(sw.session.split_bins("valid"), sw.window),
                           n_windows)
    if starts.size == 0:
        return None
    return sw.make_batch(starts, eval_unit_choice(sw, starts.size, seed))


def _valid_fn(decoder: RPNTDecoder, sw: SessionWindows, fcfg: FinetuneConfig,
              seed: int) -> Callable[[], float] | None:
    """Validation loss for early stopping and model selection.

    ``1 - R²`` of stitched predictions on the valid trials' scored bins (the benchmark's
    metric and the baselines' rule, so every model is selected alike); without scored
    valid bins, the MSE on fixed windows of valid trials; None when there is neither.
    """
    session = sw.session
    if scored_mask(session, "valid").sum() >= 2:
        return lambda: 1.0 - evaluate_session(decoder, session, "valid", sw.window).r2["mean"]
    vb = valid_batch(sw, fcfg.val_windows, seed)
    if vb is None:
        log.warning("%s: no window of valid trials; training without early stopping",
                    session.session)
        return None

    def window_mse() -> float:
        b = to_device(vb, next(decoder.parameters()).device)
        return float(torch.nn.functional.mse_loss(decoder(b).float(), b["velocity"]))

    return window_mse


def start_decoder(session: SessionData, mode: str, seed: int,
                  model_cfg: RPNTConfig | None, init: RPNTDecoder | None) -> RPNTDecoder:
    """The decoder a mode starts from: fresh (``scratch``) or a copy of ``init`` with
    read-in rows for ``session`` (``init`` itself is not modified)."""
    if mode not in MODES:
        raise RpntError(f"finetune mode {mode!r} is not one of {MODES}")
    # Seeds the fresh model of scratch and the read-in rows set_vocab adds for the
    # target session in the other modes (drawn from torch's default generator).
    torch.manual_seed(seed)
    if mode == "scratch":
        if model_cfg is None:
            raise RpntError("finetune --mode scratch needs a model config")
        return RPNTDecoder.build(model_cfg, Vocab.from_sessions([session]), eval_seed=seed)
    if init is None:
        raise RpntError(f"finetune --mode {mode} needs --init PRETRAIN_DIR "
                        "(the output of 'rpnt pretrain')")
    decoder = RPNTDecoder(copy.deepcopy(init.hparams))
    decoder.load_state_dict(init.state_dict())
    decoder.hparams["eval_seed"] = int(seed)
    decoder.set_vocab(Vocab.from_sessions([session], base=init.vocab))
    return decoder


def labelfree_stage(decoder: RPNTDecoder, session: SessionData, fcfg: FinetuneConfig,
                    seed: int, observer: Observer | None = None) -> Stage:
    """The label-free stage: the read-in and reconstruction read-out of ``session`` learned
    with the pretraining objective (masked reconstruction + site contrast) on windows of
    its training-split bins, everything else frozen.

    It reads spike counts of training-split bins only (``split == train``: inside and
    between training trials, never within the padding of a valid or test trial) and no
    velocity at all; ``observer`` is told every window it draws (tests).
    """
    model, cfg = decoder.model, decoder.config
    sw = SessionWindows(session, decoder.vocab, cfg.coords, cfg.n_units, cfg.window,
                        allowed=session.split_mask("train"))
    tcfg = replace(fcfg.train, steps=fcfg.labelfree_steps, seed=seed)
    sampler = BatchSampler([sw], tcfg.batch_size, with_velocity=False, observer=observer,
                           unit_sampling="fixed", seed=seed)
    learned = [*model.readin_parameters(), *model.readout_parameters()]
    mine = {id(p) for p in learned}

    def loss_fn(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = model.pretrain_loss(b["counts"], b["unit_mask"], b["coords"], b["site_mask"],
                                  readin=b["readin"], window=b["window"])
        return {k: out[k] for k in ("loss", "poisson", "contrastive")}

    return Stage("labelfree", loss_fn, sampler, tcfg, learned,
                 frozen=[p for p in model.parameters() if id(p) not in mine])


def _decode_stages(decoder: RPNTDecoder, mode: str, fcfg: FinetuneConfig, sampler: Any,
                   tcfg: Any, val_fn: Callable[[], float] | None) -> list[Stage]:
    """The supervised stage(s) of ``mode`` (after the label-free stage of ``labelfree``)."""
    model = decoder.model

    def loss_fn(b: dict[str, Any]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(decoder(b).float(), b["velocity"])

    core = list(model.core_parameters())
    readin_head = [*model.readin_parameters(), *model.head_parameters()]
    if mode == "scratch":
        return [Stage("decode", loss_fn, sampler, tcfg,
                      [*model.encoder_parameters(), *model.head_parameters()], val_fn=val_fn)]
    if mode == "frozen":
        return [Stage("decode", loss_fn, sampler, tcfg, readin_head, frozen=core,
                      val_fn=val_fn)]
    if mode == "full":
        return [Stage("decode", loss_fn, sampler, tcfg,
                      [{"params": list(model.encoder_parameters()),
                        "lr_scale": fcfg.encoder_lr_scale},
                       {"params": list(model.head_parameters())}], val_fn=val_fn)]
    if mode == "labelfree":
        head = list(model.head_parameters())
        mine = {id(p) for p in head}
        return [Stage("decode", loss_fn, sampler, tcfg, head,
                      frozen=[p for p in model.parameters() if id(p) not in mine],
                      val_fn=val_fn)]
    # staged: read-in + head with the core frozen, then everything (core at a lower lr)
    n1 = min(tcfg.steps - 1, max(1, round(fcfg.stage1_fraction * tcfg.steps)))
    if n1 < 1:
        raise RpntError(f"finetune --mode staged needs finetune.train.steps >= 2, got "
                        f"{tcfg.steps}")
    first = replace(tcfg, steps=n1, warmup_steps=min(tcfg.warmup_steps, n1))
    second = replace(tcfg, steps=tcfg.steps - n1, warmup_steps=0, seed=tcfg.seed + 1)
    return [Stage("readin", loss_fn, sampler, first, readin_head, frozen=core, val_fn=val_fn),
            Stage("all", loss_fn, sampler, second,
                  [{"params": core, "lr_scale": fcfg.staged_lr_scale},
                   {"params": readin_head}], val_fn=val_fn)]


def finetune(session: SessionData, mode: str, fcfg: FinetuneConfig, seed: int,
             model_cfg: RPNTConfig | None = None, init: RPNTDecoder | None = None,
             budget: Budget | None = None, selection: str = "valid",
             ckpt_dir: str | Path | None = None, log_dir: str | Path | None = None,
             run_key: str = "", observer: Observer | None = None
             ) -> tuple[RPNTDecoder, FitResult, dict[str, Any]]:
    """Train a velocity decoder on ``session``; returns (RPNTDecoder, FitResult, info).

    ``model_cfg`` (RPNTConfig) is used for ``scratch``; the other modes take the model
    and its vocabulary from ``init`` (an RPNTDecoder from pretraining), which is not
    modified. ``budget``: the labelled trials (default: every training trial).
    ``selection``: ``valid`` or ``none`` (module docstring). ``info`` records the
    labelled trials and bins used. ``observer`` sees every window of the labelled stages.
    """
    if selection not in SELECTIONS:
        raise RpntError(f"model selection {selection!r} is not one of {SELECTIONS}")
    decoder = start_decoder(session, mode, seed, model_cfg, init)
    cfg = decoder.config
    if cfg.n_axis != session.velocity.shape[1]:
        raise RpntError(f"session {session.session}: {session.velocity.shape[1]} velocity "
                        f"axes but the model predicts {cfg.n_axis}; set model.n_axis")
    budget = budget or budget_bins(session, "all", seed, cfg.window)
    info: dict[str, Any] = {"n_train_trials": int((session.trial_split == "train").sum()),
                            **budget.info(), "selection": selection}
    mean, std = velocity_stats([session], [budget.bins])
    decoder.set_normalisation(mean, std)
    sw = SessionWindows(session, decoder.vocab, cfg.coords, cfg.n_units, cfg.window,
                        allowed=budget.bins, vel_mean=mean, vel_std=std)
    tcfg = replace(fcfg.train, seed=seed)
    sampler = BatchSampler([sw], tcfg.batch_size, fcfg.subsets, observer=observer,
                           unit_sampling=fcfg.unit_sampling, seed=seed)
    val_fn = _valid_fn(decoder, sw, fcfg, seed) if selection == "valid" else None
    stages = [labelfree_stage(decoder, session, fcfg, seed)] if mode == "labelfree" else []
    stages += _decode_stages(decoder, mode, fcfg, sampler, tcfg, val_fn)
    result = fit_stages(decoder, stages, ckpt_dir, log_dir, run_key=run_key,
                        title=f"finetune {mode}")
    decoder.cpu().eval()
    return decoder, result, info
