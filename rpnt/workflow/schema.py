"""The workflow config's JSON schema, generated from the config dataclasses.

Nothing here is written twice: every training, model and peer section is the schema of
its dataclass (:func:`rpnt.fields.section_schema`: type, constraints, ``#:`` description
and default of each field), the planning keys are the fields of :class:`BenchmarkKeys`,
and the scenario selectors are built from the keys :mod:`rpnt.data.scenarios` reads.
``rpnt config schema`` prints the result. The workflow reads it from
``rpnt/schemas/config.schema.yaml``, which ``rpnt config schema --out`` writes and
``tests/test_config_constraints.py`` requires to equal what this module generates: the
file is never edited by hand, and reading it keeps torch out of every Snakemake start.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from typing import Any

import yaml

from rpnt.data.scenarios import SESSION_KEYS, TASK_CODES, UNIT_KEYS
from rpnt.decoders.gru import GRUParams
from rpnt.decoders.ndt import NDTParams
from rpnt.decoders.poyo import POYOParams
from rpnt.fields import section_schema, setting
from rpnt.model.config import PRESETS, RPNTConfig
from rpnt.registry.naming import FALCON_SPLITS
from rpnt.rows import ALL
from rpnt.train.config import FinetuneConfig, LabelsConfig, PretrainConfig
from rpnt.train.peers import DEFAULT_TRAIN, NDTMasking, WienerConfig
from rpnt.train.trainer import TrainConfig

_NAME = "^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_BUDGET = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "const": ALL}]}
_NAMES = {"description": "one name or a list of names (a list is ORed)",
          "oneOf": [{"type": "string"},
                    {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
_DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


def _selector() -> dict[str, Any]:
    """A scenario selector: the session- and unit-level keys scenarios.py reads."""
    def one_or_list(choices: list[str]) -> dict[str, Any]:
        return {"oneOf": [{"type": "string", "enum": choices},
                          {"type": "array", "minItems": 1, "items": {"type": "string",
                                                                     "enum": choices}}]}

    # a FALCON file split, or every split of one side ("held_out": held_out_calib)
    splits = sorted({*FALCON_SPLITS, *(s.split("_")[0] + "_" + s.split("_")[1]
                                       for s in FALCON_SPLITS)})
    special = {"task": one_or_list(sorted(set(TASK_CODES.values()))),
               "split": one_or_list(splits), "date_from": _DATE, "date_to": _DATE}
    props = {k: special.get(k, _NAMES) for k in (*SESSION_KEYS, *UNIT_KEYS)}
    return {"description": f"Session-level keys (ANDed; a list is ORed): "
                           f"{', '.join(SESSION_KEYS)} (dates inclusive, YYYY-MM-DD; split: "
                           f"a FALCON file split, or held_in / held_out for either side). "
                           f"Unit-level keys: {', '.join(UNIT_KEYS)}.",
            "type": "object", "additionalProperties": False,
            "properties": copy.deepcopy(props)}


@dataclass
class ScenarioConfig:
    """A scenario: the sessions decoders are finetuned and tested on, and what pretraining
    must never see (rpnt.data.scenarios)."""

    #: the sessions decoders are finetuned and tested on
    target: dict[str, Any] = setting(default_factory=dict, schema={"$ref": "#/$defs/selector"})
    #: what pretraining must never see (defaults to the target)
    holdout: dict[str, Any] = setting(default_factory=dict, derived="the target",
                                      schema={"$ref": "#/$defs/selector"})
    #: the paper's looser variant: pretraining also sees the target sessions' training
    #: trials
    pretrain_on_target_train: bool = setting(False)
    #: pretrain on this many of the allowed non-target sessions, drawn with the
    #: pretraining's seed (nested in n for one seed): the scaling benchmark
    n_pretrain_sessions: int = setting(1, minimum=1, derived="every allowed session")
    #: manifests (rpnt manifest) of other datasets whose sessions join this scenario's
    #: pretraining corpus, under the same held-out rules; same bin size
    pretrain_manifests: list[str] = setting(default_factory=list, derived="none",
                                            items={"minLength": 1})


def _scenario() -> dict[str, Any]:
    sch = section_schema(ScenarioConfig)
    sch.pop("default")
    sch["properties"]["target"].pop("default")
    sch["required"] = ["target"]
    return sch


@dataclass
class FiguresConfig:
    """figures of the benchmark (rpnt figures)"""

    #: the model whose predicted vs true velocity (and attention) is drawn; unset: the
    #: last RPNT row of models
    example_model: str = setting("", derived="the last RPNT row of models")


@dataclass
class BenchmarkKeys:
    """The planning keys of a benchmark: which jobs exist and where their outputs go."""

    #: name of this benchmark run: outputs go to results/<benchmark>/bin<B>ms/ and the table to
    #: results/benchmark/<benchmark>/bin<B>ms/
    benchmark: str = setting("", schema={"type": "string", "pattern": _NAME})
    #: a dataset name of the registry (config/datasets.yaml)
    dataset: str = setting("", schema={"type": "string"})
    registry: str = setting("config/datasets.yaml")  #: the dataset registry file
    #: training seeds; every model is trained once per seed and target session
    seeds: list[int] = setting(default_factory=lambda: [0, 1, 2], min_items=1,
                               items={"minimum": 0})
    bin_ms: int = setting(20, minimum=1)  #: bin width of the Zarr stores (ms)
    #: table rows to train and evaluate: the peers (wiener, gru, ndt, poyo; poyo is
    #: skipped, and its row marked "not installed", when torch-brain is missing),
    #: rpnt_scratch, rpnt_<objective>_<mode> (objective ssl or joint: how the model was
    #: pretrained; mode frozen, full, staged or labelfree: how it is adapted to the
    #: target session), and the names of variants
    models: list[str] = setting(
        default_factory=lambda: ["wiener", "gru", "ndt", "poyo", "rpnt_scratch",
                                 "rpnt_ssl_full", "rpnt_joint_full", "rpnt_joint_staged"],
        min_items=1, items={"pattern": _NAME})
    #: labelled training trials of each target session a decoder may use: numbers of
    #: trials (drawn once per seed and session, stratified by condition, nested, the same
    #: trials for every decoder) and/or all (every training trial). A job dimension like
    #: seeds: every decoder is trained once per budget.
    budgets: list[Any] = setting(default_factory=lambda: [ALL], schema={
        "type": "array", "items": _BUDGET, "minItems": 1})
    #: rows trained at some of the budgets only (row -> budgets, a subset of budgets), to
    #: fit a benchmark's compute; the table says "not run" in the other columns
    model_budgets: dict[str, Any] = setting(default_factory=dict, schema={
        "type": "object", "additionalProperties": {"type": "array", "minItems": 1,
                                                   "items": _BUDGET}})
    #: extra table rows that differ from a built-in RPNT row only in model settings:
    #: name -> {row: the built-in row (rpnt_scratch or rpnt_<objective>_<mode>), model:
    #: overrides of the model section}. Each distinct model config is pretrained once.
    variants: dict[str, Any] = setting(default_factory=dict, schema={
        "type": "object", "propertyNames": {"pattern": _NAME},
        "additionalProperties": {
            "type": "object", "additionalProperties": False, "required": ["row", "model"],
            "properties": {"row": {"type": "string"},
                           "model": {"type": "object", "description": "keys of the model "
                                     "section (checked against it)"}}}})
    #: the R² a table cell pools: mean (the plain mean over the covariates, the peers'
    #: metric) or variance_weighted (FALCON's metric: the covariates' R² weighted by their
    #: variance, from stores whose adapter records it)
    metric: str = setting("mean", enum=("mean", "variance_weighted"))
    #: rows trained in some of the scenarios only (row -> scenario names), e.g. the rows
    #: that do not depend on the pretraining corpus in the scaling benchmark; the table
    #: says "not run" in the other scenarios
    model_scenarios: dict[str, Any] = setting(default_factory=dict, schema={
        "type": "object", "additionalProperties": {"type": "array", "minItems": 1,
                                                   "items": {"type": "string",
                                                             "minLength": 1}}})
    #: add the noise-ceiling row (simulated datasets only; ignored otherwise)
    ceiling: bool = setting(True)
    #: scenario name -> target (and holdout) selectors (docs/architecture.md)
    scenarios: dict[str, Any] = setting(default_factory=dict, schema={
        "type": "object", "minProperties": 1, "propertyNames": {
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$"},
        "additionalProperties": {"$ref": "#/$defs/scenario"}})


#: the keys a config must give (no default makes sense for them)
REQUIRED = ("benchmark", "dataset", "scenarios")
#: RPNTConfig fields whose value, when unset, comes from elsewhere than a default
_MODEL_DERIVED = {"d_model": "the size preset", "n_layers": "the size preset",
                  "n_spatial_layers": "the size preset", "n_heads": "the size preset",
                  "n_readins": "one per site of the sessions trained on"}


def _train(default: TrainConfig, what: str) -> dict[str, Any]:
    return section_schema(TrainConfig, default, f"optimisation settings of {what} "
                          "(rpnt.train.trainer.TrainConfig)")


def _model() -> dict[str, Any]:
    """The model section. Its field defaults are stated, not filled: a variant's model
    overrides merge into the section key by key, so a filled dict default (rope_bases)
    would change what a variant's partial mapping means; the command fills them."""
    sch = section_schema(RPNTConfig, description="the RPNT model "
                         "(rpnt.model.config.RPNTConfig)")
    props = sch["properties"]
    for name, prop in props.items():
        text = prop.get("description", name)
        if name in _MODEL_DERIVED:
            prop["description"] = f"{text} (unset: {_MODEL_DERIVED[name]})"
        else:
            prop["description"] = f"{text} (unset: {json.dumps(prop['default'])})"
        prop.pop("default", None)
    props["size"] = {"description": "size preset; d_model/n_layers/n_spatial_layers/"
                     "n_heads override it", "type": "string", "enum": list(PRESETS),
                     "default": "small"}
    return sch


def _peers() -> dict[str, Any]:
    def train(model: str) -> dict[str, Any]:
        return _train(TrainConfig(**DEFAULT_TRAIN[model]), f"the {model} peer")

    masking = section_schema(NDTMasking)
    # not filled: a mask_ratio beside NDT's architecture turns its pretraining on
    masking["properties"]["mask_ratio"].pop("default")
    ndt_pretrain = section_schema(TrainConfig, TrainConfig(**DEFAULT_TRAIN["ndt"]),
                                  "NDT's masked-modelling pretraining: TrainConfig fields "
                                  "plus mask_ratio")
    ndt_pretrain["properties"].update(masking["properties"])
    ndt_pretrain.pop("default")
    sections = {
        "wiener": section_schema(WienerConfig),
        "gru": section_schema(GRUParams, nested={"train": train("gru")}),
        "ndt": section_schema(NDTParams, nested={
            "train": train("ndt"), **masking["properties"],
            "pretrain": {"description": "masked modelling on the target session's training "
                         "bins before decoding (null: none)",
                         "oneOf": [{"type": "null"}, ndt_pretrain]}}),
        "poyo": section_schema(POYOParams, nested={"train": train("poyo")}),
    }
    return {"description": "the peers (rpnt baseline; rpnt.train.peers)", "type": "object",
            "additionalProperties": False, "default": {}, "properties": sections}


@functools.cache
def _schema() -> dict[str, Any]:
    top = section_schema(BenchmarkKeys)
    props = top["properties"]
    for key in REQUIRED:
        props[key].pop("default", None)
    props.update({
        "labels": section_schema(LabelsConfig),
        "model": _model(),
        "pretrain": section_schema(PretrainConfig, nested={
            "train": _train(PretrainConfig().train, "pretraining")}),
        "finetune": section_schema(FinetuneConfig, nested={
            "train": _train(FinetuneConfig().train, "finetuning")}),
        "baselines": _peers(),
        "figures": section_schema(FiguresConfig),
    })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rpnt workflow config",
        "description": "The config of one benchmark run (config/config.yaml, "
                       "config/tiny.yaml, config/benchmarks/*.yaml), generated from rpnt's "
                       "config dataclasses. Every key is checked; unknown keys are errors. "
                       "Defaults are filled in and the result is written to "
                       "results/<benchmark>/bin<B>ms/config.resolved.yaml, the --config of every "
                       "training and evaluation command. Compute resources live in the "
                       "Snakemake profiles.",
        "type": "object", "additionalProperties": False, "required": list(REQUIRED),
        "$defs": {"scenario": _scenario(), "selector": _selector()},
        "properties": props,
    }


def config_schema() -> dict[str, Any]:
    """The workflow config's JSON schema (a fresh copy)."""
    return copy.deepcopy(_schema())


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # shared fragments written out in full
        return True


def schema_text() -> str:
    """The schema as the YAML of ``rpnt/schemas/config.schema.yaml``."""
    return ("# Generated by `rpnt config schema --out rpnt/schemas/config.schema.yaml` from "
            "rpnt's\n# config dataclasses (rpnt/workflow/schema.py); do not edit by hand.\n"
            + yaml.dump(_schema(), Dumper=_Dumper, sort_keys=False, width=92))
