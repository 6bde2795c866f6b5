"""Tekton variable substitution: ``$(params.x)``, ``$(params.a[*])``, ``$(params.o.key)``, …

Values live in a flat table keyed by the variable's canonical name
(``params.x``, ``tasks.t.results.r``, ``workspaces.w.path``). Strings are
substituted in place; a list element that is exactly ``$(params.a[*])`` (or an
object's ``[*]``) expands into several elements, as Tekton does for array
params in ``args`` and ``command``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

Value = str | list[str] | dict[str, str]
EXPRESSION = re.compile(r"\$\(([^()]+)\)")
_QUOTED = re.compile(r"""^(?P<head>[\w.-]*?)\[(['"])(?P<name>[^'"]+)\2\](?P<tail>.*)$""")


class Unresolved(Exception):
    """A variable has no value here."""


def canonical(expression: str) -> tuple[str, str]:
    """Split ``params["a.b"][*]`` into (``params.a.b``, ``[*]``); ``params.o.k`` -> (…, ``.k``)."""
    expression = expression.strip()
    quoted = _QUOTED.match(expression)
    if quoted:
        head = quoted.group("head").rstrip(".")
        return f"{head}.{quoted.group('name')}", quoted.group("tail")
    match = re.match(r"^(.*?)(\[(\*|\d+)\])?$", expression)
    assert match is not None
    return match.group(1), match.group(2) or ""


def _lookup(table: Mapping[str, Value], expression: str) -> Value:
    name, accessor = canonical(expression)
    if name in table:
        value = table[name]
    else:
        # params.obj.key: the object is params.obj
        parent, _, key = name.rpartition(".")
        holder = table.get(parent)
        if not isinstance(holder, dict) or key not in holder:
            raise Unresolved(expression)
        value = holder[key]
    if accessor == "[*]" or accessor == "":
        return value
    index = int(accessor[1:-1])
    if not isinstance(value, list) or index >= len(value):
        raise Unresolved(f"{expression} (index out of range)")
    return value[index]


def substitute_string(text: str, table: Mapping[str, Value], strict: bool = False) -> str:
    """Replace every known ``$(…)`` in text; unknown ones stay unless ``strict``."""

    def replace(match: re.Match[str]) -> str:
        try:
            value = _lookup(table, match.group(1))
        except Unresolved:
            if strict:
                raise
            return match.group(0)
        return value if isinstance(value, str) else json.dumps(value)

    return EXPRESSION.sub(replace, text)


def substitute(value: Any, table: Mapping[str, Value], strict: bool = False) -> Any:
    """Substitute through nested lists and dicts, expanding whole-array elements."""
    if isinstance(value, str):
        whole = EXPRESSION.fullmatch(value)
        if whole:  # "$(params.list[*])" as a whole value stays an array (or object)
            try:
                found = _lookup(table, whole.group(1))
            except Unresolved:
                if strict:
                    raise
                return value
            return found if not isinstance(found, str) else found
        return substitute_string(value, table, strict)
    if isinstance(value, list):
        expanded: list[Any] = []
        for item in value:
            whole = EXPRESSION.fullmatch(item) if isinstance(item, str) else None
            if whole and canonical(whole.group(1))[1] == "[*]":
                try:
                    found = _lookup(table, whole.group(1))
                except Unresolved:
                    if strict:
                        raise
                    expanded.append(item)
                    continue
                expanded.extend(
                    found
                    if isinstance(found, list)
                    else list(found.values())
                    if isinstance(found, dict)
                    else [found]
                )
                continue
            expanded.append(substitute(item, table, strict))
        return expanded
    if isinstance(value, dict):
        return {k: substitute(v, table, strict) for k, v in value.items()}
    return value


def references(value: Any) -> list[str]:
    """Every ``$(…)`` expression inside value."""
    if isinstance(value, str):
        return EXPRESSION.findall(value)
    if isinstance(value, list):
        return [e for item in value for e in references(item)]
    if isinstance(value, dict):
        return [e for item in value.values() for e in references(item)]
    return []
