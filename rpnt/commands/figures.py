"""``rpnt figures``: benchmark figures (PNG) from metrics, predictions and training logs."""

from __future__ import annotations

import argparse

NAME = "figures"
HELP = "draw benchmark figures: R² bars, predicted vs true velocity, curves, attention"
DESCRIPTION = """\
Without a subcommand, draw every benchmark figure into --out-dir (written as one
directory, atomically), as the workflow does:

  rpnt figures --config CFG.yaml --metrics M.json ... --predictions P.npz ... \\
      --runs MODEL_DIR ... --out-dir results/benchmark/NAME/bin<B>ms/figures

  r2.png                    R² per scenario and model: bars = mean, error bars = std, dots =
                            sessions x seeds; the noise ceiling as a marker
  predictions_<scen>.png    predicted vs true velocity on a test trial (figures.example_model)
  curves_<model>.png        training loss and validation metric of a model's runs, one line
                            per scenario (mean over its runs, band = range)
  attention_<scen>.png      RPNT spatial (site x site) attention, multi-site data only

Or one figure at a time:

  rpnt figures r2 --table table.csv --out r2.png
  rpnt figures predictions --predictions P.npz [--trial K] --out pred.png
  rpnt figures curves --runs DIR_OR_JSONL ... --out curves.png
  rpnt figures attention --model RPNT_DIR --store STORE.zarr [--scenario S --config C] --out a.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="CFG.yaml", help="resolved workflow config")
    parser.add_argument("--metrics", nargs="*", default=[], metavar="M.json",
                        help="metrics JSON files (for r2.png)")
    parser.add_argument("--predictions", nargs="*", default=[], metavar="P.npz",
                        help="predictions written by rpnt evaluate --predictions")
    parser.add_argument("--runs", nargs="*", default=[], metavar="DIR",
                        help="trained model / pretraining directories with metrics.jsonl")
    parser.add_argument("--out-dir", metavar="DIR", help="output directory (all figures)")
    parser.add_argument("--no-attention", action="store_true",
                        help="skip attention maps in the all-figures mode")
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE")
    p = sub.add_parser("r2", help="R² bar chart from table.csv")
    p.add_argument("--table", required=True, metavar="table.csv", help="from rpnt table")
    p.add_argument("--out", required=True, metavar="PNG", help="output PNG")
    p = sub.add_parser("predictions", help="predicted vs true velocity on a test trial")
    p.add_argument("--predictions", dest="pred_file", required=True, metavar="P.npz",
                   help="from rpnt evaluate --predictions")
    p.add_argument("--trial", type=int, help="trial index (default: most scored bins)")
    p.add_argument("--out", required=True, metavar="PNG", help="output PNG")
    p = sub.add_parser("curves", help="training curves from metrics.jsonl files")
    p.add_argument("--runs", dest="run_list", nargs="+", required=True, metavar="RUN",
                   help="model directories or metrics.jsonl files")
    p.add_argument("--out", required=True, metavar="PNG", help="output PNG")
    p = sub.add_parser("attention", help="RPNT spatial attention maps on a store")
    p.add_argument("--model", required=True, metavar="RPNT_DIR", help="saved RPNT decoder")
    p.add_argument("--store", required=True, metavar="STORE.zarr", help="session store")
    p.add_argument("--scenario", metavar="NAME", help="apply its unit-level selection")
    p.add_argument("--split", default="test", help="trials to use (default: test)")
    p.add_argument("--out", required=True, metavar="PNG", help="output PNG")


def run(args: argparse.Namespace) -> int:
    # imports here, not at the top: rpnt --help must not load matplotlib or torch
    from rpnt.configfile import load_yaml
    from rpnt.data.scenarios import apply_scenario_units
    from rpnt.errors import RpntError
    from rpnt.eval import figure_set, figures
    from rpnt.eval.table_files import read_table_csv
    from rpnt.parts import TablePart
    from rpnt.store import load_session

    config = load_yaml(args.config) if args.config else None
    if args.figure is None:
        # the figures' part of the config (what the workflow's digest of this rule hashes)
        config = TablePart.of(config or {}, figures=True).as_dict() if config else None
        if not args.out_dir:
            raise RpntError("rpnt figures needs --out-dir DIR (or a subcommand, see --help)")
        paths = figure_set.write_all_figures(args.out_dir, config, args.metrics,
                                          args.predictions, args.runs,
                                          attention=not args.no_attention)
        print("\n".join(str(p) for p in paths) or "no figure: nothing to draw")
        return 0
    if args.figure == "r2":
        models, scenarios, cells = read_table_csv(args.table)
        out = figures.plot_r2_bars(models, scenarios, cells, args.out)
    elif args.figure == "predictions":
        out = figures.plot_predictions(args.pred_file, args.out, trial=args.trial)
    elif args.figure == "curves":
        out = figures.plot_curves(args.run_list, args.out,
                                  groups=[figure_set.curve_group(r) for r in args.run_list])
    else:
        if args.scenario and config is None:
            raise RpntError("--scenario needs --config CFG.yaml")
        session = apply_scenario_units(load_session(args.store), config, args.scenario)
        out = figures.plot_attention(args.model, session, args.out, split=args.split)
    print(out)
    return 0
