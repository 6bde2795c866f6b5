"""``tekton-mlops catalog lint``: Tekton's admission, catlin's rules and the project's contract.

Three rule sets, each in its own module, look at every document of the catalog:

- ``tekton_rules``: what Tekton refuses (strict decoding and its admission webhook, from
  the project's model of Tekton in ``tekton_mlops.tekton``), nothing stricter;
- ``catlin_rules``: the Tekton catalog's conventions (layout, metadata, pinned images);
- ``contract_rules``: this project's contract between each Task and its step's JSON Schema,
  and references checked more strictly than Tekton checks them.

Each finding is ``file:line: rule: message``.

Example::

    findings = lint_tree(Path("catalog"))
    print("\\n".join(f.format() for f in findings))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tekton_mlops.catalog import catlin_rules, contract_rules, tekton_rules
from tekton_mlops.catalog.rules import RULES
from tekton_mlops.catalog.source import Document, is_resource, load


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    rule: str
    message: str

    def format(self, style: str = "text") -> str:
        if style == "github":
            message = self.message.replace("\n", "%0A")
            return f"::error file={self.path},line={self.line},title={self.rule}::{message}"
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


class Linter:
    """Collects the findings of every rule set for one tree."""

    def __init__(self, root: Path, runtime_image: str | None) -> None:
        self.root = root
        self.runtime_image = runtime_image
        self.findings: list[Finding] = []
        self.tasks: dict[str, dict[str, Any]] = {}  # catalog Task name -> spec

    def report(self, doc: Document, key: tuple[str | int, ...], rule: str, message: str) -> None:
        assert rule in RULES, rule
        self.findings.append(Finding(doc.path, doc.line(*key), rule, message))

    def lint(self, files: list[Path]) -> list[Finding]:
        documents: list[Document] = []
        for path in files:
            try:
                documents += load(path)
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = mark.line + 1 if mark else 1
                self.findings.append(Finding(path, line, "yaml", str(exc).splitlines()[0]))
        for doc in documents:  # Tasks first: pipelines and runs are checked against them
            data = doc.data
            if isinstance(data, dict) and data.get("kind") == "Task" and is_resource(doc):
                self.tasks[(data.get("metadata") or {}).get("name", "")] = data.get("spec") or {}
        for doc in documents:
            if not isinstance(doc.data, dict):
                continue
            tekton_rules.check(self, doc)
            catlin_rules.check(self, doc)
            contract_rules.check(self, doc)
        return sorted(self.findings, key=lambda f: (str(f.path), f.line, f.rule))


def yaml_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.y*ml") if not p.name.startswith("artifacthub"))
        else:
            files.append(path)
    return files


def runtime_image(root: Path) -> str | None:
    pinned = root / "runtime-image.txt"
    return pinned.read_text().strip() if pinned.is_file() else None


def lint_tree(root: Path, paths: list[Path] | None = None) -> list[Finding]:
    """Lint ``paths`` (default: the whole catalog under ``root``)."""
    files = yaml_files(paths or [root])
    # Pipelines and runs are checked against every catalog Task, even when only they are named.
    context = [p for p in yaml_files([root]) if p not in files] if paths else []
    linter = Linter(root, runtime_image(root))
    findings = linter.lint(files + context)
    names = {str(f) for f in files}
    return [f for f in findings if str(f.path) in names]
