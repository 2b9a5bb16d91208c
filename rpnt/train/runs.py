"""``rpnt pretrain``, ``rpnt finetune`` and ``rpnt baseline`` as library calls: files in, a
decoder directory out (with its training log, written atomically)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rpnt import provenance as prov
from rpnt.configfile import load_yaml
from rpnt.data.budget import Budget, budget_bins
from rpnt.data.scenarios import apply_scenario_units, scenario_from_config
from rpnt.data.session import SessionData
from rpnt.decoders.base import load_decoder, read_meta, write_skip
from rpnt.decoders.poyo import SKIP_REASON
from rpnt.errors import RpntError
from rpnt.manifest import read_manifest
from rpnt.provenance import config_hash, provenance, sha256_file
from rpnt.seeding import seed_everything
from rpnt.store import load_session
from rpnt.train.config import finetune_config, labels_config, model_config, pretrain_config
from rpnt.train.finetune import MODES, finetune
from rpnt.train.output import default_checkpoint_dir, fit_summary, write_run
from rpnt.train.peers import BASELINE_MODELS, train_baseline
from rpnt.train.pretrain import load_pretraining_sessions, pretrain
from rpnt.train.probe import probe_report

log = logging.getLogger(__name__)


def _ckpt_dir(out: str | Path, checkpoint_dir: str | Path | None) -> Path:
    return Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir(out)


def run_pretrain(config: str | Path, manifest: str | Path, scenario: str, seed: int,
                 out: str | Path, objective: str = "ssl", variant: str | None = None,
                 checkpoint_dir: str | Path | None = None) -> Path:
    """Config + manifest + scenario -> pretrained decoder directory ``out``.

    ``config``: the workflow's (resolved) config file; ``objective``: ``ssl`` or
    ``joint`` (:func:`rpnt.train.pretrain.pretrain`); ``variant``: a ``variants`` entry
    whose model overrides apply. Rolling checkpoints go to ``checkpoint_dir`` (default
    ``<out>.ckpt``). The ridge probe of the frozen features (:mod:`rpnt.train.probe`) is
    recorded in ``meta.json`` under ``probe``.
    """
    seed_everything(seed)
    cfg = load_yaml(config)
    pcfg = pretrain_config(cfg, str(config))
    mcfg = model_config(cfg, str(config), variant)
    table = read_manifest(manifest)
    scen = scenario_from_config(cfg, scenario, table)
    sessions = load_pretraining_sessions(table, scen, manifest)
    targets = set(scen.target_sessions)
    val_ids = [s.session for s in sessions if s.session not in targets]
    ckpt = _ckpt_dir(out, checkpoint_dir)
    pretraining = {"name": scen.name, "pretrain_sessions": [s.session for s in sessions],
                   "target_sessions": scen.target_sessions,
                   "pretrain_unit_filter": scen.pretrain_unit_filter.to_dict(),
                   "pretrain_on_target_train": scen.pretrain_on_target_train,
                   "objective": objective, "variant": variant}
    record = {"model": mcfg.to_dict(), "pretrain": {**asdict(pcfg), "seed": seed},
              "scenario": pretraining}
    log.info("pretraining (%s) on %d sessions (scenario %s, seed %d)", objective,
             len(sessions), scen.name, seed)
    decoder, result = pretrain(sessions, mcfg, pcfg, seed, ckpt, ckpt / "log",
                               val_sessions=val_ids, run_key=config_hash(record),
                               objective=objective)
    probe = probe_report(decoder, sessions, pcfg.probe_sessions, seed)
    write_run(decoder, out, ckpt / "log", ckpt, stage="pretrain", model="rpnt_pretrain",
              seed=seed, scenario=scen.name, pretraining=pretraining,
              fit=fit_summary(result), probe=probe, provenance=provenance(record))
    log.info("pretrained %d steps in %.1f s -> %s; probe R² pretrained %s, random %s, "
             "counts %s", result.steps_done, result.seconds, out, probe.get("pretrained"),
             probe.get("random"), probe.get("counts"))
    return Path(out)


def _check_no_leak(init_meta: dict[str, Any], session: str, init_dir: str) -> None:
    pre = init_meta.get("pretraining") or {}
    if session in (pre.get("pretrain_sessions") or []) and not pre.get(
            "pretrain_on_target_train"):
        raise RpntError(f"{init_dir}/meta.json: this encoder was pretrained on {session}, the "
                        "session being finetuned; use the pretraining of a scenario that "
                        "holds it out")


def labelled_trials(cfg: dict[str, Any], source: str, session: SessionData,
                    budget: str, seed: int) -> tuple[Budget, str]:
    """The labelled trials of ``budget`` and the model selection rule, from the config's
    ``labels`` section (RpntError when the selection would read labels outside the
    budget)."""
    labels = labels_config(cfg, source)
    b = budget_bins(session, budget, seed, labels.min_bins)
    if b.budget != "all" and labels.selection == "valid":
        raise RpntError(f"{source}: labels.selection: valid would read the valid trials' "
                        f"labels, more than a budget of {b.budget} trials; set "
                        "labels.selection: none (a fixed schedule)")
    return b, labels.selection


def run_finetune(config: str | Path, mode: str, store: str | Path, seed: int,
                 out: str | Path, init: str | Path | None = None,
                 scenario: str | None = None, budget: str = "all",
                 variant: str | None = None,
                 checkpoint_dir: str | Path | None = None) -> Path:
    """Config + store (+ pretrained ``init`` directory) -> finetuned decoder ``out``.

    ``mode`` is one of :data:`rpnt.train.finetune.MODES`; ``budget`` (``all`` or a number
    of trials) the labelled target trials (:mod:`rpnt.data.budget`); ``variant`` a
    ``variants`` entry whose model overrides apply (scratch; the other modes take the
    model of ``init``); ``scenario`` applies its unit-level target selection and refuses
    an ``init`` pretrained on this very session.
    """
    seed_everything(seed)
    cfg = load_yaml(config)
    fcfg = finetune_config(cfg, str(config))
    if mode not in MODES:
        raise RpntError(f"finetune mode {mode!r} is not one of {MODES}")
    if mode == "scratch" and init:
        raise RpntError("--init is not used with --mode scratch (random initialisation); "
                        f"drop it or choose one of {', '.join(MODES[1:])}")
    session = load_session(store)
    if scenario:
        session = apply_scenario_units(session, cfg, scenario)
    labelled, selection = labelled_trials(cfg, str(config), session, budget, seed)
    init_decoder = None
    mcfg = None
    # the table row this decoder is: its variant, or rpnt_scratch / rpnt_<objective>_<mode>
    row = variant or "rpnt_scratch"
    if mode == "scratch":
        mcfg = model_config(cfg, str(config), variant)
    else:
        if not init:
            raise RpntError(f"--mode {mode} needs --init PRETRAIN_DIR (from 'rpnt pretrain')")
        init_meta = read_meta(init)
        if init_meta.get("kind") != "rpnt":
            raise RpntError(f"{init}/meta.json: kind {init_meta.get('kind')!r} is not an "
                            "RPNT decoder; pass the output of 'rpnt pretrain'")
        if scenario:
            _check_no_leak(init_meta, session.session, str(init))
        init_decoder = load_decoder(init)
        objective = (init_meta.get("pretraining") or {}).get("objective") or "ssl"
        row = variant or f"rpnt_{objective}_{mode}"
    ckpt = _ckpt_dir(out, checkpoint_dir)
    record = {"mode": mode, "finetune": {**asdict(fcfg), "seed": seed},
              "session": session.session, "scenario": scenario, "n_unit": session.n_unit,
              "budget": labelled.info(), "selection": selection,
              "model": mcfg.to_dict() if mcfg else init_decoder.hparams["model"],
              "init": sha256_file(Path(init) / "weights.safetensors") if init else None}
    decoder, result, info = finetune(session, mode, fcfg, seed, model_cfg=mcfg,
                                     init=init_decoder, budget=labelled,
                                     selection=selection, ckpt_dir=ckpt,
                                     log_dir=ckpt / "log", run_key=config_hash(record))
    write_run(decoder, out, ckpt / "log", ckpt, stage="finetune",
              model=row, mode=mode, seed=seed, budget=labelled.budget,
              scenario=scenario, session=session.session, init=init, variant=variant,
              data=info, fit=fit_summary(result), provenance=provenance(record))
    log.info("finetuned (%s, %s labelled trials) %d steps in %.1f s -> %s", mode,
             labelled.budget, result.steps_done, result.seconds, out)
    return Path(out)


def run_baseline(model: str, store: str | Path, seed: int, out: str | Path,
                 config: str | Path | None = None, scenario: str | None = None,
                 budget: str = "all", checkpoint_dir: str | Path | None = None) -> Path:
    """Train peer ``model`` (:data:`rpnt.train.peers.BASELINE_MODELS`) on ``store``.

    Hyperparameters from the config's ``baselines.<model>`` (defaults without
    ``config``); ``budget`` (``all`` or a number of trials) and the config's ``labels``
    section say which labelled trials it may use and how it selects (as
    :func:`run_finetune`). POYO without torch-brain writes a skip record instead (with a
    warning).
    """
    seed_everything(seed)
    out = Path(out)
    cfg = load_yaml(config) if config else None
    if scenario and cfg is None:
        raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
    baselines = (cfg or {}).get("baselines") or {}
    if not isinstance(baselines, dict):
        raise RpntError(f"{config}: baselines must be a mapping of model -> settings")
    unknown = sorted(set(baselines) - set(BASELINE_MODELS))
    if unknown:
        raise RpntError(f"{config}: unknown baselines {unknown}; known: "
                        f"{', '.join(BASELINE_MODELS)}")
    section = baselines.get(model) or {}
    if model == "poyo" and not prov.poyo_available():
        log.warning("POYO SKIPPED: %s. Install it with: pip install 'rpnt[peers]' "
                    "(torch-brain==0.2.1). Writing a skip record to %s so the table "
                    "says so.", SKIP_REASON, out)
        return write_skip(out, "poyo", SKIP_REASON, seed=seed, budget=str(budget),
                          scenario=scenario, store=str(store), provenance=provenance(cfg))
    session = apply_scenario_units(load_session(store), cfg, scenario)
    labelled, selection = labelled_trials(cfg or {}, str(config), session, budget, seed)
    ckpt = _ckpt_dir(out, checkpoint_dir)
    log_dir = ckpt / "logs"
    if log_dir.exists():
        shutil.rmtree(log_dir)  # the trainer rewrites the history from the checkpoint
    trained = model != "wiener"
    dec, info = train_baseline(model, session, section, seed, ckpt_dir=ckpt,
                               log_dir=log_dir if trained else None, budget=labelled,
                               selection=selection)
    write_run(dec, out, log_dir, ckpt if trained else None,
              model=model, seed=seed, scenario=scenario, budget=labelled.budget,
              session=session.session, store=str(store), fit=info,
              data={**labelled.info(), "selection": selection}, units=int(session.n_unit),
              provenance=provenance(cfg, section=section, store=str(store),
                                    budget=labelled.budget, selection=selection))
    log.info("%s trained on %s (%d units, %s labelled trials): %s", model, session.session,
             session.n_unit, labelled.budget, info)
    return out
