# Config loading, validation and the helpers every rule file uses. The planning logic
# lives in rpnt/workflow.py; this file only binds it to Snakemake.

import os

import rpnt.workflow as W
from snakemake.utils import min_version, validate

min_version("9.0")


# Validate against the schema (defaults filled, unknown keys rejected), then the checks a
# schema cannot express. A bad config stops here with one line naming the key.
validate(config, "../schemas/config.schema.yaml")
W.check_config(config)

BENCH = config["benchmark"]
DATASET = config["dataset"]
REGISTRY = config["registry"]
ENTRY = W.dataset_entry(config)
SOURCE = W.source_type(ENTRY)
RAW = W.raw_root(ENTRY)
SIMULATED = W.is_simulated(ENTRY)
# Sessions known up front (simulator preset, committed asset manifest, local folder);
# None: the assets are listed at run time by checkpoint list_assets.
PLANNED = W.planned_sessions(ENTRY)
ASSET_MANIFEST = ENTRY["source"].get("manifest", "")
DANDI_DATASETS = W.dataset_names(REGISTRY, "dandi")

# Paths (docs/architecture.md "Paths of the workflow").
RESOLVED = f"results/{BENCH}/config.resolved.yaml"
STORE = f"resources/stores/{DATASET}/{{session}}.zarr"
MANIFEST = f"resources/manifests/{DATASET}.tsv"
TRUTH = f"{RAW}/derivatives/ground-truth/{{session}}.npz"
PRETRAIN = f"results/{BENCH}/pretrain/{{scenario}}/seed{{seed}}"
MODEL = f"results/{BENCH}/models/{{scenario}}/{{model}}/{{session}}/seed{{seed}}"
METRICS = f"results/{BENCH}/metrics/{{scenario}}/{{model}}/{{session}}/seed{{seed}}.json"
PREDICTIONS = f"results/{BENCH}/predictions/{{scenario}}/{{model}}/{{session}}/seed{{seed}}.npz"
CEILING = f"results/{BENCH}/metrics/{{scenario}}/ceiling/{{session}}.json"
TABLE_DIR = f"results/benchmark/{BENCH}"
# Rolling resume checkpoints: never declared outputs, so a failed or preempted job's
# retry finds them (Snakemake deletes the declared outputs of a failed job).
CKPT = f"resources/checkpoints/{BENCH}"
LOGS = f"logs/{BENCH}"
BENCHMARKS = f"benchmarks/{BENCH}"


wildcard_constraints:
    seed=r"\d+",
    scenario=r"[A-Za-z0-9][A-Za-z0-9_-]*",
    session=r"[^/]+",
    mode="|".join(W.FINETUNE_MODES),
    baseline="|".join(W.BASELINES),
    model="|".join(W.MODELS),


def sessions():
    """Session records of the dataset (after checkpoint list_assets when unplanned)."""
    if PLANNED is not None:
        return PLANNED
    listing = checkpoints.list_assets.get(dataset=DATASET).output[0]
    return W.sessions_from_asset_tsv(ENTRY, listing)


_PLANS = {}


def plan():
    """The benchmark plan (rpnt.workflow.Plan), computed once per session list."""
    recs = sessions()
    key = tuple(r["session"] for r in recs)
    if key not in _PLANS:
        _PLANS[key] = W.make_plan(config, recs, SIMULATED)
    return _PLANS[key]


def raw_nwb(wildcards):
    return f"{RAW}/{plan().asset_path(wildcards.session)}"


def store(wildcards):
    return STORE.format(session=wildcards.session)


def all_stores(wildcards):
    return [STORE.format(session=s) for s in plan().session_ids]


def all_metrics(wildcards):
    p = plan()
    out = [METRICS.format(scenario=r.scenario, model=r.model, session=r.session, seed=r.seed)
           for r in p.runs()]
    out += [CEILING.format(scenario=sc, session=s) for sc, s in p.ceiling_runs()]
    return out


def all_predictions(wildcards):
    return [PREDICTIONS.format(scenario=r.scenario, model=r.model, session=r.session,
                               seed=r.seed) for r in plan().runs()]


def all_curves(wildcards):
    """Training logs (metrics.jsonl) of every trained decoder and pretrained encoder."""
    p = plan()
    out = [f"{MODEL.format(scenario=r.scenario, model=r.model, session=r.session, seed=r.seed)}"
           for r in p.runs() if r.model != "wiener"]
    out += [PRETRAIN.format(scenario=sc, seed=s) for sc, s in p.pretrain_runs()]
    return out



def pretrained(wildcards):
    """The pretrained encoder a finetune mode starts from (none for scratch)."""
    if wildcards.mode == "scratch":
        return []
    return PRETRAIN.format(scenario=wildcards.scenario, seed=wildcards.seed)


def finetune_flags(wildcards, input):
    """--init for pretrained modes, --fraction for few-shot."""
    flags = []
    if wildcards.mode != "scratch":
        flags.append(f"--init {input.init}")
    if wildcards.mode == "fewshot":
        flags.append(f"--fraction {config['finetune']['fewshot_fraction']}")
    return " ".join(flags)


def raw_root_of(wildcards, output):
    """The dataset folder, from the simulator's first output (lint: no hard-coded prefix)."""
    return output.nwb[0][: -len(PLANNED[0]["asset_path"]) - 1]
