"""``rpnt finetune``: train RPNT to decode velocity on a target session."""

from __future__ import annotations

import argparse

NAME = "finetune"
HELP = "decode velocity with RPNT on a session: scratch, frozen, fewshot or full finetuning"
DESCRIPTION = """\
Trains RPNT to decode velocity (MSE on normalised velocity) on the training trials of
one session, with early stopping on its valid trials:

  scratch   random initialisation, everything trained
  frozen    pretrained transformer (--init) frozen; unit read-in and velocity head trained
  fewshot   pretrained model finetuned on a seeded --fraction of the training trials
  full      pretrained model finetuned on all training trials

With --scenario the scenario's unit-level target selection (e.g. only PMd units) is
applied to the store, and an --init pretrained on this very session is refused (leak).
The output directory is a saved decoder (weights.safetensors, meta.json) plus
metrics.jsonl and curves.png, for 'rpnt evaluate'; --metrics (and --predictions) score
it right away, as 'rpnt evaluate' would, in the same process. Rolling resume
checkpoints go to --checkpoint-dir (default <out>.ckpt); rerunning after a kill resumes
exactly.

example:
  rpnt finetune --config cfg.yaml --mode full --init results/default/pretrain/cross_subject/seed0 \\
      --store resources/stores/sim_default/sub-T_ses-CO-20130819.zarr --scenario cross_subject \\
      --seed 0 --out results/default/models/cross_subject/rpnt_full/sub-T_ses-CO-20130819/seed0 \\
      --metrics results/default/metrics/cross_subject/rpnt_full/sub-T_ses-CO-20130819/seed0.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CFG.yaml",
                        help="workflow config (sections model, finetune, scenarios)")
    parser.add_argument("--mode", required=True, choices=["scratch", "frozen", "fewshot", "full"],
                        help="training mode (see above)")
    parser.add_argument("--fraction", type=float, default=None,
                        help="fewshot: fraction of training trials (default: "
                             "finetune.fewshot_fraction of the config, 0.1)")
    parser.add_argument("--init", metavar="PRETRAIN_DIR", default=None,
                        help="pretrained decoder from 'rpnt pretrain' (frozen/fewshot/full)")
    parser.add_argument("--store", required=True, metavar="STORE.zarr",
                        help="the target session's store")
    parser.add_argument("--scenario", metavar="NAME", default=None,
                        help="apply this scenario's unit-level target selection")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (the trained decoder)")
    parser.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                        help="rolling resume checkpoints (default: <out>.ckpt)")
    parser.add_argument("--metrics", metavar="METRICS.json",
                        help="then score the trained decoder on the store's test trials, "
                             "exactly as 'rpnt evaluate' does, and write its metrics JSON "
                             "(the workflow scores every model in the job that trained it)")
    parser.add_argument("--predictions", metavar="P.npz",
                        help="with --metrics: also save true and predicted velocity on the "
                             "test trials (as 'rpnt evaluate --predictions')")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not import torch
    from rpnt.errors import RpntError
    from rpnt.eval.evaluate import evaluate_to_files, summary
    from rpnt.train.runs import run_finetune

    if args.predictions and not args.metrics:
        raise RpntError("--predictions needs --metrics METRICS.json")
    run_finetune(args.config, args.mode, args.store, args.seed, args.out, init=args.init,
                 fraction=args.fraction, scenario=args.scenario,
                 checkpoint_dir=args.checkpoint_dir)
    if args.metrics:
        print(summary(evaluate_to_files(
            args.out, args.store, args.metrics, predictions=args.predictions,
            scenario=args.scenario, config=args.config,
            tags={"model": f"rpnt_{args.mode}", "seed": args.seed})))
    return 0
