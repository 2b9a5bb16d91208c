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

--run computes several ceilings in one process (the workflow's one ceiling job).

Examples:
  rpnt ceiling --store resources/stores/sim/sub-C_ses-CO-20131003.zarr \\
      --truth resources/raw/sim/derivatives/ground-truth/sub-C_ses-CO-20131003.npz \\
      --out results/ceiling/sub-C_ses-CO-20131003.json --tag scenario=cross_session
  rpnt ceiling --run A.zarr A.npz x/A.json scenario=x --run A.zarr A.npz y/A.json scenario=y
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", metavar="STORE.zarr",
                        help="ingested session store (schema v2)")
    parser.add_argument("--truth", metavar="TRUTH.npz",
                        help="the session's ground truth: DIR/derivatives/ground-truth/<id>.npz")
    parser.add_argument("--out", metavar="ceiling.json", help="metrics JSON")
    parser.add_argument("--tag", action="append", metavar="key=value",
                        help="extra fields for the record (repeatable), e.g. scenario=x seed=0")
    parser.add_argument("--run", action="append", nargs="+", metavar="ARG",
                        help="instead of --store/--truth/--out/--tag: one ceiling as "
                             "STORE.zarr TRUTH.npz OUT.json [key=value ...]; repeat it to "
                             "compute many in one process (a session's ceiling is computed "
                             "once however many outputs name it)")
    parser.add_argument("--scenario", metavar="NAME",
                        help="apply this scenario's unit-level selection, as 'rpnt evaluate' "
                             "does (needs --config)")
    parser.add_argument("--config", metavar="CFG.yaml",
                        help="the workflow's resolved config (scenarios section)")
    parser.add_argument("--lags", type=int, default=10,
                        help="bins of rate history of the decoder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")


def _runs(args: argparse.Namespace) -> list[tuple[str, str, str, list[str]]]:
    """(store, truth, out, tags) of every ceiling asked for."""
    from rpnt.errors import RpntError

    single = (args.store, args.truth, args.out)
    if args.run:
        if any(single) or args.tag:
            raise RpntError("give either --run ... (repeatable) or --store, --truth, --out "
                            "and --tag, not both")
        bad = [r for r in args.run if len(r) < 3]
        if bad:
            raise RpntError(f"--run {' '.join(bad[0])}: expected STORE.zarr TRUTH.npz "
                            "OUT.json [key=value ...]")
        return [(r[0], r[1], r[2], r[3:]) for r in args.run]
    if not all(single):
        raise RpntError("rpnt ceiling needs --store, --truth and --out (or --run ...)")
    return [(args.store, args.truth, args.out, args.tag or [])]


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy, zarr or torch
    from rpnt.eval.evaluate import parse_tags
    from rpnt.jobs.ceiling import ceiling_job

    ceiling_job([(store, truth, out, parse_tags(tags)) for store, truth, out, tags in _runs(args)],
                scenario=args.scenario, config=args.config, lags=args.lags, force=args.force)
    return 0
