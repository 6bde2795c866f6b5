"""Trigger resources from YAML, bindings evaluated on an event, templates rendered.

Bindings read ``$(body.a.b)``, ``$(header.Name)`` and ``$(extensions.key)``;
templates substitute ``$(tt.params.name)`` (with their defaults) into each
resource template and turn ``generateName`` into a name, as the EventListener
does when it creates the resources.

Example::

    triggers = load_triggers(Path("catalog/trigger/train-on-push/0.1"))
    runs = triggers.render(triggers.listeners["train-on-push"].triggers[0], event)
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tekton_mlops.triggers.interceptors import Event

GROUP = "triggers.tekton.dev"
_EXPRESSION = re.compile(r"\$\((body|header|extensions)((?:\.[^.()\s]+|\[[^\]]+\])*)\)")
_TT_PARAM = re.compile(r"\$\(tt\.params\.([A-Za-z0-9_.-]+)\)")


class TriggerError(Exception):
    """A trigger cannot be evaluated: a missing binding value, template param or resource."""


@dataclass
class TriggerSet:
    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)
    bindings: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def binding_params(self, trigger: dict[str, Any], event: Event) -> dict[str, str]:
        params: dict[str, str] = {}
        for binding in trigger.get("bindings") or []:
            if "ref" in binding:
                found = self.bindings.get(binding["ref"])
                if found is None:
                    raise TriggerError(f"TriggerBinding {binding['ref']!r} not found")
                entries = found.get("spec", {}).get("params") or []
            else:  # an inline binding: name and value on the trigger itself
                entries = [binding]
            for entry in entries:
                params[entry["name"]] = substitute_event(str(entry["value"]), event)
        return params

    def render(self, trigger: dict[str, Any], event: Event) -> list[dict[str, Any]]:
        """The resources the trigger's template creates for this event."""
        template_ref = (trigger.get("template") or {}).get("ref", "")
        template = self.templates.get(template_ref)
        if template is None:
            raise TriggerError(f"TriggerTemplate {template_ref!r} not found")
        given = self.binding_params(trigger, event)
        values: dict[str, str] = {}
        for param in template.get("spec", {}).get("params") or []:
            name = param["name"]
            if name in given:
                values[name] = given[name]
            elif "default" in param:
                values[name] = str(param["default"])
            else:
                raise TriggerError(f"template param {name!r} has no binding and no default")
        rendered = []
        for resource in template.get("spec", {}).get("resourcetemplates") or []:
            document = _substitute_params(copy.deepcopy(resource), values)
            metadata = document.setdefault("metadata", {})
            if "generateName" in metadata and "name" not in metadata:
                metadata["name"] = metadata.pop("generateName") + secrets.token_hex(3)[:5]
            rendered.append(document)
        return rendered


def load_triggers(folder: Path) -> TriggerSet:
    found = TriggerSet()
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.y*ml"))
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if not isinstance(document, dict):
                continue
            if str(document.get("apiVersion", "")).split("/")[0] != GROUP:
                continue
            kind, name = document.get("kind"), document.get("metadata", {}).get("name", "")
            if kind == "EventListener":
                found.listeners[name] = document
            elif kind in ("TriggerBinding", "ClusterTriggerBinding"):
                found.bindings[name] = document
            elif kind == "TriggerTemplate":
                found.templates[name] = document
    return found


def _lookup(value: Any, path: str, where: str) -> Any:
    for part in re.findall(r"\.([^.\[\]]+)|\[['\"]?([^\]'\"]+)['\"]?\]", path):
        key = part[0] or part[1]
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise TriggerError(f"{where}: no {key!r} in the event")
    return value


def substitute_event(text: str, event: Event) -> str:
    def replace(match: re.Match[str]) -> str:
        source, path = match.group(1), match.group(2)
        if source == "header":
            name = path.lstrip(".").strip("[]'\"")
            if not name:
                return json.dumps(event.headers)
            return event.header(name)
        root = event.body if source == "body" else event.extensions
        value = _lookup(root, path, match.group(0))
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return _EXPRESSION.sub(replace, text)


def _substitute_params(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in values:
                raise TriggerError(f"$(tt.params.{match.group(1)}) is not a template param")
            return values[match.group(1)]

        return _TT_PARAM.sub(replace, node)
    if isinstance(node, list):
        return [_substitute_params(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _substitute_params(value, values) for key, value in node.items()}
    return node
