"""The logic behind the Snakemake workflow: config resolution and job planning.

The ``Snakefile`` and ``workflow/rules/*.smk`` stay thin: they call the functions here
(imported as ``W``) to check that the ``rpnt`` they run is this checkout's
(:mod:`.checks`), to validate the config and say which part of it each rule reads
(:mod:`.config`), to know the sessions of the configured dataset before anything is
downloaded or simulated (:mod:`.datasets`), and to list the jobs of a benchmark
(:mod:`.plan`), and to size the cluster requests of its training jobs and name their
group jobs (:mod:`.resources`). Errors are :class:`RpntError` with a one-line message;
:func:`stop_on_error` turns them into Snakemake's exit without a traceback. ``rpnt config
resolve|validate`` uses the same functions outside Snakemake.

Paths follow docs/architecture.md "Paths of the workflow".
"""

from rpnt.configfile import load_yaml, merge
from rpnt.data.scenarios import pretrain_manifests
from rpnt.provenance import poyo_available
from rpnt.rows import BASELINE_MODELS as BASELINES
from rpnt.rows import pretrainings, rpnt_row, rpnt_rows
from rpnt.workflow.checks import check_checkout, check_executor, stop_on_error
from rpnt.workflow.config import (
    SCHEMA_PATH,
    check_config,
    config_json,
    config_source,
    fill_defaults,
    ingest_digest,
    job_part,
    load_configs,
    plain,
    resolve_config,
    rule_digest,
    store_tag,
    write_resolved_config,
)
from rpnt.workflow.datasets import (
    dataset_entry,
    dataset_names,
    is_simulated,
    planned_sessions,
    raw_root,
    sessions_from_asset_tsv,
    source_type,
    target_sessions,
)
from rpnt.workflow.launch import rank_launcher
from rpnt.workflow.plan import (
    Plan,
    Run,
    active_models,
    finetune_flags,
    make_plan,
    names_pattern,
    pretrain_flags,
    prune_empty_dirs,
)
from rpnt.workflow.resources import JobSize, job_size, train_group

__all__ = [
    "BASELINES",
    "SCHEMA_PATH",
    "JobSize",
    "Plan",
    "Run",
    "active_models",
    "check_checkout",
    "check_config",
    "check_executor",
    "config_json",
    "config_source",
    "dataset_entry",
    "dataset_names",
    "fill_defaults",
    "finetune_flags",
    "ingest_digest",
    "is_simulated",
    "job_part",
    "job_size",
    "load_configs",
    "load_yaml",
    "make_plan",
    "merge",
    "names_pattern",
    "plain",
    "planned_sessions",
    "poyo_available",
    "pretrain_flags",
    "pretrain_manifests",
    "pretrainings",
    "prune_empty_dirs",
    "rank_launcher",
    "raw_root",
    "resolve_config",
    "rpnt_row",
    "rpnt_rows",
    "rule_digest",
    "sessions_from_asset_tsv",
    "source_type",
    "stop_on_error",
    "store_tag",
    "target_sessions",
    "train_group",
    "write_resolved_config",
]
