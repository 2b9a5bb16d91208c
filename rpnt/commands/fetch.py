"""``rpnt fetch``: download a registry dataset from DANDI with the official client."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "fetch"
#: asset manifest written into --out by a fetch without --asset (one writer per folder)
MANIFEST_NAME = "rpnt-assets.tsv"
HELP = "download a DANDI dataset of the registry (pinned version, verified, resumable)"
DESCRIPTION = """\
List the pinned version of DATASET (an entry of config/datasets.yaml) on the DANDI API
server with the official `dandi` client, keep the assets selected by the registry and by
--glob / --asset, write an asset manifest TSV (path, asset_id, size, etag, sha256,
dandiset_id, version; default DIR/rpnt-assets.tsv unless --asset), and download them to
DIR/<asset path> with `dandi.download`: dandi-etag checksums are verified, interrupted
files resume with HTTP Range requests, and files already complete are skipped. A file
that fails verification is removed.

The server's listing is the source of truth; where the registry has a committed manifest
(e.g. config/assets/000688.tsv) differences are reported as warnings.

API URL precedence: --api-url > $RPNT_DANDI_API_URL > the registry entry's api_url >
https://api.dandiarchive.org/api.

Examples:
  rpnt fetch perich_miller_2018 --out resources/raw/perich_miller_2018 --jobs 4
  rpnt fetch perich_miller_2018 --out resources/raw/perich_miller_2018 \\
      --asset sub-M/sub-M_ses-RT-20140114_behavior+ecephys.nwb
  rpnt fetch nlb_mc_maze --list-only --manifest-out resources/manifests/nlb_mc_maze.assets.tsv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rpnt.acquire import EXISTING_CHOICES

    parser.add_argument("dataset", metavar="DATASET", help="dataset name in the registry")
    parser.add_argument("--out", metavar="DIR",
                        help="dataset folder; assets land at DIR/<asset path> "
                             "(required unless --list-only)")
    parser.add_argument("--registry", metavar="PATH",
                        help="registry YAML (default: $RPNT_REGISTRY or config/datasets.yaml)")
    parser.add_argument("--glob", metavar="PATTERN",
                        help="keep only asset paths matching this fnmatch pattern "
                             "(over the whole path, e.g. 'sub-M/*')")
    parser.add_argument("--asset", metavar="PATH", action="append",
                        help="fetch only this asset path (repeatable); one Snakemake job "
                             "per asset uses this")
    parser.add_argument("--api-url", metavar="URL",
                        help="DANDI API base URL ending in /api (beats $RPNT_DANDI_API_URL "
                             "and the registry)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="parallel downloads / metadata requests (default 1)")
    parser.add_argument("--existing", choices=EXISTING_CHOICES, default="overwrite-different",
                        help="what to do with a file already at its path: "
                             "overwrite-different (default: keep it if its size and "
                             "dandi-etag match the server), skip (keep any existing file), "
                             "refresh (keep if size and mtime match), overwrite")
    parser.add_argument("--list-only", action="store_true",
                        help="list and select only: print the assets, download nothing")
    parser.add_argument("--manifest-out", metavar="TSV",
                        help="write the asset manifest of the selected assets here (default "
                             f"without --asset/--list-only: DIR/{MANIFEST_NAME})")


def run(args: argparse.Namespace) -> int:
    from rpnt.acquire.fetch import fetch_dataset  # here: rpnt --help must not load dandi
    from rpnt.errors import RpntError

    if args.jobs < 1:
        raise RpntError(f"--jobs must be >= 1, got {args.jobs}")
    manifest_out = args.manifest_out
    if manifest_out is None and args.out and not args.asset and not args.list_only:
        # Per-asset jobs (--asset) run in parallel on one folder: they write no shared file.
        manifest_out = str(Path(args.out) / MANIFEST_NAME)
    res = fetch_dataset(
        args.dataset, args.out, registry=args.registry, glob=args.glob, assets=args.asset,
        api_url=args.api_url, jobs=args.jobs, list_only=args.list_only,
        manifest_out=manifest_out, existing=args.existing)
    m = res.manifest
    where = f"DANDI:{res.dandiset_id}/{res.version} at {res.api_url}"
    if args.list_only:
        print(m[["path", "size", "asset_id"]].to_csv(sep="\t", index=False), end="")
        print(f"{len(m)} asset(s), {m['size'].sum() / 1e6:.1f} MB, {where}", file=sys.stderr)
        return 0
    rep = res.report
    print(f"{args.dataset}: {len(m)} asset(s) ({m['size'].sum() / 1e6:.1f} MB) from {where} "
          f"in {args.out}; {len(rep.present_before)} were already present"
          + (f"; asset manifest {manifest_out}" if manifest_out else ""), file=sys.stderr)
    return 0
