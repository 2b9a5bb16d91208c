"""One config source: the workflow's JSON schema is generated from the config dataclasses.

Each field of a config dataclass declares its type, range and choices once
(:func:`rpnt.fields.setting`) and its description in its ``#:`` comment; the commands
check the constraints when the dataclass is built, and :mod:`rpnt.workflow.schema` writes
the schema from the same declarations. Here: the generated schema states every field as
declared, with the default each job would use (per-section training defaults included);
filling those defaults into a shipped config changes no value any job reads; every field
is described; and each declared bound is enforced by both the schema and the dataclass.
"""

import dataclasses
from pathlib import Path

import jsonschema
import pytest

from rpnt import workflow as W
from rpnt.configfile import load_yaml
from rpnt.decoders.gru import GRUParams
from rpnt.decoders.ndt import NDTParams
from rpnt.decoders.poyo import POYOParams
from rpnt.errors import RpntError
from rpnt.fields import config_fields, field_docs, setting
from rpnt.model.config import RPNTConfig
from rpnt.train import peers
from rpnt.train.config import (
    FinetuneConfig,
    LabelsConfig,
    PretrainConfig,
    finetune_config,
    labels_config,
    model_config,
    pretrain_config,
)
from rpnt.train.peers import NDTMasking, WienerConfig
from rpnt.train.trainer import TrainConfig
from rpnt.workflow.schema import BenchmarkKeys, FiguresConfig, config_schema, schema_text

REPO = Path(__file__).resolve().parents[1]
SCHEMA = config_schema()
TOP = SCHEMA["properties"]
BASE = TOP["baselines"]["properties"]
CONFIGS = ["config/config.yaml", "config/tiny.yaml",
           *sorted(str(p.relative_to(REPO)) for p in (REPO / "config/benchmarks").glob("*.yaml"))]

#: (schema node, dataclasses whose fields it holds, the instance holding its defaults,
#:  keys that are not dataclass fields)
SECTIONS = {
    "pretrain.train": (TOP["pretrain"]["properties"]["train"], [TrainConfig],
                       PretrainConfig().train, set()),
    "finetune.train": (TOP["finetune"]["properties"]["train"], [TrainConfig],
                       FinetuneConfig().train, set()),
    "model": (TOP["model"], [RPNTConfig], None, {"size"}),
    "pretrain": (TOP["pretrain"], [PretrainConfig], PretrainConfig(), set()),
    "finetune": (TOP["finetune"], [FinetuneConfig], FinetuneConfig(), set()),
    "labels": (TOP["labels"], [LabelsConfig], LabelsConfig(), set()),
    "baselines.wiener": (BASE["wiener"], [WienerConfig], WienerConfig(), set()),
    "baselines.gru": (BASE["gru"], [GRUParams], GRUParams(), {"train"}),
    "baselines.gru.train": (BASE["gru"]["properties"]["train"], [TrainConfig],
                            TrainConfig(**peers.DEFAULT_TRAIN["gru"]), set()),
    "baselines.ndt": (BASE["ndt"], [NDTParams, NDTMasking], NDTParams(), {"train",
                                                                          "pretrain"}),
    "baselines.poyo": (BASE["poyo"], [POYOParams], POYOParams(), {"train"}),
    "figures": (TOP["figures"], [FiguresConfig], None, set()),
}
ALL_CLASSES = [TrainConfig, RPNTConfig, PretrainConfig, FinetuneConfig, LabelsConfig,
               WienerConfig, NDTMasking, GRUParams, NDTParams, POYOParams, BenchmarkKeys,
               FiguresConfig]
ANNOTATIONS = {"description", "default"}


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("section", list(SECTIONS))
def test_schema_states_each_field_as_its_dataclass_declares(section):
    node, classes, defaults, extra = SECTIONS[section]
    props = node["properties"]
    declared = {}
    for cls in classes:
        declared.update(config_fields(cls))
    assert node["additionalProperties"] is False, section
    assert set(props) == set(declared) | extra, section  # each name, no other
    for name, fragment in declared.items():
        if fragment is None:  # a nested TrainConfig: its own SECTIONS entry
            continue
        stated = {k: v for k, v in props[name].items() if k not in ANNOTATIONS}
        assert stated == fragment, f"{section}.{name}: schema {stated} != dataclass {fragment}"
        if "default" in props[name]:
            assert defaults is not None, f"{section}.{name}: a default the job does not use"
            assert props[name]["default"] == _jsonable(getattr(defaults, name)), \
                f"{section}.{name} default"


def test_shipped_schema_file_is_the_generated_one():
    """The workflow reads rpnt/schemas/config.schema.yaml: it must be what the dataclasses
    generate (regenerate it with `rpnt config schema --out rpnt/schemas/config.schema.yaml`)."""
    assert W.SCHEMA_PATH.read_text() == schema_text(), (
        "rpnt/schemas/config.schema.yaml is stale: run `rpnt config schema --out "
        "rpnt/schemas/config.schema.yaml`")
    assert load_yaml(W.SCHEMA_PATH) == SCHEMA


def test_size_preset_fields_state_no_default():
    """A filled d_model would override the size preset: the schema must not state one."""
    for name in ("d_model", "n_layers", "n_spatial_layers", "n_heads"):
        assert "default" not in TOP["model"]["properties"][name]
        assert "size preset" in TOP["model"]["properties"][name]["description"]
    assert "default" not in BASE["ndt"]["properties"]["mask_ratio"]  # would turn on pretraining


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_every_config_field_is_described(cls):
    docs = field_docs(cls)
    missing = [n for n in config_fields(cls) if not docs.get(n)]
    assert not missing, f"{cls.__name__}: add a #: comment to {missing}"


def test_field_docs_reads_comments_above_and_after_a_field():
    @dataclasses.dataclass
    class Toy:
        #: first line
        #: second line
        a: int = setting(1)
        b: int = setting(2)  #: trailing
        # an ordinary comment is not documentation
        c: int = setting(3)

    assert field_docs(Toy) == {"a": "first line second line", "b": "trailing"}


def _job_view(cfg):
    """Everything a job builds from a config (sections, model of every variant, peers)."""
    view = {"pretrain": pretrain_config(cfg), "finetune": finetune_config(cfg),
            "labels": labels_config(cfg)}
    for variant in [None, *sorted(cfg.get("variants") or {})]:
        view[f"model {variant}"] = model_config(cfg, variant=variant)
    for name, params_cls in (("gru", GRUParams), ("ndt", NDTParams), ("poyo", POYOParams)):
        section = (cfg.get("baselines") or {}).get(name)
        params, train, pretrain = peers.split_section(name, section, params_cls)
        view[name] = (params, peers.train_config(name, train, 0, name), pretrain)
    view["wiener"] = WienerConfig(**((cfg.get("baselines") or {}).get("wiener") or {}))
    return view


@pytest.mark.parametrize("path", CONFIGS)
def test_filling_defaults_changes_no_value_a_job_reads(path):
    cfg = load_yaml(REPO / path)
    resolved = W.resolve_config(cfg, source=path)
    assert resolved != cfg  # defaults were filled
    assert _job_view(resolved) == _job_view(cfg)


def test_schema_refuses_what_the_dataclass_refuses():
    base = {"benchmark": "b", "dataset": "d", "scenarios": {"s": {"target": {"subject": "M"}}}}
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert not list(validator.iter_errors(base))
    for path, bad in ((("pretrain", "train", "steps"), 0), (("finetune", "stage1_fraction"), 1),
                      (("model", "readin"), "no-such"), (("baselines", "gru", "hidden"), 0),
                      (("seeds",), [-1]), (("budgets",), ["some"])):
        cfg = dict(base)
        node = cfg
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = bad
        with pytest.raises(RpntError, match=path[-1]):
            W.resolve_config(cfg)


def _violations(fragment):
    """Values just outside each bound of a field's constraints."""
    if "minimum" in fragment:
        yield fragment["minimum"] - 1
    if "exclusiveMinimum" in fragment:
        yield fragment["exclusiveMinimum"]
    if "maximum" in fragment:
        yield fragment["maximum"] + 1
    if "exclusiveMaximum" in fragment:
        yield fragment["exclusiveMaximum"]
    if "enum" in fragment:
        yield "no-such-choice"
    if fragment.get("type") == "integer":
        yield "3"
    if fragment.get("minItems"):
        yield []


@pytest.mark.parametrize("cls", [TrainConfig, RPNTConfig, PretrainConfig, FinetuneConfig,
                                 WienerConfig, NDTMasking, GRUParams, NDTParams, POYOParams])
def test_dataclasses_enforce_what_they_declare(cls):
    checked = 0
    for name, fragment in config_fields(cls).items():
        for bad in _violations(fragment or {}):
            with pytest.raises(RpntError, match=name):
                cls(**{name: bad})
            checked += 1
    assert checked > 0


def test_scenario_and_selector_schemas_hold_the_keys_scenarios_read():
    from rpnt.data.scenarios import SCENARIO_KEYS, SESSION_KEYS, UNIT_KEYS

    assert set(SCHEMA["$defs"]["scenario"]["properties"]) == set(SCENARIO_KEYS)
    assert set(SCHEMA["$defs"]["selector"]["properties"]) == {*SESSION_KEYS, *UNIT_KEYS}
