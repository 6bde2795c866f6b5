"""A yes/no JSON Schema check for the keywords the step schemas use, without jsonschema.

Importing jsonschema costs a step about 50 ms before it can do anything (for a step that
signs a model in 400 ms, an eighth of its time). Valid params are the common case, and a
yes/no answer is all they need; only invalid ones need jsonschema's full list of
violations with their wording. So :func:`valid` answers True or False for the keywords
below and None for a schema that uses any other (the caller then asks jsonschema), and
``tests/unit/test_quickcheck.py`` checks it agrees with jsonschema on every step schema
over thousands of generated instances.

Example::

    if valid(schema, params) is not True:
        ...  # jsonschema, for every violation in its words
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

SUPPORTED = frozenset(
    {
        "type", "enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "minLength", "maxLength", "properties", "additionalProperties",
        "required", "propertyNames", "if", "then", "else", "$ref", "oneOf", "allOf", "anyOf",
        "not", "items", "minItems", "maxItems", "$defs",
        # annotations: no effect on validity
        "$schema", "$id", "title", "description", "default", "examples",
    }
)  # fmt: skip


class Unsupported(Exception):
    """The schema uses a keyword this module does not check."""


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "number":
        return True
    if kind == "integer":
        return isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())
    raise Unsupported(kind)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and (isinstance(a, int | float) == isinstance(b, int | float))


def _check(schema: Any, value: Any, root: Mapping[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise Unsupported(repr(schema))
    unknown = set(schema) - SUPPORTED - {k for k in schema if k.startswith("x-")}
    if unknown:
        raise Unsupported(", ".join(sorted(unknown)))
    if "$ref" in schema:
        reference = str(schema["$ref"])
        if not reference.startswith("#/"):
            raise Unsupported(reference)
        target: Any = root
        for part in reference[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        if not _check(target, value, root):
            return False
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            return False
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        return False
    if "const" in schema and not _equal(value, schema["const"]):
        return False
    if isinstance(value, str):
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            return False
        if "minLength" in schema and len(value) < schema["minLength"]:
            return False
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return False
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
    if isinstance(value, dict) and not _check_object(schema, value, root):
        return False
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return False
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return False
        if "items" in schema and not all(_check(schema["items"], v, root) for v in value):
            return False
    if "allOf" in schema and not all(_check(s, value, root) for s in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(_check(s, value, root) for s in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(1 for s in schema["oneOf"] if _check(s, value, root)) != 1:
        return False
    if "not" in schema and _check(schema["not"], value, root):
        return False
    if "if" in schema:
        branch = "then" if _check(schema["if"], value, root) else "else"
        if branch in schema and not _check(schema[branch], value, root):
            return False
    return True


def _check_object(schema: dict[str, Any], value: dict[str, Any], root: Mapping[str, Any]) -> bool:
    if any(name not in value for name in schema.get("required") or []):
        return False
    properties = schema.get("properties") or {}
    for name, item in value.items():
        if name in properties:
            if not _check(properties[name], item, root):
                return False
        elif "additionalProperties" in schema and not _check(
            schema["additionalProperties"], item, root
        ):
            return False
    names = schema.get("propertyNames")
    return names is None or all(_check(names, name, root) for name in value)


def valid(schema: Mapping[str, Any], instance: Any) -> bool | None:
    """True or False as JSON Schema says; None when the schema uses a keyword not checked here."""
    try:
        return _check(dict(schema), instance, schema)
    except Unsupported:
        return None
