"""Tekton's variable grammar and the one substitution engine every reader of Tekton YAML uses.

A variable is ``$(…)``: ``$(params.x)``, ``$(params["a.b"])``, ``$(params.list[*])``,
``$(params.list[0])``, ``$(params.obj.key)``, ``$(tasks.t.results.r)``,
``$(workspaces.w.path)``, ``$(context.taskRun.name)``, ``$(tt.params.x)``,
``$(body.head_commit.id)``. Values come from a *scope*: a mapping keyed by the
variable's canonical name (``params.x``, ``tasks.t.results.r``), or any callable
that answers an expression or raises :class:`Unresolved`.

Strings are substituted in place (a structured value is written as JSON). A list
element that is exactly ``$(params.a[*])`` (or an object's ``[*]``) expands into
several elements, as Tekton does for array params in ``args`` and ``command``;
a whole value that is exactly one reference keeps its type.

Example::

    table = {"params.x": "1", "params.list": ["a", "b"]}
    substitute(["--x=$(params.x)", "$(params.list[*])"], table)  # ['--x=1', 'a', 'b']
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Value = str | list[str] | dict[str, str]
Lookup = Callable[[str], Value]
Scope = Mapping[str, Value] | Lookup

#: One variable: ``$(`` then anything but parentheses, then ``)`` (Tekton's own pattern).
EXPRESSION = re.compile(r"\$\(([^()]+)\)")
_QUOTED = re.compile(r"""^(?P<head>[\w.-]*?)\[(['"])(?P<name>[^'"]+)\2\](?P<tail>.*)$""")
_ACCESSOR = re.compile(r"^(.*?)(\[(\*|\d+)\])?$")


class Unresolved(Exception):
    """A variable has no value in this scope."""


@dataclass(frozen=True)
class Reference:
    """A parsed variable: ``params["a.b"][*]`` is name ``params.a.b`` with accessor ``[*]``."""

    name: str
    accessor: str  # "", "[*]" or "[<index>]"

    @property
    def root(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def index(self) -> int | None:
        return int(self.accessor[1:-1]) if self.accessor[1:-1].isdigit() else None


def parse(expression: str) -> Reference:
    """The canonical name and accessor of an expression (the text inside ``$(…)``)."""
    expression = expression.strip()
    quoted = _QUOTED.match(expression)
    if quoted:
        head = quoted.group("head").rstrip(".")
        tail = quoted.group("tail")
        # params["obj"].key and params["list"][*] both carry something after the quotes.
        key = tail[1:] if tail.startswith(".") else ""
        name = f"{head}.{quoted.group('name')}" + (f".{key}" if key else "")
        return Reference(name, "" if key else tail)
    match = _ACCESSOR.match(expression)
    assert match is not None  # the pattern matches every string
    return Reference(match.group(1), match.group(2) or "")


def lookup_in(table: Mapping[str, Value]) -> Lookup:
    """A scope over a table of canonical names; ``params.obj.key`` reads a key of ``params.obj``."""

    def lookup(expression: str) -> Value:
        reference = parse(expression)
        if reference.name in table:
            value = table[reference.name]
        else:
            parent, _, key = reference.name.rpartition(".")
            holder = table.get(parent)
            if not isinstance(holder, dict) or key not in holder:
                raise Unresolved(expression)
            value = holder[key]
        if reference.accessor in ("", "[*]"):
            return value
        index = reference.index
        if not isinstance(value, list) or index is None or index >= len(value):
            raise Unresolved(f"{expression} (index out of range)")
        return value[index]

    return lookup


def _as_lookup(scope: Scope) -> Lookup:
    return scope if callable(scope) else lookup_in(scope)


def _text(value: Value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def substitute_string(text: str, scope: Scope, strict: bool = False) -> str:
    """Replace every resolvable ``$(…)`` in text; the others stay unless ``strict``."""
    lookup = _as_lookup(scope)

    def replace(match: re.Match[str]) -> str:
        try:
            return _text(lookup(match.group(1)))
        except Unresolved:
            if strict:
                raise
            return match.group(0)

    return EXPRESSION.sub(replace, text)


def substitute(value: Any, scope: Scope, strict: bool = False) -> Any:
    """Substitute through nested lists and dicts, expanding whole-array elements."""
    lookup = _as_lookup(scope)
    return _substitute(value, lookup, strict)


def _substitute(value: Any, lookup: Lookup, strict: bool) -> Any:
    if isinstance(value, str):
        whole = EXPRESSION.fullmatch(value)
        if whole:  # "$(params.list[*])" as a whole value stays an array (or object)
            try:
                return lookup(whole.group(1))
            except Unresolved:
                if strict:
                    raise
                return value
        return substitute_string(value, lookup, strict)
    if isinstance(value, list):
        expanded: list[Any] = []
        for item in value:
            whole = EXPRESSION.fullmatch(item) if isinstance(item, str) else None
            if whole and parse(whole.group(1)).accessor == "[*]":
                try:
                    found = lookup(whole.group(1))
                except Unresolved:
                    if strict:
                        raise
                    expanded.append(item)
                    continue
                if isinstance(found, list):
                    expanded.extend(found)
                elif isinstance(found, dict):
                    expanded.extend(found.values())
                else:
                    expanded.append(found)
                continue
            expanded.append(_substitute(item, lookup, strict))
        return expanded
    if isinstance(value, dict):
        return {key: _substitute(item, lookup, strict) for key, item in value.items()}
    return value


def references(value: Any) -> list[str]:
    """Every ``$(…)`` expression inside value, in document order."""
    if isinstance(value, str):
        return EXPRESSION.findall(value)
    if isinstance(value, list):
        return [e for item in value for e in references(item)]
    if isinstance(value, dict):
        return [e for item in value.values() for e in references(item)]
    return []


#: The passes Tekton's TaskRun reconciler makes over a TaskSpec, in order: params first,
#: then context, then everything else (results, workspaces, credentials, step paths). A
#: value that one pass substitutes is seen by the later passes only, so a param whose value
#: is ``$(context.task.retry-count)`` becomes the retry count, but a context value is never
#: read as a param.
TASK_PASSES: tuple[tuple[str, ...], ...] = (("params.", "inputs.params."), ("context.",), ())


def substitute_in_passes(
    value: Any, table: Mapping[str, Value], passes: tuple[tuple[str, ...], ...] = TASK_PASSES
) -> Any:
    """Substitute ``table`` into ``value`` pass by pass; a pass with no prefixes takes the rest."""
    lookup = lookup_in(table)
    claimed = tuple(prefix for group in passes for prefix in group)
    for prefixes in passes:

        def scoped(expression: str, prefixes: tuple[str, ...] = prefixes) -> Value:
            name = parse(expression).name
            mine = name.startswith(prefixes) if prefixes else not name.startswith(claimed)
            if not mine:
                raise Unresolved(expression)
            return lookup(expression)

        value = _substitute(value, scoped, strict=False)
    return value
