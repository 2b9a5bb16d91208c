"""``rpnt evaluate``: score a saved decoder on a store's test trials -> metrics JSON."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "score a decoder on the test trials of a store (stitched R² of vx, vy) -> metrics JSON"
DESCRIPTION = """\
Score one saved decoder (the directory written by 'rpnt baseline' or 'rpnt finetune') on
one session store, the way the peers score:

  * test trials only, and only the store's eval_mask bins with finite velocity;
  * windows of the decoder's length overlapping by 50 %, predictions averaged per bin
    ("stitched") before scoring;
  * R² of vx and of vy separately, then averaged.

Numbers are computed afresh on every call. With --scenario (and --config) the scenario's
unit-level selection (e.g. only PMd units) is applied to the store first, exactly as in
training. --tag key=value adds/overrides fields of the record (model, seed, ...).
A model directory holding a skip record (e.g. POYO without torch-brain) yields a metrics
record with "skipped": reason and "r2": null.

Example:
  rpnt evaluate --model results/default/models/cross_subject/gru/SESSION/seed0 \\
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


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy, zarr or torch
    import numpy as np

    from rpnt.atomic import atomic_path
    from rpnt.configfile import load_yaml
    from rpnt.data.scenarios import apply_scenario_units
    from rpnt.errors import RpntError
    from rpnt.eval.evaluate import evaluate_model, parse_tags, save_predictions, write_metrics
    from rpnt.seeding import seed_everything
    from rpnt.store import load_session

    tags = parse_tags(args.tag)
    # Scoring draws nothing at random (the decoder's eval_seed fixes its unit choice);
    # seeding from the run's seed keeps any draw of a library identical between runs.
    seed_everything(tags["seed"] if isinstance(tags.get("seed"), int) else 0)
    config = load_yaml(args.config) if args.config else None
    if args.scenario and config is None:
        raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
    session = apply_scenario_units(load_session(args.store), config, args.scenario)
    record, score = evaluate_model(args.model, session, scenario=args.scenario, tags=tags,
                                   config=config, split=args.split)
    record["store_path"] = str(args.store)
    if args.predictions:
        if score is None:
            # a skipped model has no predictions: write an empty, labelled file so the
            # workflow's declared output exists and figures can tell it apart
            with atomic_path(args.predictions) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, skipped=np.array(record["skipped"]),
                                    session=np.array(session.session))
        else:
            save_predictions(args.predictions, session, score, split=args.split,
                             model=record["model"], scenario=record["scenario"],
                             seed=record["seed"])
    write_metrics(args.out, record)
    if score is None:
        print(f"{record['model']}: skipped ({record['skipped']})")
    else:
        r2 = record["r2"]
        print(f"{record['model']} on {session.session}: R² mean {r2['mean']:.4f} "
              f"({', '.join(f'{k} {v:.4f}' for k, v in r2.items() if k != 'mean')}), "
              f"{record['n_bins']} bins, {record['n_trials']} trials")
    return 0
