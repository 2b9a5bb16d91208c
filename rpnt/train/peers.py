"""Training of the peers (Wiener, GRU, NDT-style, POYO) on one session.

The decoders themselves (inference, save/load) are in :mod:`rpnt.decoders`; this module
fits them.

Hyperparameters come from the config section ``baselines.<model>``; every section is a
dataclass with defaults, and an unknown key is an :class:`RpntError`. Trainable models
take their optimisation settings from a nested ``train:`` mapping (fields of
:class:`rpnt.train.trainer.TrainConfig`); NDT's optional masked-modelling pretraining
takes its own nested ``pretrain:`` mapping (absent or null: no pretraining).

Example::

    baselines:
      wiener: {lags: 5, lambdas: [0.1, 1, 10, 100, 1000]}
      gru:    {hidden: 64, train: {steps: 400, lr: 0.003}}
      ndt:    {d_model: 64, layers: 2, pretrain: {steps: 200}, train: {steps: 400}}
      poyo:   {dim: 64, depth: 1, train: {steps: 400}}

Every model is fit on labelled training-trial bins only (a label budget's, or all of
them); with model selection ``valid`` the Wiener ridge penalty and the early stopping of
trainable models use the valid trials, with ``none`` nothing outside the budget is read;
test trials are never touched here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rpnt import provenance as prov
from rpnt.data.budget import Budget, budget_bins
from rpnt.data.session import SessionData
from rpnt.data.windows import gather_windows, sample_starts, valid_window_starts
from rpnt.decoders.base import Decoder
from rpnt.decoders.gru import GRUDecoder, GRUParams
from rpnt.decoders.ndt import NDTDecoder, NDTParams
from rpnt.decoders.poyo import SKIP_REASON, POYODecoder, POYOParams
from rpnt.decoders.wiener import WienerDecoder
from rpnt.errors import RpntError
from rpnt.fields import check_fields, setting
from rpnt.linear import fit_lagged_ridge
from rpnt.rows import BASELINE_MODELS
from rpnt.scoring.stitch import evaluate_session, scored_mask
from rpnt.train import config as train_cfg
from rpnt.train.trainer import TrainConfig, fit

log = logging.getLogger(__name__)


#: Default optimisation settings per trainable baseline (overridden by ``train:``).
DEFAULT_TRAIN: dict[str, dict[str, Any]] = {
    "gru": {"steps": 1000, "batch_size": 32, "lr": 3e-3, "warmup_steps": 50,
            "eval_every": 50, "patience": 0},
    "ndt": {"steps": 1000, "batch_size": 32, "lr": 1e-3, "warmup_steps": 100,
            "eval_every": 50, "patience": 0},
    "poyo": {"steps": 1000, "batch_size": 16, "lr": 1e-3, "warmup_steps": 100,
             "eval_every": 50, "patience": 0},
}


@dataclass
class WienerConfig:
    """``baselines.wiener``: causal lagged ridge regression, closed form."""

    lags: int = setting(10, minimum=1)  #: bins of history per prediction (t-lags+1 .. t)
    #: ridge penalties tried; the one with the best valid R² is kept
    lambdas: list[float] = setting(
        default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0],
        min_items=1, items={"exclusiveMinimum": 0})
    window_bins: int = setting(50, minimum=1)  #: evaluation window length (bins)

    def __post_init__(self) -> None:
        check_fields(self, "baselines.wiener")


@dataclass
class NDTMasking:
    """``baselines.ndt.mask_ratio`` (also accepted inside ``pretrain:``): the fraction of
    bins masked by NDT's optional masked-modelling pretraining."""

    #: fraction of bins masked
    mask_ratio: float = setting(0.25, exclusive_minimum=0, exclusive_maximum=1)

    def __post_init__(self) -> None:
        check_fields(self, "baselines.ndt.pretrain")


def _make_dataclass(cls: type, section: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - names)
    if unknown:
        raise RpntError(f"config {where}: unknown key(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(names))}")
    return cls(**section)


def train_config(model: str, section: dict[str, Any] | None, seed: int,
                 where: str) -> Any:
    """A :class:`TrainConfig`: ``DEFAULT_TRAIN[model]`` overridden by ``section`` (checked
    by :func:`rpnt.train.config.train_config`), with the run's ``seed``."""
    default = TrainConfig(**DEFAULT_TRAIN.get(model, {}))
    cfg = train_cfg.train_config(section, default, f"config {where}")
    return dataclasses.replace(cfg, seed=int(seed))


def split_section(model: str, section: dict[str, Any] | None,
                  params_cls: type) -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
    """Split ``baselines.<model>`` into (architecture dataclass, train, pretrain)."""
    section = dict(section or {})
    train = section.pop("train", None) or {}
    pretrain = section.pop("pretrain", None)
    extra = {}
    if model == "ndt":
        extra = {k: section.pop(k) for k in ("mask_ratio",) if k in section}
    params = _make_dataclass(params_cls, section, f"baselines.{model}")
    if model != "ndt" and pretrain is not None:
        raise RpntError(f"config baselines.{model}: unknown key pretrain (only ndt has one)")
    if extra:
        pretrain = {**(pretrain or {}), **extra}
    return params, train, pretrain


# --------------------------------------------------------------------------- windows
def _fit_starts(session: SessionData, mask: np.ndarray, length: int, what: str) -> np.ndarray:
    starts = valid_window_starts(mask, length)
    if starts.size == 0:
        raise RpntError(f"session {session.session}: no run of {length} consecutive "
                        f"{what} bins; lower window_bins in the baselines config")
    return starts


def _binned_sampler(dec: Any, session: SessionData, starts: np.ndarray, length: int,
                    batch_size: int) -> Callable[[np.random.Generator], dict]:
    """Batches {"x": (B, T, N) z-scored counts, "y": (B, T, A) z-scored velocity, "c": raw}."""
    with torch.no_grad():
        x_all = dec.normalise_counts(session.spike_counts)
        y_all = dec.normalise_velocity(session.velocity)
        c_all = torch.as_tensor(session.spike_counts.astype(np.float32))
    offs = torch.arange(length)

    def sample(rng: np.random.Generator) -> dict:
        idx = torch.as_tensor(sample_starts(rng, starts, batch_size))[:, None] + offs
        return {"x": x_all[idx], "y": y_all[idx], "c": c_all[idx]}

    return sample


def _valid_loss_fn(dec: Decoder, session: SessionData, length: int) -> Callable | None:
    """``1 - R²`` (stitched, valid trials, eval_mask) or None when there is no valid bin."""
    if scored_mask(session, "valid").sum() < 2:
        log.warning("session %s has no valid bins: no early stopping / model selection",
                    session.session)
        return None
    return lambda: 1.0 - evaluate_session(dec, session, "valid", length).r2["mean"]


# --------------------------------------------------------------------------- binned nets
def _train_binned(model: str, dec: Any, session: SessionData, train_section: dict,
                  seed: int, ckpt_dir: Path | None, log_dir: Path | None,
                  pretrain_section: dict | None, mask: np.ndarray,
                  selection: str) -> dict[str, Any]:
    length = int(dec.hparams["window_bins"])
    dec.set_normalisation(session, mask)
    starts = _fit_starts(session, mask, length, "training")
    info: dict[str, Any] = {"n_train_windows": int(starts.size)}

    if pretrain_section is not None:
        section = dict(pretrain_section)
        ratio = NDTMasking(**{k: section.pop(k) for k in ("mask_ratio",) if k in section}
                           ).mask_ratio
        pcfg = train_config(model, section, seed, f"baselines.{model}.pretrain")
        sample = _binned_sampler(dec, session, starts, length, pcfg.batch_size)

        def mm_loss(batch: dict) -> torch.Tensor:
            # Mask whole bins (inputs zeroed = the unit means), reconstruct their counts
            # with a Poisson likelihood: masked modelling on this session's train bins.
            x = batch["x"]
            masked = torch.rand(x.shape[:2], device=x.device) < ratio
            masked[:, 0] |= ~masked.any(1)  # at least one masked bin per window
            log_rate = dec.log_rates(x.masked_fill(masked[..., None], 0.0))
            nll = torch.nn.functional.poisson_nll_loss(log_rate, batch["c"], log_input=True,
                                                       full=False, reduction="none")
            return nll[masked].mean()

        res = fit(dec, mm_loss, sample, pcfg,
                  ckpt_dir=None if ckpt_dir is None else ckpt_dir / "pretrain",
                  log_dir=None if log_dir is None else log_dir / "pretrain",
                  title=f"{model} masked pretraining")
        info["pretrain"] = {"steps": res.steps_done, "final_loss": res.final_loss}

    cfg = train_config(model, train_section, seed, f"baselines.{model}.train")
    sample = _binned_sampler(dec, session, starts, length, cfg.batch_size)

    def mse(batch: dict) -> torch.Tensor:
        return torch.nn.functional.mse_loss(dec(batch["x"]), batch["y"])

    res = fit(dec, mse, sample, cfg, ckpt_dir=ckpt_dir, log_dir=log_dir,
              val_fn=_valid_loss_fn(dec, session, length) if selection == "valid" else None,
              title=f"{model} decoding")
    info.update(steps=res.steps_done, best_val=res.best_val, best_step=res.best_step,
                final_loss=res.final_loss, seconds=res.seconds)
    return info


# --------------------------------------------------------------------------- entry point
def train_baseline(
    model: str,
    session: SessionData,
    section: dict[str, Any] | None,
    seed: int,
    ckpt_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    budget: Budget | None = None,
    selection: str = "valid",
) -> tuple[Decoder, dict[str, Any]]:
    """Fit baseline ``model`` on ``session``'s labelled training trials.

    ``section`` is the config's ``baselines.<model>`` mapping (None: defaults).
    ``budget``: the labelled trials (default: every training trial); normalisation uses
    its bins only. ``selection``: ``valid`` (early stopping, best step and the Wiener
    penalty on the valid trials) or ``none`` (fixed schedule, last weights, the Wiener
    penalty by cross-validation over the budget's trials). Returns the decoder (in eval
    mode) and a JSON-ready record of the fit (windows, steps, selected lambda, ...).
    Seeds torch and numpy from ``seed`` so reruns are identical.
    """
    if model not in BASELINE_MODELS:
        raise RpntError(f"unknown baseline {model!r}; choose one of {', '.join(BASELINE_MODELS)}")
    if selection not in ("valid", "none"):
        raise RpntError(f"model selection {selection!r} is not 'valid' or 'none'")
    budget = budget or budget_bins(session, "all", seed, 1)
    torch.manual_seed(seed)
    ckpt_dir = None if ckpt_dir is None else Path(ckpt_dir)
    log_dir = None if log_dir is None else Path(log_dir)
    n_axis = int(session.velocity.shape[1])
    base = {"n_unit": session.n_unit, "n_axis": n_axis}
    if model == "wiener":
        dec, info = fit_wiener(session, _make_dataclass(WienerConfig, dict(section or {}),
                                                        "baselines.wiener"),
                               budget.bins, selection)
    elif model in ("gru", "ndt"):
        cls, pcls = (GRUDecoder, GRUParams) if model == "gru" else (NDTDecoder, NDTParams)
        params, train, pretrain = split_section(model, section, pcls)
        dec = cls({**base, **dataclasses.asdict(params)})
        info = _train_binned(model, dec, session, train, seed, ckpt_dir, log_dir, pretrain,
                             budget.bins, selection)
    else:
        dec, info = train_poyo(session, section, seed, ckpt_dir, log_dir, budget.bins,
                               selection)
    dec.eval()
    return dec, info


# --------------------------------------------------------------------------- wiener
def fit_wiener(session: SessionData, cfg: WienerConfig, train: np.ndarray | None = None,
               selection: str = "valid") -> tuple[WienerDecoder, dict[str, Any]]:
    """Fit the Wiener filter on ``train`` bins (default: every training bin).

    The penalty: with ``selection`` ``valid``, the best R² on the valid trials' bins
    inside ``eval_mask`` (the bins the benchmark scores; all valid-trial bins when none
    is); with ``none``, :func:`cv_penalty` within ``train`` (no label outside it).
    """
    lags, window_bins = cfg.lags, cfg.window_bins
    train = session.split_bins("train") if train is None else train
    valid = session.split_bins("valid", finite_velocity=False)
    if (valid & session.eval_mask).sum() >= 2:
        valid = valid & session.eval_mask
    lambdas = list(cfg.lambdas)
    if selection == "none":
        lambdas, valid = [cv_penalty(session, train, int(lags), lambdas)], None
    try:
        ridge = fit_lagged_ridge(session.spike_counts, session.velocity, train, valid,
                                 lags=int(lags), lambdas=lambdas)
    except ValueError as exc:
        raise RpntError(f"session {session.session}: Wiener fit failed: {exc}") from exc
    dec = WienerDecoder({"n_unit": session.n_unit, "n_axis": int(session.velocity.shape[1]),
                         "lags": int(lags), "lam": float(ridge.lam),
                         "window_bins": int(window_bins)})
    dec.mean.copy_(torch.as_tensor(ridge.mean, dtype=torch.float64))
    dec.scale.copy_(torch.as_tensor(ridge.scale, dtype=torch.float64))
    dec.weight.copy_(torch.as_tensor(ridge.weight, dtype=torch.float64))
    dec.intercept.copy_(torch.as_tensor(ridge.intercept, dtype=torch.float64))
    info = {"lam": float(ridge.lam), "lags": int(lags), "n_train_bins": int(train.sum()),
            "valid_r2": {str(k): v for k, v in (ridge.valid_r2 or {}).items()}}
    return dec, info


def cv_penalty(session: SessionData, train: np.ndarray, lags: int,
               lambdas: list[float], folds: int = 5) -> float:
    """The ridge penalty with the best mean R² over ``folds`` cross-validation folds of
    the ``train`` bins: whole trials per fold (seeded order), or the two halves of the
    bins when they come from one trial; each fold scored on its ``eval_mask`` bins (all
    its bins when it has fewer than 2 of those)."""
    if len(lambdas) == 1:
        return float(lambdas[0])
    trials = [i for i in np.flatnonzero(session.trial_split == "train")
              if (train & session.bins_of_trials(np.array([i]))).any()]
    if len(trials) >= 2:
        order = np.random.default_rng(0).permutation(trials)
        k = min(folds, len(trials))
        held = [session.bins_of_trials(np.sort(order[f::k])) & train for f in range(k)]
    else:
        idx = np.flatnonzero(train)
        half = np.zeros(session.n_time, bool)
        half[idx[: idx.size // 2]] = True
        held = [half & train, ~half & train]
    scores = np.zeros(len(lambdas))
    for h in held:
        scored = h & session.eval_mask.astype(bool)
        ridge = fit_lagged_ridge(session.spike_counts, session.velocity, train & ~h,
                                 scored if scored.sum() >= 2 else h, lags=lags,
                                 lambdas=lambdas)
        scores += np.array([ridge.valid_r2[float(v)] for v in lambdas])
    return float(lambdas[int(np.nanargmax(scores))])


# --------------------------------------------------------------------------- poyo
def train_poyo(session: SessionData, section: dict[str, Any] | None, seed: int,
               ckpt_dir: Path | None, log_dir: Path | None, mask: np.ndarray,
               selection: str = "valid") -> tuple[POYODecoder, dict]:
    """Fit POYO on windows of the labelled ``mask`` bins (MSE on z-scored velocity)."""
    if not prov.poyo_available():
        raise RpntError(f"POYO baseline unavailable: {SKIP_REASON}")
    params, train, _ = split_section("poyo", section, POYOParams)
    torch.manual_seed(seed)
    dec = POYODecoder({
        "n_unit": session.n_unit, "n_axis": int(session.velocity.shape[1]),
        "bin_size_s": float(session.bin_size_s), "session_id": session.session,
        "unit_ids": [str(u) for u in session.unit_id], **dataclasses.asdict(params),
    })
    vel = session.velocity[mask].astype(np.float64)
    v_std = vel.std(0)
    dec.vel_mean.copy_(torch.as_tensor(vel.mean(0)))
    dec.vel_std.copy_(torch.as_tensor(np.where(v_std > 0, v_std, 1.0)))
    length = int(params.window_bins)
    starts = _fit_starts(session, mask, length, "training")
    cfg = train_config("poyo", train, seed, "baselines.poyo.train")

    def sample(rng: np.random.Generator) -> dict:
        s = sample_starts(rng, starts, cfg.batch_size)
        y = torch.as_tensor(gather_windows(session.velocity, s, length), dtype=torch.float32)
        return {"tokens": dec.tokens(session, s, length),
                "y": (y - dec.vel_mean.cpu()) / dec.vel_std.cpu()}

    def mse(batch: dict) -> torch.Tensor:
        return torch.nn.functional.mse_loss(dec(batch["tokens"]), batch["y"])

    res = fit(dec, mse, sample, cfg, ckpt_dir=ckpt_dir, log_dir=log_dir,
              val_fn=_valid_loss_fn(dec, session, length) if selection == "valid" else None,
              title="poyo decoding")
    info = {"n_train_windows": int(starts.size), "steps": res.steps_done,
            "best_val": res.best_val, "best_step": res.best_step,
            "final_loss": res.final_loss, "seconds": res.seconds}
    return dec, info
