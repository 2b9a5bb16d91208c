"""Ridge probe of frozen features: how much velocity an encoder's pooled features carry.

After pretraining, :func:`probe_report` fits, on a few pretraining sessions, a per-bin
ridge map (no lags) to velocity from three feature sets: the pooled features of the
pretrained encoder (its own read-in rows for the session), of a randomly initialised
encoder of the same architecture (the baseline any encoder reaches), and the raw spike
counts. Features of overlapping windows (50 %) are averaged per bin, as stitched
predictions are. The ridge is fit on the session's training trials, its penalty chosen on
the valid trials' scored bins (all valid-trial bins when none is scored), and scored (R²,
mean of the axes) on the test trials' scored bins, which pretraining never saw (it reads
training bins only). A linear map of averaged features equals the average of its
per-window predictions, so this is the score a frozen encoder + linear head would get.

That probe reads labels of sessions the joint objective fitted. Transfer happens on the
target: :func:`target_probe_report` (run by the finetuning job of every pretrained row)
fits the same ridge on the target session's labelled budget trials only (its penalty
chosen by trial-grouped cross-validation inside them: a budget of k trials may read no
other label) and scores it on the target's test trials, for the pretrained encoder with
the target's new read-in rows (the decoder ``frozen`` finetuning starts from), a random
encoder of the same architecture, and the raw counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rpnt.data.batches import Vocab, eval_unit_choice
from rpnt.data.budget import Budget
from rpnt.data.session import SessionData
from rpnt.data.windows import covering_starts
from rpnt.decoders.rpnt_decoder import RPNTDecoder
from rpnt.linear import DEFAULT_LAMBDAS, fit_lagged_ridge
from rpnt.scoring.metrics import AXIS_NAMES, r2_report
from rpnt.scoring.stitch import scored_mask
from rpnt.train.finetune import start_decoder
from rpnt.train.pretrain import covariates_match

#: Trial-grouped folds of the target probe's penalty choice (leave-one-trial-out at 5).
TARGET_FOLDS = 5


@torch.no_grad()
def pooled_features(decoder: RPNTDecoder, session: SessionData, mask: np.ndarray,
                    chunk: int = 256) -> np.ndarray:
    """(n_time, d) pooled encoder features averaged over 50 %-overlapping windows that
    cover ``mask`` (n_time,) bool; NaN where no window reached."""
    decoder.eval()
    length = decoder.config.window
    sw = decoder.windows(session, length)
    units = eval_unit_choice(sw, 1, seed=int(decoder.hparams.get("eval_seed", 0)))
    starts = covering_starts(mask, length, max(1, length // 2))
    d = decoder.config.d_model
    total = np.zeros((session.n_time, d))
    count = np.zeros(session.n_time)
    for i in range(0, starts.size, chunk):
        part = starts[i:i + chunk]
        b = sw.make_batch(part, np.repeat(units, part.size, axis=0), with_velocity=False)
        f = decoder.model.encode(b["counts"], b["unit_mask"], b["coords"], b["site_mask"],
                                 readin=b["readin"]).pooled.double().numpy()
        idx = (part[:, None] + np.arange(length)[None, :]).ravel()
        np.add.at(total, idx, f.reshape(-1, d))
        np.add.at(count, idx, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count[:, None]


def probe_r2(features: np.ndarray, session: SessionData) -> float:
    """Test R² (mean of the axes) of a per-bin ridge from ``features`` (n_time, F)."""
    train = session.split_bins("train")
    valid = scored_mask(session, "valid")
    if valid.sum() < 2:  # no scored valid bin: select the penalty on all valid-trial bins
        valid = session.split_bins("valid")
    test = scored_mask(session, "test")
    x = np.nan_to_num(features)
    fit = fit_lagged_ridge(x, session.velocity, train, valid, lags=0)
    pred = fit.predict(x)
    return float(r2_report(session.velocity[test].astype(np.float64), pred[test],
                           session.covariate_names)["mean"])


def probe_sessions(sessions: Sequence[SessionData], n: int) -> list[SessionData]:
    """Up to ``n`` sessions, evenly spread over ``sessions``, with training, valid and
    test bins to fit, select and score on."""
    usable = [s for s in sessions if s.split_bins("train").sum() >= 2
              and s.split_bins("valid").sum() >= 2 and scored_mask(s, "test").sum() >= 2]
    if n <= 0 or not usable:
        return []
    pick = np.unique(np.linspace(0, len(usable) - 1, min(n, len(usable))).round().astype(int))
    return [usable[i] for i in pick]


def probe_report(decoder: RPNTDecoder, sessions: Sequence[SessionData], n_sessions: int,
                 seed: int) -> dict[str, Any]:
    """Probe R² of the pretrained encoder, a random one and the raw counts on up to
    ``n_sessions`` of the pretraining ``sessions``.

    Returns ``{"sessions": [{"session", "pretrained", "random", "counts"}, ...],
    "pretrained", "random", "counts"}`` (the last three: means over the sessions; empty
    without a usable session).
    """
    # sessions with the decoder's velocity axes (a corpus may hold others)
    chosen = probe_sessions([s for s in sessions
                             if covariates_match(s, decoder.config.n_axis)], n_sessions)
    if not chosen:
        return {"sessions": []}
    torch.manual_seed(seed + 1)  # the random encoder: another draw than the pretrained init
    random = RPNTDecoder.build(decoder.config, Vocab.from_dict(decoder.hparams["vocab"]),
                               eval_seed=seed)
    rows = []
    for s in chosen:
        mask = s.split_bins("train") | s.split_bins("valid") | s.split_bins("test")
        rows.append({"session": s.session,
                     "pretrained": probe_r2(pooled_features(decoder, s, mask), s),
                     "random": probe_r2(pooled_features(random, s, mask), s),
                     "counts": probe_r2(s.spike_counts.astype(np.float64), s)})
    out: dict[str, Any] = {"sessions": rows}
    for k in ("pretrained", "random", "counts"):
        out[k] = float(np.mean([r[k] for r in rows]))
    return out


def budget_probe_r2(features: np.ndarray, session: SessionData, budget: Budget) -> float:
    """Test R² (mean of the axes) of a per-bin ridge from ``features`` (n_time, F) fit on
    the labelled bins of ``budget`` only.

    The penalty is chosen by cross-validation over the budget's trials in up to
    :data:`TARGET_FOLDS` trial-grouped folds (one trial: the least penalty), then the
    ridge is refit on every budget bin and scored on the test trials' scored bins. No
    label outside the budget and the test bins is read.
    """
    x = np.nan_to_num(features)
    y = np.where(budget.bins[:, None], session.velocity, np.nan)  # the budget's labels only
    n_folds = min(TARGET_FOLDS, int(budget.trials.size))
    total = np.zeros(len(DEFAULT_LAMBDAS))
    for f in range(n_folds if n_folds >= 2 else 0):
        held = budget.bins & session.bins_of_trials(budget.trials[f::n_folds])
        fit = fit_lagged_ridge(x, y, budget.bins & ~held, held, lags=0)
        if fit.valid_r2:
            total += np.nan_to_num(np.array(list(fit.valid_r2.values())), nan=-np.inf)
    lam = DEFAULT_LAMBDAS[int(np.argmax(total))]
    fit = fit_lagged_ridge(x, y, budget.bins, None, lags=0, lambdas=[lam])
    test = scored_mask(session, "test")
    return float(r2_report(session.velocity[test].astype(np.float64), fit.predict(x)[test],
                           AXIS_NAMES)["mean"])


def target_probe_report(init: RPNTDecoder, session: SessionData, budget: Budget,
                        seed: int) -> dict[str, Any]:
    """Probe R² on the target ``session`` (fit on ``budget``'s trials, scored on its test
    trials) of the pretrained encoder ``init`` with the target's fresh read-in rows, a
    random encoder of the same architecture and the raw counts.

    Returns ``{"session", "budget", "n_trials", "pretrained", "random", "counts"}``.
    """
    pretrained = start_decoder(session, "frozen", seed, None, init)
    torch.manual_seed(seed + 1)  # the random encoder: another draw than the pretrained init
    random = RPNTDecoder.build(init.config, Vocab.from_sessions([session], base=init.vocab),
                               eval_seed=seed)
    mask = budget.bins | scored_mask(session, "test")
    return {"session": session.session, "budget": budget.budget,
            "n_trials": int(budget.trials.size),
            "pretrained": budget_probe_r2(pooled_features(pretrained, session, mask),
                                          session, budget),
            "random": budget_probe_r2(pooled_features(random, session, mask), session,
                                      budget),
            "counts": budget_probe_r2(session.spike_counts.astype(np.float64), session,
                                      budget)}
