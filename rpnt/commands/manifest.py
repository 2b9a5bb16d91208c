"""``rpnt manifest``: one table row per ingested session."""

from __future__ import annotations

import argparse

NAME = "manifest"
HELP = "tabulate ingested stores: one row per session (subject, task, date, areas, units, ...)"
DESCRIPTION = """\
Reads the attributes and counts of each Zarr store (schema v2) and writes a tab-separated
table with the columns dataset, session, subject, task, date, areas, sites, n_units,
n_trials, n_valid, duration_s, rate_mean_hz, rate_median_hz, store. Scenarios select
target and pretraining sessions from this table.

example:
  rpnt manifest resources/stores/perich_miller/*.zarr --out resources/manifests/perich_miller.tsv
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", nargs="+", metavar="STORE.zarr", help="stores written by rpnt ingest")
    p.add_argument("--out", required=True, metavar="TSV", help="manifest file to write")


def run(args: argparse.Namespace) -> int:
    from rpnt.manifest import build_manifest, write_manifest  # here: keeps --help fast

    df = build_manifest(args.stores)
    write_manifest(df, args.out)
    print(f"{args.out}: {len(df)} sessions")
    return 0
