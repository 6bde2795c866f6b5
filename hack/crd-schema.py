#!/usr/bin/env python3
"""Translate one version of a CustomResourceDefinition into a strict draft 2020-12 JSON Schema.

Usage: hack/crd-schema.py CRD_FILE CRD_NAME VERSION OUTPUT --source TEXT

  CRD_FILE  the upstream CRD YAML (one or several documents, e.g. Istio's crd-all.gen.yaml)
  CRD_NAME  metadata.name of the CRD, e.g. inferencegraphs.serving.kserve.io
  VERSION   the served version to translate, e.g. v1alpha1
  OUTPUT    the JSON Schema to write, e.g. tests/schemas/kserve/inferencegraph_v1alpha1.json
  --source  where CRD_FILE came from (repository, commit, path), recorded in the file

The rules are those tests/schemas/README.md gives for the InferenceService schema, so every
carried schema reads the same way:

- int-or-string (``anyOf`` integer/string + ``x-kubernetes-int-or-string``) becomes
  ``type: [integer, string]``; ``nullable: true`` adds ``"null"`` to the type;
  ``x-kubernetes-list-type: set`` adds ``uniqueItems`` (the API server rejects duplicates);
- descriptions are dropped (the tests need the shape, not the documentation), and so are the
  CEL rules (``x-kubernetes-validations``): nothing here evaluates CEL, and an inert copy would
  read as if it were checked; the other ``x-kubernetes-*`` markers stay as inert annotations;
- every object that declares properties, has no ``additionalProperties`` and does not keep
  unknown fields is closed (``additionalProperties: false``), as ``kubectl --validate=strict``
  reports unknown fields;
- the root pins ``apiVersion`` and ``kind``, requires ``metadata`` and ``spec``, and uses a
  hand-written ObjectMeta schema (a CRD types ``metadata`` only as ``object``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_TIME = {"type": ["string", "null"], "format": "date-time"}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META: dict[str, Any] = {
    "description": "Kubernetes ObjectMeta (hand-written: its field names and basic types; "
    "the CRD itself only says type: object).",
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "selfLink": {"type": "string"},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": _TIME,
        "deletionTimestamp": _TIME,
        "deletionGracePeriodSeconds": {"type": "integer"},
        "labels": _STRINGS,
        "annotations": _STRINGS,
        "ownerReferences": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "name": {"type": "string"},
                    "uid": {"type": "string"},
                    "controller": {"type": "boolean"},
                    "blockOwnerDeletion": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
        },
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "managedFields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "fieldsType": {"type": "string"},
                    "fieldsV1": {"type": "object"},
                    "manager": {"type": "string"},
                    "operation": {"type": "string"},
                    "subresource": {"type": "string"},
                    "time": _TIME,
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}
DROPPED = {"description", "x-kubernetes-validations", "nullable"}


def translate(node: Any) -> Any:
    """One openAPIV3Schema node as draft 2020-12, closed where the CRD lists its fields."""
    if isinstance(node, list):
        return [translate(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
    for key, value in node.items():
        if key in DROPPED or key == "type":
            continue
        if key == "anyOf" and node.get("x-kubernetes-int-or-string"):
            continue  # said by the type above
        if key in ("properties", "patternProperties"):
            out[key] = {name: translate(sub) for name, sub in value.items()}
        else:
            out[key] = translate(value)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_version(path: Path, crd_name: str, version: str) -> tuple[dict[str, Any], str, str]:
    """The version's openAPIV3Schema, with the CRD's group and kind."""
    for document in yaml.safe_load_all(path.read_text()):
        if not document or document.get("metadata", {}).get("name") != crd_name:
            continue
        spec = document["spec"]
        for candidate in spec["versions"]:
            if candidate["name"] == version:
                schema = candidate["schema"]["openAPIV3Schema"]
                return schema, spec["group"], spec["names"]["kind"]
        raise SystemExit(f"{path}: {crd_name} has no version {version}")
    raise SystemExit(f"{path}: no CustomResourceDefinition named {crd_name}")


def build(path: Path, crd_name: str, version: str, source: str) -> dict[str, Any]:
    schema, group, kind = crd_version(path, crd_name, version)
    body = translate(schema)
    properties = {
        "apiVersion": {"type": "string", "const": f"{group}/{version}"},
        "kind": {"type": "string", "const": kind},
        "metadata": OBJECT_META,
    }
    for name, sub in body.get("properties", {}).items():
        if name not in properties:
            properties[name] = sub
    return {
        "$schema": DRAFT,
        "title": f"{kind} {group}/{version} (strict)",
        "$comment": f"Derived from the CustomResourceDefinition openAPIV3Schema in {source}. "
        "Generated by hack/crd-schema.py; origin and license in tests/schemas/README.md.",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crd_file", type=Path)
    parser.add_argument("crd_name")
    parser.add_argument("version")
    parser.add_argument("output", type=Path)
    parser.add_argument("--source", required=True)
    args = parser.parse_args()
    document = build(args.crd_file, args.crd_name, args.version, args.source)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
