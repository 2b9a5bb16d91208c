"""The finetuning job (``rpnt finetune``): RPNT trained to decode velocity on a target
session, from scratch or adapted from a pretraining, then scored in memory."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rpnt.configfile import load_yaml
from rpnt.data.scenarios import target_units
from rpnt.data.session import SessionData
from rpnt.decoders.base import load_decoder, read_meta
from rpnt.errors import RpntError
from rpnt.jobs.scoring import Scoring, score_trained
from rpnt.parts import FinetunePart
from rpnt.provenance import config_hash, provenance, sha256_file
from rpnt.rows import MODES, pretraining_name
from rpnt.seeding import seed_everything
from rpnt.store import load_session
from rpnt.train.config import finetune_config, labelled_trials, model_config
from rpnt.train.finetune import finetune
from rpnt.train.output import default_checkpoint_dir, fit_summary, write_run
from rpnt.train.probe import target_probe_report

log = logging.getLogger(__name__)


def _check_no_leak(init_meta: dict[str, Any], session: str, init_dir: str) -> None:
    pre = init_meta.get("pretraining") or {}
    if session in (pre.get("pretrain_sessions") or []) and not pre.get(
            "pretrain_on_target_train"):
        raise RpntError(f"{init_dir}/meta.json: this encoder was pretrained on {session}, the "
                        "session being finetuned; use the pretraining of a scenario that "
                        "holds it out")


def _check_bin_size(init_meta: dict[str, Any], session: SessionData, init_dir: str) -> None:
    pre = (init_meta.get("pretraining") or {}).get("bin_size_s")
    if pre is not None and abs(float(pre) - float(session.bin_size_s)) > 1e-9:
        raise RpntError(f"{init_dir}/meta.json: this encoder was pretrained on "
                        f"{float(pre) * 1e3:g} ms bins, session {session.session} has "
                        f"{float(session.bin_size_s) * 1e3:g} ms bins; ingest it at the "
                        "pretraining's bin_ms")


def finetune_job(config: str | Path, mode: str, store: str | Path, seed: int,
                 out: str | Path, init: str | Path | None = None,
                 scenario: str | None = None, budget: str = "all",
                 variant: str | None = None, checkpoint_dir: str | Path | None = None,
                 scoring: Scoring | None = None) -> dict[str, Any] | None:
    """Config + store (+ pretrained ``init`` directory) -> finetuned decoder ``out``, then
    its scores (``scoring``; returns the metrics record, None without ``metrics``).

    ``mode`` is one of :data:`rpnt.rows.MODES`; ``budget`` (``all`` or a number of trials)
    the labelled target trials (:mod:`rpnt.data.budget`); ``variant`` a ``variants``
    entry whose model overrides apply (scratch; the other modes take the model of
    ``init``); ``scenario`` applies its unit-level target selection and refuses an
    ``init`` pretrained on this very session.
    """
    seed_everything(seed)
    # the one read of the config: the job's part, which the workflow's digest hashes
    cfg = load_yaml(config)  # beyond the part, only its hash is recorded (provenance)
    part = FinetunePart.of(cfg, scenario, mode, budget, variant)
    fcfg = finetune_config({"finetune": part.finetune}, str(config))
    if mode not in MODES:
        raise RpntError(f"finetune mode {mode!r} is not one of {MODES}")
    if mode == "scratch" and init:
        raise RpntError("--init is not used with --mode scratch (random initialisation); "
                        f"drop it or choose one of {', '.join(MODES[1:])}")
    session = target_units(load_session(store), part.scenario)
    labelled, selection = labelled_trials({"labels": part.labels}, str(config), session,
                                          budget, seed)
    init_decoder = None
    mcfg = None
    init_meta: dict[str, Any] = {}
    # the table row this decoder is: its variant, or rpnt_scratch / rpnt_<objective>_<mode>
    row = variant or "rpnt_scratch"
    if mode == "scratch":
        mcfg = model_config({"model": part.model}, str(config))
    else:
        if not init:
            raise RpntError(f"--mode {mode} needs --init PRETRAIN_DIR (from 'rpnt pretrain')")
        init_meta = read_meta(init)
        if init_meta.get("kind") != "rpnt":
            raise RpntError(f"{init}/meta.json: kind {init_meta.get('kind')!r} is not an "
                            "RPNT decoder; pass the output of 'rpnt pretrain'")
        if scenario:
            _check_no_leak(init_meta, session.session, str(init))
        _check_bin_size(init_meta, session, str(init))
        init_decoder = load_decoder(init)
        objective = (init_meta.get("pretraining") or {}).get("objective") or "ssl"
        row = variant or f"rpnt_{objective}_{mode}"
    ckpt = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out)
    record = {"mode": mode, "finetune": {**asdict(fcfg), "seed": seed},
              "session": session.session, "scenario": scenario, "n_unit": session.n_unit,
              "budget": labelled.info(), "selection": selection,
              "model": mcfg.to_dict() if mcfg else init_decoder.hparams["model"],
              "init": sha256_file(Path(init) / "weights.safetensors") if init else None}
    decoder, result, info = finetune(session, mode, fcfg, seed, model_cfg=mcfg,
                                     init=init_decoder, budget=labelled,
                                     selection=selection, ckpt_dir=ckpt,
                                     log_dir=ckpt / "log", run_key=config_hash(record))
    # the pretrained features probed where transfer happens: on this target, fit on the
    # budget's trials only, scored on its test trials (a table section of its own); after
    # finetuning, so that it draws no random number the training would have drawn
    probe = {} if init_decoder is None else {"target_probe": {
        "pretraining": pretraining_name(init_meta.get("pretraining") or {}),
        **target_probe_report(init_decoder, session, labelled, seed)}}
    meta = write_run(decoder, out, ckpt / "log", ckpt, stage="finetune",
                     model=row, mode=mode, seed=seed, budget=labelled.budget,
                     scenario=scenario, session=session.session, init=init, variant=variant,
                     data=info, fit=fit_summary(result), provenance=provenance(record),
                     **probe)
    log.info("finetuned (%s, %s labelled trials) %d steps in %.1f s -> %s", mode,
             labelled.budget, result.steps_done, result.seconds, out)
    return score_trained(scoring or Scoring(), session, out, meta, decoder,
                         scenario=scenario, config=cfg, store=store)
