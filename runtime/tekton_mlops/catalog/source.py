"""YAML documents with the line of every node, so findings can point at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from tekton_mlops.yamlio import Loader

Key = tuple[str | int, ...]
_SCALARS = yaml.constructor.SafeConstructor()


@dataclass
class Document:
    """One YAML document of a file, with a map from node path to 1-based line."""

    path: Path
    data: Any
    lines: dict[Key, int] = field(default_factory=dict)
    start: int = 1

    def line(self, *key: str | int) -> int:
        """Line of the deepest known node on ``key``."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.start


def _construct(node: yaml.Node, key: Key, lines: dict[Key, int]) -> Any:
    lines[key] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            name = key_node.value
            lines[(*key, name)] = key_node.start_mark.line + 1
            result[name] = _construct(value_node, (*key, name), lines)
            lines[(*key, name)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*key, i), lines) for i, item in enumerate(node.value)]
    return _SCALARS.construct_object(node)


def load(path: Path) -> list[Document]:
    """Every document of a YAML file (raises yaml.YAMLError on a syntax error)."""
    text = path.read_text()
    documents = []
    for node in yaml.compose_all(text, Loader=Loader):
        lines: dict[Key, int] = {}
        data = _construct(node, (), lines)
        documents.append(Document(path, data, lines, node.start_mark.line + 1))
    return documents


class Reporter(Protocol):
    """What a rule set needs of the linter: the catalog's Tasks, its pinned image, a report."""

    runtime_image: str | None
    tasks: dict[str, dict[str, Any]]

    def report(self, doc: Document, key: Key, rule: str, message: str) -> None: ...


def is_resource(doc: Document) -> bool:
    """A catalog resource file (not a sample or test run).

    Either it sits where resources sit (<kind>/<name>/<version>/<file>.yaml), or it is named
    after its resource outside samples/ and tests/; the path rule then says where it belongs.
    """
    in_layout = doc.path.parent.parent.parent.name in ("task", "pipeline")
    named_like_one = doc.path.parent.name not in ("samples", "tests") and doc.path.stem == str(
        (doc.data.get("metadata") or {}).get("name", "")
    )
    return in_layout or named_like_one
