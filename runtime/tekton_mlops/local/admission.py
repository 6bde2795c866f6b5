"""What Tekton's admission webhook would reject, said as the webhook says it.

The checks are the catalog linter's Tekton rules (references, param types, the
DAG, names, script and command), applied to the run's inline specs. Params a
run passes to an inline spec count as declared, because Tekton propagates them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

ADMISSION_RULES = frozenset(
    {
        "api-version",
        "name",
        "unique",
        "reference",
        "param-type",
        "run-after",
        "dag",
        "finally-only",
        "script-command",
        "step-image",
    }
)
WEBHOOK = 'admission webhook "validation.webhook.pipeline.tekton.dev" denied the request'


def _propagate(spec: dict[str, Any], given: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec with every value it is given declared, first one winning (as propagation does)."""
    declared = {p.get("name") for p in spec.get("params") or []}
    extra: list[dict[str, Any]] = []
    for param in given:
        if param.get("name") not in declared:
            declared.add(param.get("name"))
            extra.append({"name": param["name"], "type": _type(param.get("value"))})
    return {**spec, "params": [*(spec.get("params") or []), *extra]}


def _type(value: Any) -> str:
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"


def rejections(run: dict[str, Any], path: Path) -> list[str]:
    """Messages for everything the webhook would refuse in this run, or an empty list."""
    problems = []
    if run.get("apiVersion") != "tekton.dev/v1":
        problems.append(
            f"{run.get('kind')} must use apiVersion tekton.dev/v1, not {run.get('apiVersion')}"
        )
    spec = run.get("spec") or {}
    ref_key, spec_key = (
        ("taskRef", "taskSpec") if run.get("kind") == "TaskRun" else ("pipelineRef", "pipelineSpec")
    )
    if (ref_key in spec) == (spec_key in spec):
        problems.append(
            f"expected exactly one, got {'both' if ref_key in spec else 'neither'}: "
            f"spec.{ref_key}, spec.{spec_key}"
        )
    inline = copy.deepcopy(spec.get(spec_key))
    if isinstance(inline, dict):
        # Only inline specs need the linter; a run by reference skips its import cost.
        from tekton_mlops.catalog.lint import Linter
        from tekton_mlops.catalog.source import Document

        linter = Linter(path.parent, runtime_image=None)
        document = Document(path, run)
        given = spec.get("params") or []
        if spec_key == "taskSpec":
            linter.task(document, _propagate(inline, given), ("spec", spec_key))
        else:
            inline = _propagate(inline, given)
            # An embedded taskSpec sees what its pipeline task passes and the Pipeline's params.
            pipeline_params = [
                {
                    "name": p["name"],
                    "value": []
                    if p.get("type") == "array"
                    else {}
                    if p.get("type") == "object"
                    else "",
                }
                for p in inline.get("params") or []
            ]
            for group in ("tasks", "finally"):
                for task in inline.get(group) or []:
                    if isinstance(task.get("taskSpec"), dict):
                        passed = [*(task.get("params") or []), *pipeline_params]
                        task["taskSpec"] = _propagate(task["taskSpec"], passed)
            linter.pipeline(document, inline, ("spec", spec_key))
        problems += [f.message for f in linter.findings if f.rule in ADMISSION_RULES]
    return problems
