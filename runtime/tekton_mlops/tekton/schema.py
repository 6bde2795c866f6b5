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


@cache
def _validator(key: str) -> Any:
    import jsonschema

    everything = _schemas()
    schema = {"$defs": everything["$defs"], **everything["kinds"][key]}
    return jsonschema.Draft202012Validator(schema)


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
        for error in _validator(key).iter_errors(document):
            if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
                continue
            declared = {name.lower(): name for name in error.schema.get("properties") or {}}
            for name in list(error.instance):
                wanted = declared.get(name.lower())
                if wanted and wanted != name and wanted not in error.instance:
                    error.instance[wanted] = error.instance.pop(name)
                    path = field_path([*error.absolute_path, name])
                    renamed.append(f"{path} -> {wanted}")
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
    for error in sorted(_validator(key).iter_errors(document), key=lambda e: list(e.path)):
        at = list(error.absolute_path)
        where = field_path(at)
        if error.validator == "additionalProperties":
            declared = set(error.schema.get("properties") or {})
            for name in sorted(set(error.instance) - declared):
                unknown.append(f'unknown field "{field_path([*at, name])}"')
        elif error.validator == "type":
            wanted = error.validator_value
            wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
            got = _json_type(error.instance)
            invalid.append(
                f'{where}: Invalid value: "{got}": {where} in body must be of type {wanted}: '
                f'"{got}"'
            )
        elif error.validator in ("required", "minItems", "enum"):
            # Presence and allowed values are Tekton's webhook to judge, in its own words.
            continue
        else:
            shown = json.dumps(error.instance)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            invalid.append(f"{where}: Invalid value: {shown}: {error.message.split(chr(10))[0]}")
    if unknown:
        return [f"strict decoding error: {', '.join(unknown)}", *invalid]
    return invalid
