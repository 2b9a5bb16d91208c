"""``rpnt table``: the benchmark table from metrics JSON files."""

from __future__ import annotations

import argparse

NAME = "table"
HELP = "tabulate metrics JSON files: mean ± std of R² per model, scenario and label budget"
DESCRIPTION = """\
Collect metrics records (written by 'rpnt evaluate' and 'rpnt ceiling') into

  OUT_DIR/table.md          rows = models (wiener, gru, ndt, poyo, rpnt_scratch,
                            rpnt_<objective>_<mode>, variants, ceiling), columns =
                            scenarios (one table per scenario with a column per label
                            budget when there are several), cells = mean ± std of R² over
                            sessions and seeds (n); then the paired differences against
                            rpnt_scratch and gru (same sessions, seeds and labelled trials),
                            the ridge probe of the pretrained models (--pretrained) and a
                            provenance block (git commit, config hash, dandisets, packages)
  OUT_DIR/table.csv         the table, machine-readable (<column>:mean/std/n/note)
  OUT_DIR/differences.csv   the paired differences (scenario, budget, model, reference)
  OUT_DIR/probe.csv         the probe R² per pretraining, seed and probe session

A model without results shows the reason instead of numbers: the reason of its skip
records (e.g. "torch-brain not installed"), "not installed" for POYO when torch-brain
cannot be imported, else "no results". With --config, the rows include every model of
the config's models list and the columns follow its scenarios and budgets.

Example:
  R=results/default/bin20ms
  rpnt table $R/metrics/*/*/*/*/*.json --out-dir results/benchmark/default/bin20ms \\
      --config $R/config.resolved.yaml --pretrained $R/pretrain/*/*/seed*
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
    parser.add_argument("--pretrained", nargs="*", default=[], metavar="DIR",
                        help="pretrained model directories whose probe is tabulated")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load numpy
    from pathlib import Path

    from rpnt.configfile import load_yaml
    from rpnt.eval.table_files import write_table
    from rpnt.parts import TablePart

    # the table's part of the config (what the workflow's digest of this rule hashes)
    config = TablePart.of(load_yaml(args.config)).as_dict() if args.config else None
    table = write_table(args.metrics, args.out_dir, config=config, name=args.name,
                        pretrained=args.pretrained)
    print((Path(args.out_dir) / "table.md").read_text())
    print(f"{len(table.models)} models x {len(table.scenarios)} scenarios -> {args.out_dir}")
    return 0
