"""``rpnt transfer``: cross-session Wiener transfer within each simulated subject."""

from __future__ import annotations

import argparse

NAME = "transfer"
HELP = "cross-session Wiener transfer of a simulated dataset (does pretraining data help?)"
DESCRIPTION = """\
For every ordered pair (source, target) of sessions of one simulated subject: a lagged
ridge (Wiener) decoder on the units both record (matched by the ground truth's population
index), fit on the source's training trials, scored unchanged on the target's test trials
("transfer"), beside the same decoder fit on the target's own training trials ("within").
Prints a markdown table (with the mean per subject and task relation) and writes the rows
as JSON. Transfer far above 0: the sessions share structure to carry over; transfer well
below within: they differ enough for more pretraining data to matter.

example:
  rpnt transfer --stores resources/stores/sim_default/bin20ms \\
      --truth resources/raw/sim_default/derivatives/ground-truth --out transfer.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stores", required=True, metavar="DIR",
                        help="folder of the dataset's session stores (*.zarr)")
    parser.add_argument("--truth", required=True, metavar="DIR",
                        help="the simulator's derivatives/ground-truth folder")
    parser.add_argument("--lags", type=int, default=5,
                        help="bins of history of the decoder (default: %(default)s)")
    parser.add_argument("--out", metavar="transfer.json", help="rows as JSON (optional)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from rpnt.atomic import write_text
    from rpnt.errors import RpntError
    from rpnt.sim.transfer import population_index, transfer_table
    from rpnt.store import load_session

    stores = sorted(Path(args.stores).glob("*.zarr"))
    if not stores:
        raise RpntError(f"{args.stores}: no *.zarr store; pass the folder rpnt ingest wrote")
    sessions = [load_session(p) for p in stores]
    pops = [population_index(s, Path(args.truth) / f"{s.session}.npz") for s in sessions]
    rows = transfer_table(sessions, pops, lags=args.lags)
    print("| source | target | days | same task | shared units | transfer R² | within R² |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {r['target']} | {r['days_apart']} | {r['same_task']} | "
              f"{r['shared_units']} | {r['transfer']:.3f} | {r['within']:.3f} |")
    print()
    for subject in sorted({r["subject"] for r in rows}):
        for same in (True, False):
            sel = [r for r in rows if r["subject"] == subject and r["same_task"] == same]
            if sel:
                t = np.nanmean([r["transfer"] for r in sel])
                w = np.nanmean([r["within"] for r in sel])
                print(f"subject {subject}, {'same' if same else 'other'} task: transfer "
                      f"{t:.3f}, within {w:.3f} (mean of {len(sel)} pairs)")
    if args.out:
        write_text(args.out, json.dumps(rows, indent=1))
    return 0
