"""The workflow's JSON schema and the config dataclasses state the same constraints.

Each field of a config dataclass declares its type, range and choices once
(:func:`rpnt.fields.setting`); the commands check them when the dataclass is built.
Here every training / model / peer section of ``rpnt/schemas/config.schema.yaml``
must say exactly that, field by field (type, minimum / maximum, exclusive bounds, enum,
item constraints, list lengths; descriptions aside), and every default the schema
fills must be the dataclass default. Then each declared bound is shown to be enforced.
"""

import dataclasses
from importlib import resources

import pytest
import yaml

from rpnt.decoders.gru import GRUParams
from rpnt.decoders.ndt import NDTParams
from rpnt.decoders.poyo import POYOParams
from rpnt.errors import RpntError
from rpnt.fields import config_fields
from rpnt.model.config import RPNTConfig
from rpnt.train.config import FinetuneConfig, LabelsConfig, PretrainConfig
from rpnt.train.peers import NDTMasking, WienerConfig
from rpnt.train.trainer import TrainConfig

SCHEMA = yaml.safe_load((resources.files("rpnt") / "schemas" / "config.schema.yaml")
                        .read_text())
TOP = SCHEMA["properties"]
BASE = TOP["baselines"]["properties"]
TRAIN_REF = {"$ref": "#/$defs/train"}

#: (schema node, dataclasses whose fields it holds, keys that are not dataclass fields)
SECTIONS = {
    "train": (SCHEMA["$defs"]["train"], [TrainConfig], {}),
    "ndt_pretrain": (SCHEMA["$defs"]["ndt_pretrain"], [TrainConfig, NDTMasking], {}),
    "model": (TOP["model"], [RPNTConfig], {"size"}),
    "pretrain": (TOP["pretrain"], [PretrainConfig], {}),
    "finetune": (TOP["finetune"], [FinetuneConfig], {}),
    "labels": (TOP["labels"], [LabelsConfig], {}),
    "baselines.wiener": (BASE["wiener"], [WienerConfig], {}),
    "baselines.gru": (BASE["gru"], [GRUParams], {"train"}),
    "baselines.ndt": (BASE["ndt"], [NDTParams, NDTMasking], {"train", "pretrain"}),
    "baselines.poyo": (BASE["poyo"], [POYOParams], {"train"}),
}
ANNOTATIONS = {"description", "default"}


def _declared(classes) -> dict:
    out = {}
    for cls in classes:
        out.update(config_fields(cls))
    return out


def _default(cls, name):
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("section", list(SECTIONS))
def test_schema_states_the_dataclass_constraints(section):
    node, classes, extra = SECTIONS[section]
    props = node["properties"]
    declared = _declared(classes)
    assert set(props) == set(declared) | set(extra), section  # each name, no other
    for name, fragment in declared.items():
        if fragment is None:  # a nested config dataclass: described by $defs/train
            assert props[name] == TRAIN_REF, f"{section}.{name}"
            continue
        stated = {k: v for k, v in props[name].items() if k not in ANNOTATIONS}
        assert stated == fragment, f"{section}.{name}: schema {stated} != dataclass {fragment}"
        if "default" in props[name]:
            cls = next(c for c in classes if name in config_fields(c))
            assert props[name]["default"] == _default(cls, name), f"{section}.{name} default"


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
