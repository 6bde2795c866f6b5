"""Strict decoding: what the API server refuses before Tekton's webhook sees a document.

``kubectl apply`` sends documents with strict field validation (the default since
Kubernetes 1.27), so a misspelt field (``runafter``, ``worksapces``) or a value of
the wrong JSON type fails there, before admission. The shapes come from Tekton's
own API definitions (``api-schema.json``, see ``SCHEMAS.md``); the messages are
worded as the API server words them.

Example::

    decode_errors({"apiVersion": "tekton.dev/v1", "kind": "Task", ...})
    # ['strict decoding error: unknown field "spec.stpes"']
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("api-schema.json")


@cache
def _schemas() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())  # type: ignore[no-any-return]


def known_kinds() -> list[str]:
    """``<apiVersion>/<kind>`` of every kind with a schema."""
    return sorted(_schemas()["kinds"])


@dataclass(frozen=True)
class Violation:
    """One place a document breaks its schema: the keyword, where, the value found there."""

    keyword: str
    path: tuple[str | int, ...]
    instance: Any
    schema: dict[str, Any]
    message: str = ""


def violations(document: dict[str, Any]) -> list[Violation]:
    """Every violation of the document's kind schema, in document order.

    A walk over the keywords ``api-schema.json`` uses (``$ref``, ``type``,
    ``properties``, ``additionalProperties``, ``items``, ``anyOf``, ``oneOf``,
    ``const``, ``pattern``, ``required``, ``minItems``, ``enum``), with JSON Schema
    2020-12's meaning; ``format`` is an annotation, as in jsonschema without a format
    checker. Written here rather than through jsonschema: importing it and building a
    validator over the 100 KB of definitions costs every ``tekton-mlops run`` 70 ms.
    """
    key = f"{document.get('apiVersion')}/{document.get('kind')}"
    kinds = _schemas()["kinds"]
    if key not in kinds:
        return []
    found: list[Violation] = []
    _walk(kinds[key], document, (), found)
    return found


def _walk(
    schema: dict[str, Any], value: Any, path: tuple[str | int, ...], out: list[Violation]
) -> None:
    for keyword, expected in schema.items():
        if keyword == "$ref":
            _walk(_definition(expected), value, path, out)
        elif keyword == "type":
            if not _is_type(value, expected):
                out.append(Violation("type", path, value, schema))
        elif keyword == "properties" and isinstance(value, dict):
            for name, sub in expected.items():
                if name in value:
                    _walk(sub, value[name], (*path, name), out)
        elif keyword == "additionalProperties" and isinstance(value, dict):
            declared = schema.get("properties") or {}
            extra = [name for name in value if name not in declared]
            if expected is False and extra:
                out.append(Violation("additionalProperties", path, value, schema))
            elif isinstance(expected, dict):
                for name in extra:
                    _walk(expected, value[name], (*path, name), out)
        elif keyword == "items" and isinstance(value, list):
            for index, item in enumerate(value):
                _walk(expected, item, (*path, index), out)
        elif keyword in ("anyOf", "oneOf"):
            valid = []
            for branch in expected:
                trial: list[Violation] = []
                _walk(branch, value, path, trial)
                if not trial:
                    valid.append(branch)
            if not valid:
                message = f"{value!r} is not valid under any of the given schemas"
                out.append(Violation(keyword, path, value, schema, message))
            elif keyword == "oneOf" and len(valid) > 1:
                # Worded and ordered as jsonschema words it: the later matches, then the first.
                shown = ", ".join(map(repr, [*valid[1:], valid[0]]))
                message = f"{value!r} is valid under each of {shown}"
                out.append(Violation(keyword, path, value, schema, message))
        elif keyword == "const":
            if not _equal(value, expected):
                out.append(Violation("const", path, value, schema, f"{expected!r} was expected"))
        elif keyword == "pattern" and isinstance(value, str):
            if _pattern(expected).search(value) is None:
                message = f"{value!r} does not match {expected!r}"
                out.append(Violation("pattern", path, value, schema, message))
        elif keyword == "required" and isinstance(value, dict):
            if any(name not in value for name in expected):
                out.append(Violation("required", path, value, schema))
        elif keyword == "minItems" and isinstance(value, list):
            if len(value) < expected:
                out.append(Violation("minItems", path, value, schema))
        elif keyword == "enum" and not any(_equal(value, allowed) for allowed in expected):
            out.append(Violation("enum", path, value, schema))


def _definition(ref: str) -> dict[str, Any]:
    return _schemas()["$defs"][ref.removeprefix("#/$defs/")]  # type: ignore[no-any-return]


def _is_type(value: Any, expected: str | list[str]) -> bool:
    if isinstance(expected, list):
        return any(_is_type(value, one) for one in expected)
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and actual == "number":
        return float(value).is_integer()  # JSON Schema: 1.0 is an integer
    return actual == expected


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 equals 1.0, true is not 1."""
    kinds = {_json_type(a), _json_type(b)}
    return (kinds <= {"integer", "number"} or len(kinds) == 1) and bool(a == b)


@cache
def _pattern(expression: str) -> re.Pattern[str]:
    return re.compile(expression)


def has_schema(document: dict[str, Any]) -> bool:
    return f"{document.get('apiVersion')}/{document.get('kind')}" in _schemas()["kinds"]


def field_path(parts: Any) -> str:
    """``["spec", "tasks", 0, "runAfter"]`` -> ``spec.tasks[0].runAfter`` (Kubernetes' form)."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def fold_case(document: dict[str, Any]) -> list[str]:
    """Rename, in place, fields that name a known field in another case (``mountpath``).

    Tekton's controller and webhook decode with Go's encoding/json, which matches field
    names without regard to case, so Tekton's own examples use ``TaskSpec:`` and
    ``mountpath:`` and run. Returns the renamed paths, ``spec.TaskSpec -> taskSpec``.
    """
    key = f"{document.get('apiVersion')}/{document.get('kind')}"
    if key not in _schemas()["kinds"]:
        return []
    renamed: list[str] = []
    for _ in range(20):  # a rename can reveal fields below it; a few passes settle it
        changed = False
        for error in violations(document):
            if error.keyword != "additionalProperties":
                continue
            declared = {name.lower(): name for name in error.schema.get("properties") or {}}
            for name in list(error.instance):
                wanted = declared.get(name.lower())
                if wanted and wanted != name and wanted not in error.instance:
                    error.instance[wanted] = error.instance.pop(name)
                    renamed.append(f"{field_path([*error.path, name])} -> {wanted}")
                    changed = True
        if not changed:
            break
    return renamed


def decode_errors(document: dict[str, Any]) -> list[str]:
    """What strict decoding says of a document, in the API server's words; [] when it decodes.

    Field names are matched without regard to case, as Tekton decodes them (see
    :func:`fold_case`, which this calls first). Documents of kinds without a schema
    (ConfigMap, Secret, ...) are not checked here.
    """
    key = f"{document.get('apiVersion')}/{document.get('kind')}"
    if key not in _schemas()["kinds"]:
        return []
    fold_case(document)
    unknown: list[str] = []
    invalid: list[str] = []
    for error in sorted(violations(document), key=lambda e: _sort_key(e.path)):
        where = field_path(error.path)
        if error.keyword == "additionalProperties":
            declared = set(error.schema.get("properties") or {})
            for name in sorted(set(error.instance) - declared):
                unknown.append(f'unknown field "{field_path([*error.path, name])}"')
        elif error.keyword == "type":
            wanted = error.schema["type"]
            wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
            got = _json_type(error.instance)
            invalid.append(
                f'{where}: Invalid value: "{got}": {where} in body must be of type {wanted}: '
                f'"{got}"'
            )
        elif error.keyword in ("required", "minItems", "enum"):
            # Presence and allowed values are Tekton's webhook to judge, in its own words.
            continue
        else:
            shown = json.dumps(error.instance)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            invalid.append(f"{where}: Invalid value: {shown}: {error.message}")
    if unknown:
        return [f"strict decoding error: {', '.join(unknown)}", *invalid]
    return invalid


def _sort_key(path: tuple[str | int, ...]) -> list[tuple[int, str | int]]:
    # Paths mix names and indexes; compare like with like (names before indexes, as
    # neither occurs in the same place of a schema's document).
    return [(0, part) if isinstance(part, str) else (1, part) for part in path]
