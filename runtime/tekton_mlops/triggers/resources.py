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

from tekton_mlops.tekton.variables import Unresolved, Value, substitute, substitute_string
from tekton_mlops.triggers.event import Event

GROUP = "triggers.tekton.dev"
_PATH = re.compile(r"^(body|header|extensions)((?:\.[^.()\s\[]+|\[[^\]]+\])*)$")


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


def event_scope(event: Event) -> Any:
    """``$(body.…)``, ``$(header.…)`` and ``$(extensions.…)`` of an event, for the one
    substitution engine; any other variable is not the binding's and stays as written."""

    def lookup(expression: str) -> Value:
        match = _PATH.match(expression.strip())
        if not match:
            raise Unresolved(expression)
        source, path = match.group(1), match.group(2)
        if source == "header":
            name = path.lstrip(".").strip("[]'\"")
            return json.dumps(event.headers) if not name else event.header(name)
        root = event.body if source == "body" else event.extensions
        value = _lookup(root, path, f"$({expression})")
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))

    return lookup


def substitute_event(text: str, event: Event) -> str:
    return substitute_string(text, event_scope(event))


def _substitute_params(node: Any, values: dict[str, str]) -> Any:
    """``$(tt.params.x)`` in a resource template; other variables (the run's own) stay."""

    def lookup(expression: str) -> Value:
        if not expression.startswith("tt.params."):
            raise Unresolved(expression)
        name = expression[len("tt.params.") :]
        if name not in values:
            raise TriggerError(f"$({expression}) is not a template param")
        return values[name]

    return substitute(node, lookup)
