"""``rpnt pretrain``: self-supervised RPNT pretraining over a scenario's pretraining sessions."""

from __future__ import annotations

import argparse

from rpnt.commands._scoring import add_run_arguments

NAME = "pretrain"
HELP = "pretrain RPNT (masked reconstruction, or joint with velocity) on a scenario's sessions"
DESCRIPTION = """\
Pretraining of RPNT over every session of the manifest that the scenario allows:
--objective ssl (the paper's: causal masked reconstruction of spike counts with a
Poisson likelihood, mask ratios drawn per batch, plus the site-contrastive term) or joint
(the same, plus velocity decoding of the pretraining sessions' training trials by the
velocity head, on unmasked windows). Held-out sessions (the scenario's target/holdout)
are never loaded; held-out areas/sites are removed from every session; windows come from
training trials only. The config's `model` (with --variant: plus the model overrides of
`variants.NAME`) and `pretrain` sections set the model and the optimisation. Afterwards a
ridge probe of the frozen pooled features (pretrained, random encoder, raw counts) is
scored on the test trials of a few pretraining sessions (`pretrain.probe_sessions`) and
recorded in meta.json ("probe").

The output directory is a saved decoder (weights.safetensors, meta.json) plus
metrics.jsonl and curves.png; `rpnt finetune --init DIR` starts from it. Rolling resume
checkpoints go to --checkpoint-dir (default <out>.ckpt); after SIGTERM/SIGUSR1 (SLURM
preemption) a checkpoint is written and rerunning the same command resumes exactly.

example:
  rpnt pretrain --config cfg.yaml --manifest resources/manifests/sim_default.tsv \\
      --scenario cross_subject --objective joint --seed 0 \\
      --out results/default/bin20ms/pretrain/cross_subject/joint/seed0
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CFG.yaml",
                        help="workflow config (sections model, pretrain, scenarios)")
    parser.add_argument("--manifest", required=True, metavar="M.tsv", action="append",
                        help="session manifest written by 'rpnt manifest' (store paths); "
                        "repeat it to pretrain on a corpus across datasets (the scenario's "
                        "held-out rules apply to every session of every manifest)")
    parser.add_argument("--scenario", required=True, metavar="NAME",
                        help="scenario of the config whose held-out data pretraining skips")
    parser.add_argument("--objective", choices=["ssl", "joint"], default="ssl",
                        help="ssl (the paper's, default) or joint (ssl + velocity)")
    parser.add_argument("--variant", metavar="NAME", default=None,
                        help="apply the model overrides of variants.NAME")
    add_run_arguments(parser, "output directory (the pretrained decoder)")


def run(args: argparse.Namespace) -> int:
    from rpnt.jobs.pretrain import pretrain_job  # here: rpnt --help must not import torch

    pretrain_job(args.config, args.manifest, args.scenario, args.seed, args.out,
                 objective=args.objective, variant=args.variant,
                 checkpoint_dir=args.checkpoint_dir)
    return 0
