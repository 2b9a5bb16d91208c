"""``rpnt baseline``: train one peer decoder (Wiener, GRU, NDT-style, POYO) on a store."""

from __future__ import annotations

import argparse

from rpnt.commands._scoring import (
    add_run_arguments,
    add_scoring_arguments,
    check_scoring_arguments,
    scoring_options,
)

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
error; see rpnt.train.peers). With --budget K it trains on K labelled training trials
(drawn with the seed, stratified by condition: the same trials as every other decoder);
the config's labels.selection says whether the valid trials may select the model (valid)
or not (none: a fixed schedule, the Wiener penalty by cross-validation within the
budget). Velocity (and count) normalisation uses the labelled bins only and is stored
inside the decoder. Rolling resume checkpoints go to --checkpoint-dir
(default: <out>.ckpt next to DIR); rerunning the same command resumes. --metrics (and
--predictions) then score the trained decoder as 'rpnt evaluate' would, in the same
process (a skip record gives a skipped metrics record); --tag adds fields to that record.

Example:
  rpnt baseline --config resolved.yaml --model gru --store STORE.zarr \\
      --scenario cross_subject --seed 0 --out results/default/bin20ms/models/.../gru/SESSION/seed0
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
    parser.add_argument("--budget", default="all", metavar="K|all",
                        help="labelled training trials: a number (drawn with the seed, "
                             "stratified, as for every decoder), or all (default)")
    add_run_arguments(parser, "decoder directory to write (atomically)")
    add_scoring_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not import torch
    from rpnt.jobs.baseline import baseline_job

    check_scoring_arguments(args)
    baseline_job(args.model, args.store, args.seed, args.out, config=args.config,
                 scenario=args.scenario, budget=args.budget,
                 checkpoint_dir=args.checkpoint_dir, scoring=scoring_options(args))
    return 0
