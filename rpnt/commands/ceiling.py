"""``rpnt ceiling``: the noise ceiling of a simulated session (decoding from true rates)."""

from __future__ import annotations

import argparse

NAME = "ceiling"
HELP = "R² of a lagged ridge decoder on the true rates of a simulated session (noise ceiling)"
DESCRIPTION = """\
For a session simulated by 'rpnt simulate' and ingested by 'rpnt ingest', fit a causal
lagged ridge decoder on the TRUE firing rates (from the simulator's ground-truth file,
binned like the store) of the training bins, choose the ridge penalty on the validation
bins, and score velocity R² on the test trials' evaluation bins. Writes the metrics JSON
of 'rpnt evaluate' with model "ceiling": the ceiling row of simulated benchmark tables.

Example:
  rpnt ceiling --store resources/stores/sim/sub-C_ses-CO-20131003.zarr \\
      --truth resources/raw/sim/derivatives/ground-truth/sub-C_ses-CO-20131003.npz \\
      --out results/ceiling/sub-C_ses-CO-20131003.json --tag scenario=cross_session
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, metavar="STORE.zarr",
                        help="ingested session store (schema v1)")
    parser.add_argument("--truth", required=True, metavar="TRUTH.npz",
                        help="the session's ground truth: DIR/derivatives/ground-truth/<id>.npz")
    parser.add_argument("--out", required=True, metavar="ceiling.json", help="metrics JSON")
    parser.add_argument("--tag", action="append", metavar="key=value",
                        help="extra fields for the record (repeatable), e.g. scenario=x seed=0")
    parser.add_argument("--scenario", metavar="NAME",
                        help="apply this scenario's unit-level selection, as 'rpnt evaluate' "
                             "does (needs --config)")
    parser.add_argument("--config", metavar="CFG.yaml",
                        help="the workflow's resolved config (scenarios section)")
    parser.add_argument("--lags", type=int, default=10,
                        help="bins of rate history of the decoder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy, zarr or torch
    from rpnt.atomic import check_overwrite
    from rpnt.configfile import load_yaml
    from rpnt.data.scenarios import apply_scenario_units
    from rpnt.errors import RpntError
    from rpnt.eval.evaluate import parse_tags, write_metrics
    from rpnt.provenance import provenance, sha256_file
    from rpnt.sim.ceiling import noise_ceiling
    from rpnt.store import load_session

    check_overwrite(args.out, args.force)
    tags = parse_tags(args.tag)
    config = None
    if args.scenario:
        if not args.config:
            raise RpntError("--scenario needs --config CFG.yaml (the scenarios section)")
        config = load_yaml(args.config)
        tags["scenario"] = args.scenario
    # The ceiling sees the same units as the scenario's decoders (e.g. PMd only).
    session = apply_scenario_units(load_session(args.store), config, args.scenario)
    res = noise_ceiling(session, args.truth, lags=args.lags)
    record = {
        "model": "ceiling", "scenario": tags.pop("scenario", None),
        "session": session.session, "seed": tags.pop("seed", None),
        "r2": res["r2"], "n_bins": res["n_bins"], "n_trials": res["n_trials"],
        "n_units": session.n_unit,
        "split": "test", "lambda": res["lambda"], "lags": res["lags"],
    }
    record.update({k: v for k, v in tags.items() if k not in record})
    record["provenance"] = provenance(
        {"lags": args.lags}, store=str(args.store), truth=str(args.truth),
        truth_sha256=sha256_file(args.truth))
    write_metrics(args.out, record)
    print(f"{session.session}: ceiling R² {res['r2']['mean']:.3f} "
          f"(vx {res['r2']['vx']:.3f}, vy {res['r2']['vy']:.3f}) -> {args.out}")
    return 0
