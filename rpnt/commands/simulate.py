"""``rpnt simulate``: write a simulated dandiset-like folder (or measure one's realism)."""

from __future__ import annotations

import argparse

NAME = "simulate"
HELP = "simulate NHP reaching sessions as NWB files in the DANDI 000688 layout"
DESCRIPTION = """\
Write a dandiset-like folder of simulated motor-cortex recordings:

  DIR/dandiset.yaml
  DIR/sub-<S>/sub-<S>_ses-<CO|RT>-<YYYYMMDD>_behavior+ecephys.nwb
  DIR/derivatives/ground-truth/<session_id>.npz   (true rates, latents, kinematics)

Presets: tiny (CI, seconds), default (the embedded benchmark: 12 sessions, 3 subjects,
both tasks, M1 and PMd, 2013-2016), multisite (Neuropixels-style probe sites with x/y/z),
and the FALCON stand-ins falcon_m2, falcon_m1, falcon_h1 (files in the FALCON layouts of
DANDI 000953, 000941, 000954: held-in and held-out calibration days).
The whole folder is written atomically; an existing DIR needs --force.

With --realism DIR, nothing is written: the realism statistics of an existing simulated
folder are printed (firing rates, Fano factors, latent dimensionality, and per session the
R^2 of a lagged Wiener filter on 20 ms counts vs. the noise ceiling from the true rates).
With --ceiling DIR only the per-session noise ceilings are printed.

Examples:
  rpnt simulate --preset default --seed 0 --out resources/raw/sim-default
  rpnt simulate --realism resources/raw/sim-default
  rpnt simulate --ceiling resources/raw/sim-default
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="default",
                        help="tiny | default | multisite | falcon_m2 | falcon_m1 | "
                             "falcon_h1 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--out", metavar="DIR", help="output folder (dandiset-like)")
    parser.add_argument("--force", action="store_true", help="replace an existing DIR")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--realism", metavar="DIR",
                        help="instead of simulating, print realism statistics of DIR")
    parser.add_argument("--ceiling", metavar="DIR",
                        help="instead of simulating, print the noise ceiling of every "
                             "session of DIR")
    parser.add_argument("--json", metavar="FILE",
                        help="with --realism/--ceiling: also write the numbers as JSON")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy, scipy or pynwb
    from rpnt.errors import RpntError
    from rpnt.eval.realism import realism_report
    from rpnt.sim.generate import simulate_dataset

    if args.realism or args.ceiling:
        realism_report(args.realism or args.ceiling, json_out=args.json,
                       progress=not args.no_progress, ceiling_only=not args.realism)
        return 0
    if not args.out:
        raise RpntError("rpnt simulate needs --out DIR (or --realism DIR)")
    paths = simulate_dataset(args.preset, args.seed, args.out, force=args.force,
                             progress=not args.no_progress)
    print(f"wrote {len(paths)} sessions to {args.out}")
    return 0
