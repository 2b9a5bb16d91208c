"""The options every training command shares: its seed, output and checkpoints, and how it
scores the decoder it has just trained, in memory (``rpnt finetune`` and ``rpnt
baseline``; the workflow scores every model in the job that trained it)."""

from __future__ import annotations

import argparse
from typing import Any

from rpnt.errors import RpntError


def add_run_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """--seed, --out and --checkpoint-dir: what every training command takes."""
    parser.add_argument("--seed", type=int, default=0,
                        help="the job's seed: every random draw of the job follows from it "
                             "(default 0)")
    parser.add_argument("--out", required=True, metavar="DIR", help=out_help)
    parser.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                        help="rolling resume checkpoints (default: <out>.ckpt); rerunning "
                             "the same command after a kill resumes from them")


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """--metrics, --predictions and --tag."""
    parser.add_argument("--metrics", metavar="METRICS.json",
                        help="then score the trained decoder on the store's test trials, "
                             "exactly as 'rpnt evaluate' does, and write its metrics JSON "
                             "(the workflow scores every model in the job that trained it)")
    parser.add_argument("--predictions", metavar="P.npz",
                        help="with --metrics: also save true and predicted velocity on the "
                             "test trials (as 'rpnt evaluate --predictions')")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="with --metrics: extra field of the record, repeatable "
                             "(e.g. --tag model=rpnt_joint_staged names the table row)")


def check_scoring_arguments(args: argparse.Namespace) -> None:
    """Before training: --predictions and --tag mean nothing without --metrics."""
    if (args.predictions or args.tag) and not args.metrics:
        raise RpntError("--predictions and --tag need --metrics METRICS.json")


def scoring_options(args: argparse.Namespace) -> Any:
    """The job's :class:`rpnt.jobs.scoring.Scoring` from --metrics, --predictions, --tag."""
    # here, not at the top: rpnt --help must not import torch
    from rpnt.eval.evaluate import parse_tags
    from rpnt.jobs.scoring import Scoring

    return Scoring(metrics=args.metrics, predictions=args.predictions,
                   tags=parse_tags(args.tag))
