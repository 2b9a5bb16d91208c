"""``rpnt baseline``: train one peer decoder (Wiener, GRU, NDT-style, POYO) on a store."""

from __future__ import annotations

import argparse

NAME = "baseline"
HELP = "train a peer decoder (wiener, gru, ndt, poyo) on one session store"
DESCRIPTION = """\
Train one of RPNT's peers on the training trials of one session store and save it with
the decoder format every 'rpnt evaluate' reads (DIR/meta.json, DIR/weights.safetensors,
plus DIR/metrics.jsonl and DIR/curves.png for trained models):

  wiener  lagged ridge regression on binned counts (causal lags), closed form, the ridge
          penalty chosen on the valid trials
  gru     a GRU over bins -> velocity per bin
  ndt     an NDT-style causal transformer over binned counts, with optional masked-
          modelling pretraining on the same session's training bins
  poyo    torch_brain.models.POYO (torch-brain==0.2.1, the 'peers' extra) on raw spike
          times; without torch-brain a skip record DIR/skip.json is written instead (exit 0,
          with a warning) and the benchmark table shows "not installed"

Hyperparameters come from the config section baselines.<model> (unknown keys are an
error; see rpnt.baselines). Velocity (and count) normalisation uses training bins only
and is stored inside the decoder. Rolling resume checkpoints go to --checkpoint-dir
(default: <out>.ckpt next to DIR); rerunning the same command resumes.

Example:
  rpnt baseline --config resolved.yaml --model gru --store STORE.zarr \\
      --scenario cross_subject --seed 0 --out results/default/models/.../gru/SESSION/seed0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="CFG.yaml",
                        help="the workflow's resolved config (section baselines.<model>); "
                             "without it the defaults are used")
    parser.add_argument("--model", required=True, choices=["wiener", "gru", "ndt", "poyo"],
                        help="which peer to train")
    parser.add_argument("--store", required=True, metavar="STORE.zarr",
                        help="session store to train on (its training/valid trials)")
    parser.add_argument("--scenario", metavar="NAME",
                        help="apply this scenario's unit-level selection (needs --config)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="decoder directory to write (atomically)")
    parser.add_argument("--checkpoint-dir", metavar="DIR",
                        help="rolling resume checkpoints (default: <out>.ckpt)")


def run(args: argparse.Namespace) -> int:
    import logging
    import shutil
    from pathlib import Path

    from rpnt.errors import RpntError
    from rpnt.seeding import seed_everything

    seed_everything(args.seed)
    log = logging.getLogger("rpnt.baseline")
    out = Path(args.out)
    config = None
    if args.config:
        from rpnt.train.config import load_yaml

        config = load_yaml(args.config)
    if args.scenario and config is None:
        raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
    baselines = (config or {}).get("baselines") or {}
    if not isinstance(baselines, dict):
        raise RpntError(f"{args.config}: baselines must be a mapping of model -> settings")
    unknown = sorted(set(baselines) - {"wiener", "gru", "ndt", "poyo"})
    if unknown:
        raise RpntError(f"{args.config}: unknown baselines {unknown}; known: wiener, gru, "
                        "ndt, poyo")
    section = baselines.get(args.model) or {}

    if args.model == "poyo":
        from rpnt.decoders.poyo import SKIP_REASON, poyo_available

        if not poyo_available():
            from rpnt.eval.evaluate import write_skip
            from rpnt.provenance import provenance

            log.warning("POYO SKIPPED: %s. Install it with: pip install 'rpnt[peers]' "
                        "(torch-brain==0.2.1). Writing a skip record to %s so the table "
                        "says so.", SKIP_REASON, out)
            write_skip(out, "poyo", SKIP_REASON, seed=args.seed, scenario=args.scenario,
                       store=str(args.store), provenance=provenance(config))
            return 0

    from rpnt.baselines import train_baseline
    from rpnt.eval.evaluate import apply_scenario_units
    from rpnt.provenance import provenance
    from rpnt.store import load_session
    from rpnt.train.output import default_checkpoint_dir, write_run

    session = apply_scenario_units(load_session(args.store), config, args.scenario)
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else default_checkpoint_dir(out)
    log_dir = ckpt / "logs"
    if log_dir.exists():
        shutil.rmtree(log_dir)  # the trainer rewrites the history from the checkpoint
    trained = args.model != "wiener"
    dec, info = train_baseline(args.model, session, section, args.seed, ckpt_dir=ckpt,
                               log_dir=log_dir if trained else None)
    write_run(dec, out, log_dir, ckpt if trained else None,
              model=args.model, seed=args.seed, scenario=args.scenario,
              session=session.session, store=str(args.store), fit=info,
              units=int(session.n_unit),
              provenance=provenance(config, section=section, store=str(args.store)))
    print(f"{args.model} trained on {session.session} ({session.n_unit} units): {info}")
    return 0
