"""What ``rpnt pretrain`` and ``rpnt finetune`` do, given their parsed arguments."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from rpnt.errors import RpntError
from rpnt.seeding import seed_everything

log = logging.getLogger(__name__)


def _ckpt_dir(args: argparse.Namespace) -> Path:
    from rpnt.train.output import default_checkpoint_dir

    return Path(args.checkpoint_dir) if args.checkpoint_dir else default_checkpoint_dir(args.out)


def run_pretrain(args: argparse.Namespace) -> int:
    """Config + manifest + scenario -> pretrained decoder directory ``args.out``."""
    from dataclasses import asdict

    from rpnt.manifest import read_manifest
    from rpnt.provenance import config_hash, provenance
    from rpnt.train.config import load_yaml, model_config, pretrain_config
    from rpnt.train.output import fit_summary, write_run
    from rpnt.train.pretrain import load_pretraining_sessions, pretrain
    from rpnt.train.scenarios import scenario_from_config

    seed_everything(args.seed)
    cfg = load_yaml(args.config)
    pcfg = pretrain_config(cfg, str(args.config))
    mcfg = model_config(cfg, str(args.config))
    table = read_manifest(args.manifest)
    scenario = scenario_from_config(cfg, args.scenario, table)
    sessions = load_pretraining_sessions(table, scenario, args.manifest,
                                         progress=pcfg.train.progress)
    targets = set(scenario.target_sessions)
    val_ids = [s.session for s in sessions if s.session not in targets]
    ckpt = _ckpt_dir(args)
    scen = {"name": scenario.name, "pretrain_sessions": [s.session for s in sessions],
            "target_sessions": scenario.target_sessions,
            "pretrain_unit_filter": scenario.pretrain_unit_filter.to_dict(),
            "pretrain_on_target_train": scenario.pretrain_on_target_train}
    record = {"model": mcfg.to_dict(), "pretrain": {**asdict(pcfg), "seed": args.seed},
              "scenario": scen}
    log.info("pretraining on %d sessions (scenario %s, seed %d)", len(sessions),
             scenario.name, args.seed)
    decoder, result = pretrain(sessions, mcfg, pcfg, args.seed, ckpt, ckpt / "log",
                               val_sessions=val_ids, run_key=config_hash(record))
    write_run(decoder, args.out, ckpt / "log", ckpt, stage="pretrain", model="rpnt_pretrain",
              seed=args.seed, scenario=scenario.name, pretraining=scen,
              fit=fit_summary(result), provenance=provenance(record))
    log.info("pretrained %d steps in %.1f s -> %s", result.steps_done, result.seconds, args.out)
    return 0


def _check_no_leak(init_meta: dict[str, Any], session: str, init_dir: str) -> None:
    pre = init_meta.get("pretraining") or {}
    if session in (pre.get("pretrain_sessions") or []) and not pre.get(
            "pretrain_on_target_train"):
        raise RpntError(f"{init_dir}/meta.json: this encoder was pretrained on {session}, the "
                        "session being finetuned; use the pretraining of a scenario that "
                        "holds it out")


def run_finetune(args: argparse.Namespace) -> int:
    """Config + store (+ pretrained init) -> finetuned decoder directory ``args.out``."""
    from dataclasses import asdict

    from rpnt.decoders.base import load_decoder, read_meta
    from rpnt.eval.evaluate import apply_scenario_units
    from rpnt.provenance import config_hash, provenance, sha256_file
    from rpnt.store import load_session
    from rpnt.train.config import finetune_config, load_yaml, model_config
    from rpnt.train.finetune import finetune
    from rpnt.train.output import fit_summary, write_run

    seed_everything(args.seed)
    cfg = load_yaml(args.config)
    fcfg = finetune_config(cfg, str(args.config))
    if args.mode == "scratch" and args.init:
        raise RpntError("--init is not used with --mode scratch (random initialisation); "
                        "drop it or choose frozen, fewshot or full")
    if args.mode != "fewshot" and args.fraction is not None:
        raise RpntError("--fraction applies to --mode fewshot only")
    session = load_session(args.store)
    if args.scenario:
        session = apply_scenario_units(session, cfg, args.scenario)
    init = init_meta = None
    mcfg = None
    if args.mode == "scratch":
        mcfg = model_config(cfg, str(args.config))
    else:
        if not args.init:
            raise RpntError(f"--mode {args.mode} needs --init PRETRAIN_DIR (from 'rpnt pretrain')")
        init_meta = read_meta(args.init)
        if init_meta.get("kind") != "rpnt":
            raise RpntError(f"{args.init}/meta.json: kind {init_meta.get('kind')!r} is not an "
                            "RPNT decoder; pass the output of 'rpnt pretrain'")
        if args.scenario:
            _check_no_leak(init_meta, session.session, args.init)
        init = load_decoder(args.init)
    ckpt = _ckpt_dir(args)
    record = {"mode": args.mode, "finetune": {**asdict(fcfg), "seed": args.seed},
              "fraction": args.fraction, "session": session.session,
              "scenario": args.scenario, "n_unit": session.n_unit,
              "model": mcfg.to_dict() if mcfg else init.hparams["model"],
              "init": sha256_file(Path(args.init) / "weights.safetensors") if args.init else None}
    decoder, result, info = finetune(session, args.mode, fcfg, args.seed, model_cfg=mcfg,
                                     init=init, fraction=args.fraction, ckpt_dir=ckpt,
                                     log_dir=ckpt / "log", run_key=config_hash(record))
    write_run(decoder, args.out, ckpt / "log", ckpt, stage="finetune",
              model=f"rpnt_{args.mode}", mode=args.mode, seed=args.seed,
              scenario=args.scenario, session=session.session, init=args.init,
              data=info, fit=fit_summary(result), provenance=provenance(record))
    log.info("finetuned (%s) %d steps in %.1f s, best valid MSE %s -> %s", args.mode,
             result.steps_done, result.seconds, result.best_val, args.out)
    return 0
