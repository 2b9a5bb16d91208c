"""``rpnt finetune``: train RPNT to decode velocity on a target session."""

from __future__ import annotations

import argparse

from rpnt.commands._scoring import (
    add_run_arguments,
    add_scoring_arguments,
    check_scoring_arguments,
    scoring_options,
)

NAME = "finetune"
HELP = "decode velocity with RPNT on a session: from scratch or adapted from pretraining"
DESCRIPTION = """\
Trains RPNT to decode velocity (MSE on normalised velocity) on the labelled training
trials of one session (all of them, or a --budget of k trials drawn with the seed,
stratified by condition, the same for every decoder):

  scratch    random initialisation, everything trained
  frozen     pretrained core (--init) frozen; the session's read-in and the head trained
  full       everything trained, starting from --init
  staged     read-in and head first (core frozen), then everything (core at a lower lr)
  labelfree  core frozen; the read-in learned with the pretraining objective on the
             session's unlabelled training spikes, then the velocity head on the labels

Model selection follows the config's labels.selection: valid (early stopping on the valid
trials) or none (a fixed schedule: no label outside the budget is read; required with a
numeric --budget). With --scenario the scenario's unit-level target selection (e.g. only
PMd units) is applied to the store, and an --init pretrained on this very session is
refused (leak). The output directory is a saved decoder (weights.safetensors, meta.json)
plus metrics.jsonl and curves.png, for 'rpnt evaluate'; --metrics (and --predictions)
score it right away, as 'rpnt evaluate' would, in the same process (--tag adds fields to
the record, e.g. the table row's name). Rolling resume checkpoints go to
--checkpoint-dir (default <out>.ckpt); rerunning after a kill resumes exactly.

example:
  R=results/default/bin20ms
  rpnt finetune --config $R/config.resolved.yaml --mode staged \\
      --init $R/pretrain/cross_task/joint/seed0 \\
      --store resources/stores/sim_default/bin20ms/sub-M_ses-RT-20140211.zarr \\
      --scenario cross_task --budget 10 --seed 0 \\
      --out $R/models/cross_task/rpnt_joint_staged/sub-M_ses-RT-20140211/10trials/seed0 \\
      --metrics $R/metrics/cross_task/rpnt_joint_staged/sub-M_ses-RT-20140211/10trials/seed0.json \\
      --tag model=rpnt_joint_staged
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CFG.yaml",
                        help="workflow config (sections model, finetune, scenarios)")
    parser.add_argument("--mode", required=True,
                        choices=["scratch", "frozen", "full", "staged", "labelfree"],
                        help="training mode (see above)")
    parser.add_argument("--init", metavar="PRETRAIN_DIR", default=None,
                        help="pretrained decoder from 'rpnt pretrain' (every mode but scratch)")
    parser.add_argument("--budget", default="all", metavar="K|all",
                        help="labelled training trials: a number, or all (default)")
    parser.add_argument("--variant", metavar="NAME", default=None,
                        help="scratch: apply the model overrides of variants.NAME")
    parser.add_argument("--store", required=True, metavar="STORE.zarr",
                        help="the target session's store")
    parser.add_argument("--scenario", metavar="NAME", default=None,
                        help="apply this scenario's unit-level target selection")
    add_run_arguments(parser, "output directory (the trained decoder)")
    add_scoring_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not import torch
    from rpnt.jobs.finetune import finetune_job

    check_scoring_arguments(args)
    finetune_job(args.config, args.mode, args.store, args.seed, args.out, init=args.init,
                 scenario=args.scenario, budget=args.budget, variant=args.variant,
                 checkpoint_dir=args.checkpoint_dir, scoring=scoring_options(args))
    return 0
