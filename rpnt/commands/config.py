"""``rpnt config``: validate a workflow config, write it with every default filled, or say
where the rpnt package is imported from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "config"
HELP = ("validate a workflow config, write it resolved (every default filled), or print "
        "its JSON schema")
DESCRIPTION = """\
The workflow's config files (config/config.yaml, config/tiny.yaml,
config/benchmarks/*.yaml) are checked against the config's JSON schema, which rpnt
generates from its config dataclasses (every key with its type, range, default and
description; `rpnt config schema` prints it): unknown keys, wrong types, a dataset the
registry does not have and scenarios that select nothing (where the dataset's sessions
are known before any download) are errors.

  rpnt config validate config/tiny.yaml
  rpnt config validate config/tiny.yaml --plan     # also the jobs it plans
  rpnt config resolve config/tiny.yaml --out resolved.yaml
  rpnt config resolve --json '{"benchmark": ...}' --out resolved.yaml
  rpnt config where        # the folder the rpnt package is imported from
  rpnt config schema --out config.schema.yaml   # for an editor's YAML completion

Several files are merged left to right (later ones override, mappings merged key by key).
`resolve` writes the config with every default filled (what the workflow writes to
results/<benchmark>/bin<B>ms/config.resolved.yaml before its first job and hands to every
training and evaluation command as --config); without --out it prints it. `where`
prints the rpnt package folder: the workflow runs only when the `rpnt` command on PATH
imports rpnt from the checkout whose Snakefile is running.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("validate", "resolve", "schema", "where"),
                        help="validate: check only; resolve: also write the resolved config; "
                             "schema: print (or --out) the config's JSON schema; where: "
                             "print the folder rpnt is imported from")
    parser.add_argument("files", nargs="*", metavar="CONFIG.yaml",
                        help="config files, merged left to right")
    parser.add_argument("--json", metavar="JSON", default=None,
                        help="a config as a JSON string, merged after the files")
    parser.add_argument("--schema", metavar="SCHEMA.yaml", default=None,
                        help="schema to validate against (default: the one generated from "
                             "rpnt's config dataclasses)")
    parser.add_argument("--out", metavar="FILE.yaml", default=None,
                        help="where `resolve` writes the resolved config, or `schema` the "
                             "schema (default: stdout)")
    parser.add_argument("--plan", action="store_true",
                        help="also plan the benchmark (dataset sessions, scenario targets) "
                             "and print the number of jobs per stage")


def run(args: argparse.Namespace) -> int:
    if args.action == "where":  # before the imports below: every workflow start runs it
        import rpnt

        print(Path(rpnt.__file__).resolve().parent)
        return 0
    # imports here, not at the top: rpnt --help must not load pandas or snakemake
    import yaml

    from rpnt import workflow as W
    from rpnt.atomic import write_text
    from rpnt.errors import RpntError

    if args.action == "schema":
        from rpnt.workflow.schema import schema_text  # here: it imports torch (dataclasses)

        if args.out:
            write_text(args.out, schema_text())
        else:
            sys.stdout.write(schema_text())
        return 0

    if not args.files and args.json is None:
        raise RpntError("give at least one CONFIG.yaml or --json")
    cfg = W.load_configs(args.files)
    if args.json is not None:
        try:
            extra = json.loads(args.json)
        except json.JSONDecodeError as exc:
            raise RpntError(f"--json: not valid JSON ({exc})") from exc
        cfg = W.merge(cfg, extra)
    source = ", ".join(args.files) or "--json"
    resolved = W.resolve_config(cfg, args.schema, source=source)
    # The dataset must be in the registry and, where its sessions are known before any
    # download, every scenario must select some: checked for validate and resolve alike.
    entry = W.dataset_entry(resolved, source)
    sessions = W.planned_sessions(entry)
    if sessions is None and args.plan:
        raise RpntError(f"dataset {resolved['dataset']} has no committed asset manifest; "
                        "its sessions are listed at run time")
    plan = None if sessions is None else W.make_plan(resolved, sessions,
                                                     W.is_simulated(entry), source)
    if args.plan and plan is not None:
        for name, targets in plan.targets.items():
            print(f"scenario {name}: {len(targets)} target session(s): {', '.join(targets)}")
        print(f"sessions: {len(plan.sessions)}; models: {', '.join(plan.models)}; "
              f"seeds: {plan.seeds}; trained decoders: {len(plan.runs())}; "
              f"pretrained encoders: {len(plan.pretrain_runs())}", file=sys.stdout)
    if args.action == "validate":
        print(f"{source}: valid")
        return 0
    if args.out:
        W.write_resolved_config(resolved, args.out)
    else:
        sys.stdout.write(yaml.safe_dump(W.plain(resolved), sort_keys=True))
    return 0
