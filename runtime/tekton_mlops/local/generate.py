"""Generated PipelineRuns of trivial tasks, to measure the executor under load.

Shapes: a chain (each task after the previous), a fan-out (all independent), a matrix
(one task over N combinations) and a layered DAG whose tasks pass a result down. Each
task is one bash step; the tests and ``make bench`` run the same shapes.

Example::

    text = chain(100)   # YAML of a PipelineRun with 100 tasks in a row
"""

from __future__ import annotations

from typing import Any

import yaml

STEP = {"name": "s", "image": "bash", "script": "true"}


def _run(
    name: str, tasks: list[dict[str, Any]], results: list[dict[str, Any]] | None = None
) -> str:
    spec: dict[str, Any] = {"tasks": tasks}
    if results:
        spec["results"] = results
    document = {
        "apiVersion": "tekton.dev/v1",
        "kind": "PipelineRun",
        "metadata": {"name": name},
        "spec": {"pipelineSpec": spec},
    }
    return yaml.safe_dump(document, sort_keys=False)


def chain(size: int) -> str:
    tasks = [
        {
            "name": f"t{i}",
            "taskSpec": {"steps": [STEP]},
            **({"runAfter": [f"t{i - 1}"]} if i else {}),
        }
        for i in range(size)
    ]
    return _run(f"chain-{size}", tasks)


def fan_out(size: int) -> str:
    return _run(
        f"fan-{size}", [{"name": f"t{i}", "taskSpec": {"steps": [STEP]}} for i in range(size)]
    )


def matrix(size: int) -> str:
    task = {
        "name": "each",
        "matrix": {"params": [{"name": "n", "value": [str(i) for i in range(size)]}]},
        "taskSpec": {
            "params": [{"name": "n"}],
            "results": [{"name": "out"}],
            "steps": [
                {"name": "s", "image": "bash", "script": "printf $(params.n) > $(results.out.path)"}
            ],
        },
    }
    return _run(
        f"matrix-{size}", [task], [{"name": "all", "value": "$(tasks.each.results.out[*])"}]
    )


def layered(levels: int, width: int = 2) -> str:
    """``levels`` layers of ``width`` tasks; each adds one to the value it reads from the layer
    above, so the last layer's result is the number of levels."""
    tasks = []
    for level in range(levels):
        for column in range(width):
            name = f"l{level}-{column}"
            if level == 0:
                source, runs_after = "0", {}
            else:
                source = f"$(tasks.l{level - 1}-{column}.results.n)"
                runs_after = {"runAfter": [f"l{level - 1}-{c}" for c in range(width)]}
            tasks.append(
                {
                    "name": name,
                    **runs_after,
                    "params": [{"name": "n", "value": source}],
                    "taskSpec": {
                        "params": [{"name": "n"}],
                        "results": [{"name": "n"}],
                        "steps": [
                            {
                                "name": "s",
                                "image": "bash",
                                "script": "printf $(( $(params.n) + 1 )) > $(results.n.path)",
                            }
                        ],
                    },
                }
            )
    last = f"l{levels - 1}-0"
    return _run(
        f"layered-{levels}", tasks, [{"name": "depth", "value": f"$(tasks.{last}.results.n)"}]
    )
