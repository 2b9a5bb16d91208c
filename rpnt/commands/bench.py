"""``rpnt bench``: speed and memory measured side by side in one run."""

from __future__ import annotations

import argparse
import importlib

NAME = "bench"
HELP = ("speed and memory against a reference, side by side (ingest, attention, units, "
        "train, pretrain, stream)")
DESCRIPTION = """\
Benchmarks print ratios measured in the same process and run, never absolute timings
checked by a test:

  rpnt bench ingest      ingest of a large simulated session vs. the h5py read floor
  rpnt bench ingest --cli  the rpnt ingest command (fresh process) vs. the same floor
  rpnt bench attention   context attention vs. PyTorch SDPA and a grouped-conv2d version
  rpnt bench units       an RPNT training step reading every unit (200 per site) vs 50 slots
  rpnt bench train       an RPNT training step vs. a standard (SDPA) transformer of the
                         same size, and where the step's time goes
  rpnt bench pretrain    pretraining samples/s of 1 rank, 2 data-parallel ranks (torchrun)
                         and 1 rank x 2 threads, and the loader's share of a step
  rpnt bench corpus      peak RSS of pretraining over 12 and 48 sessions, counts in memory
                         vs read lazily through the bounded chunk cache
  rpnt bench stream      per-bin latency of every streaming decoder (1 thread) vs recomputing
"""


def _ingest_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--units", type=int, default=200, help="units (default 200)")
    p.add_argument("--duration-s", type=float, default=3700.0,
                   help="session length in s (default 3700, > 1 h)")
    p.add_argument("--rate-hz", type=float, default=14.0,
                   help="mean firing rate (default 14 Hz: about 10 M spikes)")
    p.add_argument("--repeats", type=int, default=3,
                   help="timed repetitions; the fastest of each is reported (default 3)")
    p.add_argument("--workdir", metavar="DIR",
                   help="where to write the NWB file and store (default: a temporary dir)")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="ingest threads (default: the CPUs this process may use)")
    p.add_argument("--cli", action="store_true",
                   help="time the rpnt ingest command (a fresh process each run, start-up "
                        "and imports included) on the file without and with per-spike "
                        "waveforms, against the h5py floor")


def _seed_and_json(parser: argparse.ArgumentParser, seed: str | None = None) -> None:
    """``--seed`` (when the target draws random inputs: ``seed`` says of what) and
    ``--json``, which every bench target takes."""
    if seed is not None:
        parser.add_argument("--seed", type=int, default=0, help=seed)
    parser.add_argument("--json", default=None, metavar="OUT",
                        help="also write the figures (with provenance) to this JSON file")


def _model_batch(parser: argparse.ArgumentParser) -> None:
    """The size presets and the batch shape that the units and train targets time."""
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"],
                        choices=["tiny", "small", "medium", "large"],
                        help="size presets (default tiny small)")
    parser.add_argument("--batch", type=int, default=32, help="windows per batch (default 32)")
    parser.add_argument("--sites", type=int, default=2, help="sites per window (default 2)")
    parser.add_argument("--window", type=int, default=50, help="bins per window (default 50)")


def _attention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=32, help="batch size B (default 32)")
    parser.add_argument("--heads", type=int, default=8, help="attention heads H (default 8)")
    parser.add_argument("--d-model", type=int, default=256,
                        help="model width d; head dim = d / H (default 256)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 200],
                        help="sequence lengths T to measure (default 50 200)")
    parser.add_argument("--kernel-size", type=int, default=3, help="context kernel k (default 3)")
    parser.add_argument("--repeats", type=int, default=15,
                        help="interleaved rounds, each timing one forward+backward of every "
                             "variant (default 15)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch intra-op thread counts to measure (default 1 2; with more "
                             "than one thread, times are wall-clock)")
    _seed_and_json(parser, "seed of the random inputs")


def _units_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", type=int, default=200,
                        help="unit slots per site to compare with 50 (default 200)")
    _model_batch(parser)
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved rounds of every variant (default 5)")
    _seed_and_json(parser, "seed of model and inputs")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", type=int, default=64,
                        help="unit slots per site (default 64)")
    _model_batch(parser)
    parser.add_argument("--repeats", type=int, default=10,
                        help="interleaved rounds of every variant (default 10)")
    parser.add_argument("--profile", action="store_true",
                        help="also print the torch.profiler operator table of an RPNT step")
    _seed_and_json(parser, "seed of models and inputs")


def _pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "medium", "large"],
                        help="RPNT size preset (default tiny)")
    parser.add_argument("--sessions", type=int, default=4, help="sessions (default 4)")
    parser.add_argument("--units", type=int, default=64,
                        help="units per session, 2 sites (default 64)")
    parser.add_argument("--bins", type=int, default=20000, help="bins per session (default 20000)")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps (default 40)")
    parser.add_argument("--batch", type=int, default=32, help="global batch (default 32)")
    parser.add_argument("--window", type=int, default=50, help="bins per window (default 50)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of every layout (default 3)")
    _seed_and_json(parser, "seed of data, model, batches")


def _corpus_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stores", default="resources/stores/sim_default/bin20ms",
                        help="folder of simulated .zarr stores to replicate "
                             "(default resources/stores/sim_default/bin20ms)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[12, 48],
                        help="corpus sizes (default 12 48)")
    parser.add_argument("--steps", type=int, default=20, help="pretraining steps (default 20)")
    _seed_and_json(parser)


def _stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "paper"],
                        choices=["tiny", "small", "paper"],
                        help="RPNT sizes (paper: d 256 on two sites; default all)")
    parser.add_argument("--peers", nargs="*", default=["gru", "ndt", "wiener"],
                        choices=["gru", "ndt", "wiener"], help="peers (default all)")
    parser.add_argument("--window", type=int, default=50, help="T bins (default 50)")
    parser.add_argument("--units", type=int, default=50, help="units per site (default 50)")
    parser.add_argument("--bins", type=int, default=1000, help="timed bins (default 1000)")
    parser.add_argument("--warmup", type=int, default=100,
                        help="untimed bins first (default 100; >= T fills the span)")
    _seed_and_json(parser, "seed of weights and counts")


#: benchmark name -> (module with run(args) -> int, help, argument declarations).
#: Arguments are declared here, not in the modules, so that building the parser for
#: any rpnt command never imports torch or h5py.
TARGETS = {
    "ingest": ("rpnt.bench.ingest",
               "ingest time, spikes/s and peak RSS vs. the h5py floor (--cli: the command)",
               _ingest_arguments),
    "attention": ("rpnt.bench.attention",
                  "context attention vs. SDPA and grouped conv2d", _attention_arguments),
    "units": ("rpnt.bench.units",
              "an RPNT training step with every unit (--units per site) vs 50 slots",
              _units_arguments),
    "train": ("rpnt.bench.train",
              "an RPNT training step vs. a standard transformer of the same size",
              _train_arguments),
    "pretrain": ("rpnt.bench.pretrain",
                 "pretraining samples/s: 1 rank vs 2 data-parallel ranks vs 1 rank x 2 "
                 "threads, and the loader's share", _pretrain_arguments),
    "corpus": ("rpnt.bench.corpus",
               "peak RSS of pretraining over 12 and 48 sessions, stores read eagerly vs "
               "lazily", _corpus_arguments),
    "stream": ("rpnt.bench.stream",
               "per-bin latency of streaming decoders on one thread vs recomputing the window",
               _stream_arguments),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, (_module, help_, declare) in TARGETS.items():
        declare(sub.add_parser(name, help=help_, description=help_))


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(TARGETS[args.target][0])
    return int(module.run(args) or 0)
