"""Pretraining of RPNT over the pretraining sessions of a scenario.

Pipeline: :func:`load_pretraining_sessions` (manifest + scenario -> in-memory sessions,
held-out sessions never loaded, held-out units removed) -> :func:`pretraining_sessions`
-> :func:`pretrain` with the generic trainer, objective ``ssl`` (the paper's masked
Poisson reconstruction + site contrast) or ``joint`` (the same + velocity decoding of
the pretraining sessions' training trials) -> an
:class:`rpnt.decoders.rpnt_decoder.RPNTDecoder` whose encoder finetuning starts from.
Windows come from training bins only (``SessionData.split_bins("train")``), so even the
paper's looser variant never sees a target session's valid or test trials.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rpnt.data.batches import (
    Observer,
    SessionWindows,
    Vocab,
    eval_unit_choice,
    velocity_stats,
)
from rpnt.data.device import to_device
from rpnt.data.sampler import EpochSampler
from rpnt.data.scenarios import Scenario
from rpnt.data.session import SessionData
from rpnt.data.windows import evenly_spaced, valid_window_starts
from rpnt.decoders.rpnt_decoder import RPNTDecoder
from rpnt.errors import RpntError
from rpnt.model import RPNTConfig
from rpnt.rows import OBJECTIVES
from rpnt.store import load_session
from rpnt.train.config import PretrainConfig
from rpnt.train.trainer import FitResult, fit

log = logging.getLogger(__name__)


def pretraining_sessions(sessions: Mapping[str, SessionData], scenario: Scenario
                         ) -> list[SessionData]:
    """The scenario's pretraining sessions, with its held-out units removed.

    Sessions left without any unit (e.g. a PMd-only subject when PMd is held out) are
    skipped with a log line.
    """
    out = []
    for sid in scenario.pretrain_sessions:
        if sid not in sessions:
            raise RpntError(f"pretraining session {sid} of scenario {scenario.name} is not "
                            "among the loaded sessions; check the manifest")
        s = sessions[sid]
        if scenario.pretrain_unit_filter.active:
            keep = scenario.pretrain_unit_filter.mask(s)
            if not keep.any():
                log.info("%s: no unit left after the unit-level holdout; skipped", sid)
                continue
            s = s.select_units(keep)
        out.append(s)
    if not out:
        raise RpntError(f"scenario {scenario.name}: every pretraining session lost all its "
                        "units to the unit-level holdout")
    return out


def resolve_store(row: Any, manifest_path: str | Path) -> Path:
    """The store path of a manifest row (relative paths: to the cwd, else the manifest:
    the row's own ``manifest`` in a corpus of several, else ``manifest_path``)."""
    p = Path(str(row["store"]))
    if p.exists() or p.is_absolute():
        return p
    own = row.get("manifest") if hasattr(row, "get") else None
    alt = Path(str(own) if isinstance(own, str) and own else manifest_path).parent / p
    return alt if alt.exists() else p


def load_pretraining_sessions(table: pd.DataFrame, scenario: Scenario,
                              manifest_path: str | Path) -> list[SessionData]:
    """Load only the scenario's pretraining stores (held-out stores are never opened)."""
    if "store" not in table.columns:
        raise RpntError(f"{manifest_path}: manifest has no 'store' column; rebuild it with "
                        "'rpnt manifest'")
    rows = table.set_index(table["session"].astype(str))
    loaded = {}
    for sid in tqdm(scenario.pretrain_sessions, desc="load stores", leave=False,
                    disable=None):  # a progress bar on a terminal only
        # RPNT reads binned counts only, windows of them: no raw spikes, and counts read
        # from the store on demand through a bounded cache (rpnt.data.lazy), so memory
        # does not grow with the number of sessions
        loaded[sid] = load_session(resolve_store(rows.loc[sid], manifest_path), lazy=True)
    return pretraining_sessions(loaded, scenario)


def covariates_match(session: SessionData, n_axis: int) -> bool:
    """Whether ``session`` carries the ``n_axis`` velocity axes the decoder predicts."""
    return session.velocity.ndim == 2 and session.velocity.shape[1] == n_axis


def check_corpus(sessions: Sequence[SessionData], objective: str, n_axis: int,
                 where: str = "pretraining corpus") -> list[SessionData]:
    """The corpus pretraining pools, or a one-line RpntError naming the sessions.

    Every session must share one bin size (a window is ``window`` bins, and the time band
    and the Poisson rates are per bin; datasets are ingested at the benchmark's
    ``bin_ms``). Covariates may differ: the ``ssl`` objective reads spike counts only;
    the ``joint`` objective decodes velocity on the sessions that carry the target's
    ``n_axis`` axes (:func:`covariates_match`; cm/s as ingest writes them) and only
    reconstructs the others, whose velocity is returned as NaN (unknown: the velocity
    loss skips it). Joint pretraining needs at least one matching session.
    """
    sizes = {round(float(s.bin_size_s) * 1e3, 6): s for s in sessions}
    if len(sizes) > 1:
        (a, sa), (b, sb) = list(sizes.items())[:2]
        raise RpntError(
            f"{where}: sessions of {len(sizes)} bin sizes, e.g. {sa.session} "
            f"({sa.dataset}) at {a:g} ms and {sb.session} "
            f"({sb.dataset}) at {b:g} ms; ingest every dataset of the "
            "corpus at one bin_ms")
    if objective == "joint" and not any(covariates_match(s, n_axis) for s in sessions):
        raise RpntError(
            f"{where}: the joint objective decodes {n_axis} velocity axes, and no session "
            f"carries them (e.g. {sessions[0].session}: {sessions[0].velocity.shape[1:]}); "
            "pretrain with --objective ssl (spike counts only)")
    return [s if covariates_match(s, n_axis) else
            replace(s, velocity=np.full((s.n_time, n_axis), np.nan, np.float32))
            for s in sessions]


def _val_batches(windows: Sequence[SessionWindows], n_windows: int, seed: int,
                 observer: Observer | None, with_velocity: bool) -> list[dict[str, Any]]:
    """Fixed validation batches: evenly spaced windows of each session's valid trials."""
    per = max(1, n_windows // max(1, len(windows)))
    out = []
    for sw in windows:
        s = sw.session
        starts = evenly_spaced(
            valid_window_starts(s.split_bins("valid", finite_velocity=False), sw.window), per)
        if starts.size == 0:
            continue
        units = eval_unit_choice(sw, starts.size, seed)
        if observer is not None:
            observer(s, starts[:, None] + np.arange(sw.window)[None, :], units)
        out.append(sw.make_batch(starts, units, with_velocity=with_velocity))
    return out


def pretrain(sessions: Sequence[SessionData], model_cfg: RPNTConfig, pcfg: PretrainConfig,
             seed: int, ckpt_dir: str | Path | None, log_dir: str | Path | None,
             val_sessions: Sequence[str] | None = None, observer: Observer | None = None,
             run_key: str = "", objective: str = "ssl") -> tuple[RPNTDecoder, FitResult]:
    """Pretrain a fresh RPNT on ``sessions``; returns (RPNTDecoder, FitResult).

    ``objective``: ``ssl`` (the paper's masked reconstruction + site contrast) or
    ``joint`` (the same plus velocity decoding of the pretraining sessions' training
    trials, velocity normalised per session, ``pcfg.velocity_weight``; the velocity head
    is trained too). ``val_sessions``: ids whose *valid* trials give the validation curve
    (never target sessions); None = all of ``sessions``. ``observer`` sees every window
    that reaches pretraining (tests).
    """
    if objective not in OBJECTIVES:
        raise RpntError(f"pretraining objective {objective!r} is not one of {OBJECTIVES}")
    joint = objective == "joint"
    matches = [covariates_match(s, model_cfg.n_axis) for s in sessions]
    sessions = check_corpus(sessions, objective, model_cfg.n_axis)
    vocab = Vocab.from_sessions(sessions)
    torch.manual_seed(seed)
    decoder = RPNTDecoder.build(model_cfg, vocab, eval_seed=seed)
    cfg = decoder.config
    masks = [s.split_bins("train") for s in sessions]
    mean, std = velocity_stats(sessions, masks)
    decoder.set_normalisation(mean, std)
    windows = []
    for s, labelled, match in zip(sessions, masks, matches, strict=True):
        # joint: windows of labelled training bins, velocity normalised per session (the
        # head learns one normalised space, as finetuning normalises per target); a
        # session without the target's covariates is reconstructed only (NaN velocity)
        vm, vs = velocity_stats([s], [labelled]) if joint and match else (None, None)
        allowed = labelled if joint and match else s.split_bins("train",
                                                                finite_velocity=False)
        windows.append(SessionWindows(s, vocab, cfg.coords, cfg.n_units, cfg.window,
                                      allowed=allowed, vel_mean=vm, vel_std=vs))
    tcfg = replace(pcfg.train, seed=seed)
    # A per-session read-in learns what each slot's unit does, so a slot must keep its
    # unit: the fixed unit choice of evaluation. A shared read-in gets random subsets.
    # Windows without replacement within an epoch, one batch per micro-step split over
    # the ranks (rpnt.data.sampler).
    if tcfg.batch_size % tcfg.accumulation:
        raise RpntError(f"pretrain.train.batch_size ({tcfg.batch_size}) must be a multiple "
                        f"of pretrain.train.accumulation ({tcfg.accumulation})")
    sampler = EpochSampler(windows, tcfg.batch_size // tcfg.accumulation, pcfg.subsets,
                           with_velocity=joint, observer=observer, seed=seed,
                           unit_sampling="fixed" if cfg.readin == "session" else "random")
    model = decoder.model
    weight = pcfg.velocity_weight if joint else 0.0

    def losses(b: dict[str, Any], generator: torch.Generator | None = None,
               across_ranks: bool = False) -> dict[str, torch.Tensor]:
        return model.pretrain_loss(b["counts"], b["unit_mask"], b["coords"], b["site_mask"],
                                   generator=generator, readin=b["readin"],
                                   window=b.get("window"), velocity=b.get("velocity"),
                                   velocity_weight=weight, draws=b.get("draws"),
                                   across_ranks=across_ranks)

    def loss_fn(b: dict[str, Any]) -> dict[str, torch.Tensor]:
        out = losses(b, across_ranks=True)  # normalised over all ranks' samples
        keys = ("loss", "poisson", "contrastive", "velocity") if joint else (
            "loss", "poisson", "contrastive")
        return {k: out[k] for k in keys}

    val_ids = set(val_sessions) if val_sessions is not None else {s.session for s in sessions}
    vb = _val_batches([w for w in windows if w.session.session in val_ids], pcfg.val_windows,
                      seed, observer, with_velocity=joint)
    val_fn = None
    if vb:
        def val_fn() -> float:
            # fixed masks: the same generator state for every evaluation
            g = torch.Generator().manual_seed(seed)
            dev = next(model.parameters()).device
            return sum(float(losses(to_device(b, dev), g)["loss"]) for b in vb) / len(vb)

    params = [*model.encoder_parameters(), *model.pretrain_head_parameters()]
    if joint:
        params += list(model.head_parameters())
    result = fit(decoder, loss_fn, sampler, tcfg, ckpt_dir=ckpt_dir, log_dir=log_dir,
                 val_fn=val_fn, params=params, run_key=run_key, title=f"pretrain {objective}")
    decoder.cpu().eval()
    return decoder, result
