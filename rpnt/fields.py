"""Config fields that carry their constraints: one source for checks and the JSON schema.

A config dataclass declares each field with :func:`setting`, giving its default and its
constraints in JSON-schema words (``minimum``, ``exclusive_maximum``, ``enum``, ...).
The type comes from the annotation. :func:`check_fields` enforces them when the
dataclass is built (the commands' check), :func:`field_schema` writes them as the JSON
schema fragment of the field, and ``tests/test_config_constraints.py`` requires the
workflow's schema (``rpnt/schemas/config.schema.yaml``) to say exactly that: a
range changed in one place and not the other fails the tests. Checks that involve
several fields (``d_model`` divisible by ``n_heads``, ...) stay in the dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from typing import Any

import jsonschema

from rpnt.errors import RpntError

_KEYWORDS = {"minimum": "minimum", "maximum": "maximum",
             "exclusive_minimum": "exclusiveMinimum", "exclusive_maximum": "exclusiveMaximum",
             "enum": "enum", "min_items": "minItems", "max_items": "maxItems"}
_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def setting(default: Any = dataclasses.MISSING, *,
            default_factory: Any = dataclasses.MISSING, configurable: bool = True,
            items: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A dataclass field with JSON-schema constraints.

    ``constraints``: ``minimum``, ``maximum``, ``exclusive_minimum``,
    ``exclusive_maximum``, ``enum`` (a sequence), ``min_items``, ``max_items``;
    ``items``: constraints of a list's elements in JSON-schema spelling (e.g.
    ``{"exclusiveMinimum": 0}``). ``configurable=False``: not a config key (e.g. the
    seed, which comes from ``--seed``).
    """
    unknown = sorted(set(constraints) - set(_KEYWORDS))
    if unknown:
        raise TypeError(f"setting(): unknown constraints {unknown}")
    schema = {_KEYWORDS[k]: (list(v) if k == "enum" else v) for k, v in constraints.items()}
    if items:
        schema["items"] = dict(items)
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"schema": schema, "configurable": configurable})


def _type_schema(tp: Any) -> dict[str, Any] | None:
    """The JSON-schema type of an annotation; None for a nested config dataclass."""
    if dataclasses.is_dataclass(tp):
        return None
    if tp in _TYPES:
        return {"type": _TYPES[tp]}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:
            return {"type": [_TYPES[inner[0]], "null"]}
    if origin in (list, tuple):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            out = {"type": "array", "items": {"type": _TYPES[args[0]]}}
            return {**out, "minItems": len(args), "maxItems": len(args)}
        return {"type": "array", "items": {"type": _TYPES[args[0]]}}
    if origin is dict:
        return {"type": "object", "additionalProperties": {"type": _TYPES[args[1]]}}
    raise TypeError(f"no JSON-schema type for annotation {tp!r}")


@functools.cache
def config_fields(cls: type) -> dict[str, dict[str, Any] | None]:
    """``{field name: JSON-schema fragment}`` of the configurable fields of ``cls``
    (None for a nested config dataclass, which describes itself)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, dict[str, Any] | None] = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("configurable", True):
            continue
        base = _type_schema(hints[f.name])
        if base is None:
            out[f.name] = None
            continue
        extra = dict(f.metadata.get("schema", {}))
        if "items" in extra:
            base["items"] = {**base["items"], **extra.pop("items")}
        out[f.name] = {**base, **extra}
    return out


def field_schema(cls: type, name: str) -> dict[str, Any] | None:
    """The JSON-schema fragment of field ``name`` of config dataclass ``cls``."""
    return config_fields(cls)[name]


@functools.cache
def _validator(cls: type, name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(config_fields(cls)[name])


def _explain(error: jsonschema.ValidationError) -> str:
    """What a value must be, in words (``minimum 1`` reads "must be positive")."""
    kw, bound = error.validator, error.validator_value
    if kw == "minimum":
        return "must be positive (>= 1)" if bound == 1 else f"must be >= {bound}"
    if kw == "exclusiveMinimum":
        return "must be positive (> 0)" if bound == 0 else f"must be > {bound}"
    if kw in ("maximum", "exclusiveMaximum"):
        return f"must be {'<=' if kw == 'maximum' else '<'} {bound}"
    if kw == "enum":
        return f"must be one of {bound}"
    if kw == "type":
        return f"must be of type {bound}"
    if kw == "minItems":
        return f"must have at least {bound} item{'s' if bound > 1 else ''}"
    if kw == "maxItems":
        return f"must have at most {bound} items"
    return error.message


def check_fields(obj: Any, where: str) -> None:
    """RpntError ``"<where>.<field> must be ..., got <value>"`` for the first field of the
    config dataclass ``obj`` that breaks its constraints."""
    for name, schema in config_fields(type(obj)).items():
        if schema is None:
            continue
        value = json.loads(json.dumps(getattr(obj, name)))  # tuples -> lists, as in YAML
        error = jsonschema.exceptions.best_match(_validator(type(obj), name).iter_errors(value))
        if error is not None:
            item = "".join(f"[{i}]" for i in error.absolute_path)
            raise RpntError(f"{where}.{name}{item} {_explain(error)}, got {error.instance!r}")
