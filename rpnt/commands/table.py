"""``rpnt table``: the benchmark table from metrics JSON files."""

from __future__ import annotations

import argparse

NAME = "table"
HELP = "tabulate metrics JSON files: mean ± std of R² per model and scenario"
DESCRIPTION = """\
Collect metrics records (written by 'rpnt evaluate' and 'rpnt ceiling') into

  OUT_DIR/table.md    rows = models (wiener, gru, ndt, poyo, rpnt_scratch, rpnt_frozen,
                      rpnt_fewshot, rpnt_full, ceiling), columns = scenarios, cells =
                      mean ± std of R² over sessions and seeds (n), plus a provenance
                      block (git commit, config hash, dandiset ids/versions, packages)
  OUT_DIR/table.csv   the same numbers, machine-readable (<scenario>:mean/std/n/note)

A model without results shows the reason instead of numbers: the reason of its skip
records (e.g. "torch-brain not installed"), "not installed" for POYO when torch-brain
cannot be imported, else "no results". With --config, the rows include every model of
the config's models list and the columns follow its scenarios section.

Example:
  rpnt table results/default/metrics/*/*/*/*.json --out-dir results/benchmark/default \\
      --config resolved.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("metrics", nargs="+", metavar="METRICS.json",
                        help="metrics JSON files")
    parser.add_argument("--out-dir", required=True, metavar="DIR",
                        help="where table.md and table.csv are written")
    parser.add_argument("--config", metavar="CFG.yaml",
                        help="resolved workflow config (models, scenarios, config hash)")
    parser.add_argument("--name", help="benchmark name in the title (default: the "
                                       "config's benchmark)")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy
    from pathlib import Path

    from rpnt.configfile import load_yaml
    from rpnt.eval.tables import write_table

    config = load_yaml(args.config) if args.config else None
    table = write_table(args.metrics, args.out_dir, config=config, name=args.name)
    print((Path(args.out_dir) / "table.md").read_text())
    print(f"{len(table.models)} models x {len(table.scenarios)} scenarios -> {args.out_dir}")
    return 0
