"""Velocity decoding on a target session: RPNT from scratch, frozen, few-shot or full.

Modes:

- ``scratch``: a randomly initialised RPNT, all of it trained on the training trials;
- ``frozen``: the pretrained encoder is frozen except its read-in of unit slots
  (``Linear(N -> d)``, whose slots hold the target session's own units); the read-in and
  the velocity head are trained;
- ``fewshot``: the pretrained model finetuned end to end on a seeded random ``fraction``
  of the training trials (windows never cross into other trials);
- ``full``: the pretrained model finetuned end to end on all training trials.

Loss: MSE on velocity normalised with the statistics of the bins trained on. Early
stopping and selection of the best step: ``1 - R²`` on the valid trials (stitched, on
the scored bins, as evaluation does), else the MSE on fixed windows of valid trials.

New units are no problem: each site's units fill the tokenizer's N slots
(``Linear(N -> d)``), so nothing is tied to a unit identity of the pretraining sessions.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rpnt.data.batches import (
    BatchSampler,
    Observer,
    SessionWindows,
    Vocab,
    eval_unit_choice,
    velocity_stats,
)
from rpnt.data.device import to_device
from rpnt.data.session import SessionData
from rpnt.data.windows import evenly_spaced, valid_window_starts
from rpnt.decoders.rpnt_decoder import RPNTDecoder
from rpnt.errors import RpntError
from rpnt.model import RPNTConfig
from rpnt.scoring.stitch import evaluate_session, scored_mask
from rpnt.train.config import FinetuneConfig
from rpnt.train.trainer import FitResult, fit

log = logging.getLogger(__name__)

MODES = ("scratch", "frozen", "fewshot", "full")


def fewshot_bins(session: SessionData, fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """Training bins of a seeded random ``fraction`` of the training trials (>= 1 trial).

    Returns the (n_time,) bool mask and the number of trials kept.
    """
    train_trials = np.flatnonzero(session.trial_split == "train")
    if train_trials.size == 0:
        raise RpntError(f"session {session.session}: no training trial for few-shot")
    k = max(1, round(fraction * train_trials.size))
    chosen = np.sort(np.random.default_rng(seed).choice(train_trials, k, replace=False))
    return session.split_bins("train") & session.bins_of_trials(chosen), k


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


def finetune(session: SessionData, mode: str, fcfg: FinetuneConfig, seed: int,
             model_cfg: RPNTConfig | None = None, init: RPNTDecoder | None = None,
             fraction: float | None = None, ckpt_dir: str | Path | None = None,
             log_dir: str | Path | None = None, run_key: str = "",
             observer: Observer | None = None
             ) -> tuple[RPNTDecoder, FitResult, dict[str, Any]]:
    """Train a velocity decoder on ``session``; returns (RPNTDecoder, FitResult, info).

    ``model_cfg`` (RPNTConfig) is used for ``scratch``; the other modes take the model
    and its vocabulary from ``init`` (an RPNTDecoder from pretraining), which is not
    modified. ``info`` records the bins/trials used.
    """
    if mode not in MODES:
        raise RpntError(f"finetune mode {mode!r} is not one of {MODES}")
    # Seeds the fresh model of scratch and the read-in rows set_vocab adds for the
    # target session in the other modes (drawn from torch's default generator).
    torch.manual_seed(seed)
    if mode == "scratch":
        if model_cfg is None:
            raise RpntError("finetune --mode scratch needs a model config")
        decoder = RPNTDecoder.build(model_cfg, Vocab.from_sessions([session]), eval_seed=seed)
    else:
        if init is None:
            raise RpntError(f"finetune --mode {mode} needs --init PRETRAIN_DIR "
                            "(the output of 'rpnt pretrain')")
        decoder = RPNTDecoder(copy.deepcopy(init.hparams))
        decoder.load_state_dict(init.state_dict())
        decoder.hparams["eval_seed"] = int(seed)
        decoder.set_vocab(Vocab.from_sessions([session], base=init.vocab))
    cfg = decoder.config
    if cfg.n_axis != session.velocity.shape[1]:
        raise RpntError(f"session {session.session}: {session.velocity.shape[1]} velocity "
                        f"axes but the model predicts {cfg.n_axis}; set model.n_axis")

    allowed = session.split_bins("train")
    info: dict[str, Any] = {"n_train_trials": int((session.trial_split == "train").sum())}
    if mode == "fewshot":
        frac = fcfg.fewshot_fraction if fraction is None else fraction
        if not 0.0 < frac <= 1.0:
            raise RpntError(f"--fraction {frac} must be in (0, 1]")
        allowed, k = fewshot_bins(session, frac, seed)
        info.update(fraction=frac, n_trials_used=k)
    else:
        info["n_trials_used"] = info["n_train_trials"]
    info["n_bins_used"] = int(allowed.sum())
    mean, std = velocity_stats([session], [allowed])
    decoder.set_normalisation(mean, std)
    sw = SessionWindows(session, decoder.vocab, cfg.coords, cfg.n_units, cfg.window,
                        allowed=allowed, vel_mean=mean, vel_std=std)
    tcfg = replace(fcfg.train, seed=seed)
    sampler = BatchSampler([sw], tcfg.batch_size, fcfg.subsets, observer=observer,
                           unit_sampling=fcfg.unit_sampling, seed=seed)
    model = decoder.model
    if mode == "frozen":
        # The pretrained transformer is frozen; the read-in of unit slots is not: the
        # target session's units fill the slots in an order pretraining never saw (there
        # slots held random unit subsets), so a frozen read-in only passes slot-symmetric
        # features (population rate) and the head cannot decode direction (measured:
        # docs/model.md "Measured training fixes").
        for p in model.core_parameters():
            p.requires_grad_(False)
        params = [*model.readin_parameters(), *model.head_parameters()]
    elif mode == "scratch":
        params = [*model.encoder_parameters(), *model.head_parameters()]
    else:
        params = [{"params": list(model.encoder_parameters()),
                   "lr_scale": fcfg.encoder_lr_scale},
                  {"params": list(model.head_parameters())}]

    def loss_fn(b: dict[str, Any]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(decoder(b).float(), b["velocity"])

    val_fn = _valid_fn(decoder, sw, fcfg, seed)
    result = fit(decoder, loss_fn, sampler, tcfg, ckpt_dir=ckpt_dir, log_dir=log_dir,
                 val_fn=val_fn, params=params, run_key=run_key, title=f"finetune {mode}")
    for p in decoder.parameters():
        p.requires_grad_(True)
    decoder.cpu().eval()
    return decoder, result, info
