"""``rpnt evaluate``: score a saved decoder on a store's test trials -> metrics JSON."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "score a decoder on the test trials of a store (stitched R² per covariate) -> metrics JSON"
DESCRIPTION = """\
Score one saved decoder (the directory written by 'rpnt baseline' or 'rpnt finetune') on
one session store, the way the peers score:

  * test trials only, and only the store's eval_mask bins with finite velocity;
  * windows of the decoder's length overlapping by 50 %, predictions averaged per bin
    ("stitched") before scoring;
  * R² of each covariate the store names (vx and vy for a velocity) separately, then
    averaged; on a FALCON store also FALCON's variance-weighted R² (from its own
    evaluator when falcon-challenge is installed).

Numbers are computed afresh on every call. With --scenario (and --config) the scenario's
unit-level selection (e.g. only PMd units) is applied to the store first, exactly as in
training. --tag key=value adds/overrides fields of the record (model, seed, ...).
With --stream the decoder is instead run as it would online: one bin at a time from the
session's first bin (docs/online.md), its outputs on the same scored bins give the R²,
and the record gains "scoring": "stream", per-bin "latency" (one thread) and
"stream_check_max_abs_diff" (stepped outputs vs the vectorised stream).
A model directory holding a skip record (e.g. POYO without torch-brain) yields a metrics
record with "skipped": reason and "r2": null.

Example:
  rpnt evaluate --model results/default/bin20ms/models/cross_subject/gru/SESSION/seed0 \\
      --store resources/stores/sim_default/SESSION.zarr --scenario cross_subject \\
      --config resolved.yaml --tag model=gru --tag seed=0 --out metrics.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DECODER_DIR",
                        help="saved decoder directory (meta.json + weights.safetensors)")
    parser.add_argument("--store", required=True, metavar="STORE.zarr",
                        help="session store to evaluate on")
    parser.add_argument("--out", required=True, metavar="metrics.json",
                        help="metrics JSON to write (atomically)")
    parser.add_argument("--scenario", metavar="NAME",
                        help="apply this scenario's unit-level selection (needs --config)")
    parser.add_argument("--config", metavar="CFG.yaml",
                        help="the workflow's resolved config (scenarios section)")
    parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        help="extra field of the record, repeatable (e.g. --tag seed=0)")
    parser.add_argument("--predictions", metavar="P.npz",
                        help="also save true and predicted velocity on the test trials")
    parser.add_argument("--split", default="test", choices=["test", "valid"],
                        help="trials to score (default: test; valid is for model selection)")
    parser.add_argument("--stream", action="store_true",
                        help="score the decoder streamed bin by bin (docs/online.md), with "
                             "latency fields, instead of stitched windows")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy, zarr or torch
    from rpnt.eval.evaluate import parse_tags, summary
    from rpnt.jobs.evaluate import evaluate_job

    record = evaluate_job(args.model, args.store, args.out,
                          predictions=args.predictions, scenario=args.scenario,
                          config=args.config, tags=parse_tags(args.tag), split=args.split,
                          stream=args.stream)
    print(summary(record))
    return 0
