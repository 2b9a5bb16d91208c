"""Config fields that carry their constraints: one source for checks and the JSON schema.

A config dataclass declares each field with :func:`setting`, giving its default and its
constraints in JSON-schema words (``minimum``, ``exclusive_maximum``, ``enum``, ...).
The type comes from the annotation, the description from the field's ``#:`` comment
(:func:`field_docs`, as Sphinx reads it). :func:`check_fields` enforces the constraints
when the dataclass is built (the commands' check) and :func:`section_schema` writes the
dataclass as a JSON-schema object, defaults and descriptions included: the workflow's
schema is generated from these (``rpnt.workflow.schema``), never written by hand. Checks
that involve several fields (``d_model`` divisible by ``n_heads``, ...) stay in the
dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
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
            items: dict[str, Any] | None = None, derived: str | None = None,
            schema: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A dataclass field with JSON-schema constraints.

    ``constraints``: ``minimum``, ``maximum``, ``exclusive_minimum``,
    ``exclusive_maximum``, ``enum`` (a sequence), ``min_items``, ``max_items``;
    ``items``: constraints of a list's elements in JSON-schema spelling (e.g.
    ``{"exclusiveMinimum": 0}``). ``configurable=False``: not a config key (e.g. the
    seed, which comes from ``--seed``). ``derived``: what sets the value when the config
    leaves it out (e.g. "the size preset"): the schema then states no default, so a
    resolved config never fills it. ``schema``: the whole JSON-schema fragment, for a
    value no annotation can describe (e.g. a number or ``all``).
    """
    unknown = sorted(set(constraints) - set(_KEYWORDS))
    if unknown:
        raise TypeError(f"setting(): unknown constraints {unknown}")
    fragment = {_KEYWORDS[k]: (list(v) if k == "enum" else v) for k, v in constraints.items()}
    if items:
        fragment["items"] = dict(items)
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"schema": fragment, "configurable": configurable,
                                       "derived": derived, "whole_schema": schema})


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
        if f.metadata.get("whole_schema") is not None:
            out[f.name] = dict(f.metadata["whole_schema"])
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


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """``{field name: description}`` from the ``#:`` comments of a dataclass's source: the
    lines just above a field and the comment closing its line (the Sphinx convention)."""
    lines = textwrap.dedent(inspect.getsource(cls)).splitlines(keepends=True)
    comments: dict[int, str] = {}  # line number (1-based) -> text of its #: comment
    for tok in tokenize.generate_tokens(io.StringIO("".join(lines)).readline):
        if tok.type == tokenize.COMMENT and tok.string.startswith("#:"):
            comments[tok.start[0]] = tok.string[2:].strip()
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    for i, line in enumerate(lines, start=1):
        head = line.split(":", 1)[0].strip()
        if line[:1].isspace() and head in names and head not in out and ":" in line \
                and not line.lstrip().startswith("#"):
            above, j = [], i - 1
            while j in comments and lines[j - 1].lstrip().startswith("#:"):
                above.insert(0, comments[j])
                j -= 1
            text = " ".join(above + ([comments[i]] if i in comments else []))
            if text:
                out[head] = text
    return out


def _json_default(value: Any) -> Any:
    """A default as the resolved YAML holds it (tuples as lists, nested dataclasses as
    mappings)."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value))


def section_schema(cls: type, defaults: Any | None = None, description: str | None = None,
                   nested: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON-schema object of config dataclass ``cls``: one property per configurable
    field, with its type, constraints, ``#:`` description and default (taken from the
    instance ``defaults``, else ``cls()``; none for a ``derived`` field), unknown keys
    refused. ``nested``: schemas of fields that are config dataclasses themselves (or
    that this section holds besides ``cls``'s fields)."""
    defaults = cls() if defaults is None else defaults
    docs = field_docs(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    props: dict[str, Any] = {}
    for name, fragment in config_fields(cls).items():
        if fragment is None:
            if not nested or name not in nested:
                raise TypeError(f"{cls.__name__}.{name}: nested section needs a schema")
            props[name] = nested[name]
            continue
        prop = {**({"description": docs[name]} if name in docs else {}), **fragment}
        derived = fields[name].metadata.get("derived")
        if derived:
            prop["description"] = f"{prop.get('description', name)} (unset: {derived})"
        else:
            prop["default"] = _json_default(getattr(defaults, name))
        props[name] = prop
    for name, sub in (nested or {}).items():
        props.setdefault(name, sub)
    doc = description if description is not None else (inspect.getdoc(cls) or "")
    return {"description": " ".join(doc.split()), "type": "object",
            "additionalProperties": False, "default": {}, "properties": props}


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
