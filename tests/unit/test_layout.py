"""The house rules of DESIGN.md's dependency graph, checked on every import statement.

tekton/ (the model of Tekton's API) is below local/, catalog/, triggers/ and kfp/ and
imports none of them; none of those imports catalog/ (the executor never depends on
catalog tooling); a step never imports who runs it; no two modules import each other,
directly or in a longer circle (imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "runtime" / "tekton_mlops"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("tekton_mlops")}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: {i for i in imports(path) if i in MODULES} for name, path in MODULES.items()}


def _under(module: str, package: str) -> bool:
    return module == f"tekton_mlops.{package}" or module.startswith(f"tekton_mlops.{package}.")


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("tekton", ("local", "catalog", "triggers", "kfp", "steps")),
        ("local", ("catalog", "steps")),
        ("triggers", ("catalog", "steps")),
        ("kfp", ("catalog", "local")),
        ("steps", ("local", "catalog", "triggers", "kfp")),
        ("storage", ("steps", "local", "catalog")),
        ("tracking", ("steps", "local", "catalog", "triggers", "kfp", "storage", "ml")),
        # The dashboard reads the files runs leave; it never runs or changes anything.
        ("dashboard", ("local", "steps", "catalog", "triggers", "kfp", "storage", "ml", "deploy")),
        ("local", ("dashboard",)),
    ],
)
def test_dependencies_point_one_way(importer: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _under(module, importer)
        for target in targets
        if any(_under(target, package) for package in forbidden)
    )
    assert wrong == []


def test_no_import_circles() -> None:
    # A package's __init__ importing its own modules is not a circle between concerns.
    edges = {
        module: {t for t in targets if not module.startswith(t + ".")}
        for module, targets in GRAPH.items()
    }
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert circles == []
