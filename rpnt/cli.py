"""The ``rpnt`` command line: one subcommand per module in :mod:`rpnt.commands`.

Each command module defines ``NAME``, ``HELP`` (one line), ``DESCRIPTION`` (paragraph),
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import heavy
libraries (torch, pynwb, ...) inside ``run`` so that ``rpnt --help`` stays instant.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

import rpnt
import rpnt.commands
from rpnt.errors import RpntError
from rpnt.machine import PEAK_RSS_ENV, peak_rss_bytes


def _report_peak_rss() -> None:
    print("RPNT_PEAK_RSS", peak_rss_bytes(), file=sys.stderr)


def _command_modules() -> list:
    mods = []
    for info in sorted(pkgutil.iter_modules(rpnt.commands.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"rpnt.commands.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpnt",
        description=(
            "rpnt turns motor-cortex recordings (NWB, e.g. from the DANDI archive) into "
            "pretrained neural decoders: simulate or fetch data, ingest NWB into Zarr "
            "stores, pretrain and finetune RPNT and its peers, evaluate and tabulate. "
            "The Snakemake workflow in this repository chains these commands."
        ),
        epilog="Run 'rpnt COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"rpnt {rpnt.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _command_modules():
        p = sub.add_parser(
            mod.NAME, help=mod.HELP, description=mod.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("-v", "--verbose", action="store_true",
                       help="show debug logging and full tracebacks on error")
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if os.environ.get(PEAK_RSS_ENV):
        atexit.register(_report_peak_rss)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    verbose = bool(getattr(args, "verbose", False))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except RpntError as exc:
        if verbose:
            traceback.print_exc()
        print(f"rpnt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rpnt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
