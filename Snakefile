# rpnt: the RPNT benchmark workflow.
#
#   snakemake --cores 2                                   default simulated benchmark
#   snakemake --cores 2 --configfile config/tiny.yaml     the CI preset, a few minutes
#   snakemake --profile slurm                             the same as SLURM jobs (CPU)
#   snakemake --profile slurm/gpu --configfile config/benchmarks/perich_miller_2018.yaml
#
# Rules are thin `rpnt ...` commands; planning and config logic live in rpnt/workflow/.
# Cluster requests: the profiles (slurm/config.yaml) and, for training jobs, sized from
# the config (rpnt/workflow/resources.py); groups of small jobs apply on clusters only.

# config/config.yaml is the default; a --configfile on the command line replaces it
# (instead of being deep-merged into it, which would mix the two benchmarks' scenarios).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/acquire.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/ceiling.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"


onstart:
    # Before the first job, not in dry runs: a cluster profile on a host that cannot
    # submit stops here with one line instead of failing job after job; then the
    # resolved config (the --config of every command) is written if it changed.
    with W.stop_on_error():
        W.check_executor(workflow.executor_plugin.name)
        W.write_resolved_config(config, RESOLVED)


onsuccess:
    # A finished job deletes its rolling checkpoints; the folders they were in go too.
    W.prune_empty_dirs(CKPT)


rule all:
    """The configured benchmark's table and figures."""
    default_target: True
    input:
        f"{TABLE_DIR}/table.md",
        f"{TABLE_DIR}/table.csv",
        f"{TABLE_DIR}/figures",
