# Config loading, validation and the helpers every rule file uses. The planning logic
# lives in rpnt/workflow/; this file only binds it to Snakemake.

import os

import rpnt.workflow as W
from snakemake.utils import min_version

min_version("9.0")


# Everything that can be wrong before the first job stops here with one line (no Python
# traceback), as the rpnt command does: the rpnt that jobs would run is not this
# checkout's, an unknown or mistyped config key, a dataset the registry does not have, a
# scenario that selects no session (the message lists the subjects, tasks and dates that
# exist).
with W.stop_on_error():
    # Job steps on cluster nodes re-read this file: the check is the submitting run's.
    if workflow.is_main_process:
        W.check_checkout(workflow.basedir)
    SOURCE = W.config_source(
        workflow.overwrite_configfiles or workflow.configfiles,
        workflow.config_settings.config,
    )
    config.update(W.resolve_config(config, source=SOURCE))
    BENCH = config["benchmark"]
    DATASET = config["dataset"]
    REGISTRY = config["registry"]
    ENTRY = W.dataset_entry(config, SOURCE)
    SOURCE_TYPE = W.source_type(ENTRY)
    RAW = W.raw_root(ENTRY)
    SIMULATED = W.is_simulated(ENTRY)
    # Sessions known up front (simulator preset, committed asset manifest, local folder);
    # None: the assets are listed at run time by checkpoint list_assets.
    PLANNED = W.planned_sessions(ENTRY)
    PLAN = None if PLANNED is None else W.make_plan(config, PLANNED, SIMULATED, SOURCE)
    # the RPNT rows configured: the {model} values the finetune rule makes
    RPNT_ROWS = W.names_pattern(W.rpnt_rows(config))
ASSET_MANIFEST = os.path.relpath(ENTRY["source"]["manifest"]) if ENTRY["source"].get(
    "manifest") else ""
DANDI_DATASETS = W.dataset_names(REGISTRY, "dandi")

# Paths (docs/architecture.md "Paths of the workflow"). Stores are keyed by the ingest
# options that made them (bin size), so benchmarks with different bins share a dataset;
# everything a benchmark makes is keyed by its name and bin size (RUNS), so that a 25 ms
# run of a benchmark keeps its 20 ms models, tables, logs and checkpoints.
# The resolved config is written before the first job (Snakefile, onstart) and handed to
# the commands by path, not as an input: jobs depend on their own part of it (reads()).
BIN = W.store_tag(config)
RUNS = f"{BENCH}/{BIN}"
RESOLVED = f"results/{RUNS}/config.resolved.yaml"
STORES = f"resources/stores/{DATASET}/{BIN}"
STORE = f"{STORES}/{{session}}.zarr"
MANIFEST = f"resources/manifests/{DATASET}/{BIN}.tsv"
TRUTH = f"{RAW}/derivatives/ground-truth/{{session}}.npz"
# One pretraining per scenario, pretraining (objective, or objective-variant) and seed;
# one decoder per scenario, table row, target session, label budget and seed.
PRETRAIN = f"results/{RUNS}/pretrain/{{scenario}}/{{pretraining}}/seed{{seed}}"
RUN = "{scenario}/{model}/{session}/{budget}trials/seed{seed}"
MODEL = f"results/{RUNS}/models/{RUN}"
METRICS = f"results/{RUNS}/metrics/{RUN}.json"
PREDICTIONS = f"results/{RUNS}/predictions/{RUN}.npz"
CEILING = f"results/{RUNS}/metrics/{{scenario}}/ceiling/{{session}}.json"
TABLE_DIR = f"results/benchmark/{RUNS}"
# Rolling resume checkpoints: never declared outputs, so a failed or preempted job's
# retry finds them (Snakemake deletes the declared outputs of a failed job).
CKPT = f"resources/checkpoints/{RUNS}"
LOGS = f"logs/{RUNS}"
BENCHMARKS = f"benchmarks/{RUNS}"


wildcard_constraints:
    seed=r"\d+",
    scenario=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    session=r"[^/]+",
    budget=r"\d+|all",
    pretraining=r"[a-z]+(-[A-Za-z0-9_.-]+)?",
    baseline="|".join(W.BASELINES),


def logged(command):
    """The shell of a job that runs one rpnt command.

    Each attempt writes its own log, `<log dir>/attempts/<name>.<UTC time>.<SLURM job id
    or pid>.log`, and the job's declared log is a hard link to the latest one: Snakemake
    deletes the declared log before every attempt, so a retry would otherwise overwrite
    the log of the attempt it retries. The command is `exec`ed, so that the signal SLURM
    sends before a time limit reaches rpnt itself (training checkpoints on it).
    """
    return (
        "a=$(dirname {log})/attempts/$(basename {log} .log)"
        ".$(date -u +%Y%m%dT%H%M%SZ).${{SLURM_JOB_ID:-pid$$}}.log; "
        'mkdir -p "$(dirname "$a")"; '
        'echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname),'
        ' SLURM job ${{SLURM_JOB_ID:-none}} ===" > "$a"; '
        'ln -f "$a" {log}; '
        "export OMP_NUM_THREADS={threads}; "
        f"exec {command} >> {{log}} 2>&1"
    )


def reads(rule):
    """params value: a digest of the config part the rule's command reads
    (rpnt/parts.py: the job reads that part and nothing else of the config), so that a config change reruns only the jobs whose part
    changed. (The resolved config file is no input: as one, or as an ancient() input made
    by a rule, any change would rerun every job, since Snakemake skips the params check
    of jobs downstream of a job it reruns.)"""
    return lambda wildcards: W.rule_digest(config, rule, **dict(wildcards.items()))


def sessions():
    """Session records of the dataset (after checkpoint list_assets when unplanned)."""
    if PLANNED is not None:
        return PLANNED
    listing = checkpoints.list_assets.get(dataset=DATASET).output[0]
    return W.sessions_from_asset_tsv(ENTRY, listing)


_PLANS = {}


def plan():
    """The benchmark plan (rpnt.workflow.Plan); for a dataset listed at run time, computed
    once the checkpoint has written the asset list."""
    if PLAN is not None:
        return PLAN
    recs = sessions()
    key = tuple(r["session"] for r in recs)
    if key not in _PLANS:
        with W.stop_on_error():
            _PLANS[key] = W.make_plan(config, recs, SIMULATED, SOURCE)
    return _PLANS[key]


def raw_nwb(wildcards):
    return f"{RAW}/{plan().asset_path(wildcards.session)}"


def store(wildcards):
    return STORE.format(session=wildcards.session)


def all_stores(wildcards):
    return [STORE.format(session=s) for s in plan().session_ids]


def all_metrics(wildcards):
    p = plan()
    out = [METRICS.format(**run_wildcards(r)) for r in p.runs()]
    out += [CEILING.format(scenario=sc, session=s) for sc, s in p.ceiling_runs()]
    return out


def all_predictions(wildcards):
    return [PREDICTIONS.format(**run_wildcards(r)) for r in plan().runs()]


def all_curves(wildcards):
    """Training logs (metrics.jsonl) of every trained decoder and pretrained encoder."""
    p = plan()
    out = [MODEL.format(**run_wildcards(r)) for r in p.runs() if r.model != "wiener"]
    return out + all_pretrained(wildcards)


def all_pretrained(wildcards):
    """Every pretrained encoder the RPNT rows start from (their probes go in the table)."""
    return [PRETRAIN.format(scenario=sc, pretraining=k, seed=s)
            for sc, k, s in plan().pretrain_runs()]


def run_wildcards(run):
    return dict(scenario=run.scenario, model=run.model, session=run.session,
                budget=run.budget, seed=run.seed)


def pretrained(wildcards):
    """The pretrained encoder an RPNT row starts from (none for scratch)."""
    pre = W.rpnt_row(config, wildcards.model).pretraining
    if pre is None:
        return []
    return PRETRAIN.format(scenario=wildcards.scenario, pretraining=pre.name,
                           seed=wildcards.seed)


def finetune_flags(wildcards, input):
    """--mode, --init (pretrained rows), --variant (variant rows) of an RPNT row."""
    return W.finetune_flags(config, wildcards.model, input.get("init"))


def pretrain_flags(wildcards):
    """--objective (and --variant) of a pretraining."""
    return W.pretrain_flags(config, wildcards.pretraining)


def raw_root_of(wildcards, output):
    """The dataset folder, from the simulator's first output (lint: no hard-coded prefix)."""
    return output.nwb[0][: -len(PLANNED[0]["asset_path"]) - 1]


# SLURM requests and group jobs (docs/workflow.md "Jobs per submission" and "How big a
# request is"). Both matter only to cluster executors: a local run ignores groups, and
# mem_mb/runtime limit nothing without --resources.
def sized(rule, key):
    """resources value: mem_mb or runtime of a training job from the config's model size,
    steps, batch size and sessions, growing with the attempt (rpnt.workflow.resources);
    a profile's set-resources for the rule replaces it."""

    def value(wildcards, input, attempt):
        sessions = len(input.stores) if rule == "pretrain" else 1
        model = wildcards.get("model") or wildcards.get("baseline")
        size = W.job_size(config, rule, attempt, sessions, model, wildcards.get("pretraining"))
        return getattr(size, key)

    return value


def train_group(wildcards):
    """group of a finetuning job: "scratch" (needs only its store) or "finetune" (waits
    for its pretraining), so that a group never holds both."""
    return W.train_group(config, wildcards.model)
