"""``rpnt bench``: speed and memory measured side by side in one run."""

from __future__ import annotations

import argparse
import importlib
import importlib.util

NAME = "bench"
HELP = "measure speed and memory against a reference, side by side (ingest, attention)"
DESCRIPTION = """\
Benchmarks print ratios measured in the same process and run, never absolute timings
checked by a test:

  rpnt bench ingest      ingest of a large simulated session vs. the h5py read floor
  rpnt bench attention   context attention vs. PyTorch SDPA and a grouped-conv2d version
"""

#: benchmark name -> module providing add_arguments(parser) and run(args) -> int
TARGETS = {
    "ingest": ("rpnt.ingest.bench", "ingest time, spikes/s and peak memory vs. the h5py floor"),
    "attention": ("rpnt.model.bench", "context attention vs. SDPA and grouped conv2d"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, (module, help_) in TARGETS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            present = False
        if not present:
            continue  # that part of rpnt is not in this checkout
        # The benchmark modules keep their heavy imports inside run(), so this is cheap.
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TARGETS[args.target][0])
    return int(module.run(args) or 0)
