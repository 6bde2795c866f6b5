"""Mermaid diagrams of a Pipeline's graph and a Trigger's flow, for the generated READMEs.

GitHub and Artifact Hub render ```` ```mermaid ```` blocks. A Pipeline becomes a
flowchart: one node per task, a solid arrow for ``runAfter``, a dotted arrow labelled
with the results a task reads from another, a ``when`` gate written under the task it
guards, and ``finally`` tasks in a box of their own that runs after everything. A
Trigger becomes its path: event, interceptors in order, binding, template, and what the
template creates.

Example::

    print(pipeline_flowchart(yaml.safe_load(open("train-and-deploy.yaml"))["spec"]))
"""

from __future__ import annotations

import re
from typing import Any

from tekton_mlops.tekton.pipeline_rules import RESULT_REF
from tekton_mlops.tekton.variables import references

_UNSAFE = re.compile(r'["\[\]{}()<>|#;`]')


def _id(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _text(value: Any) -> str:
    """A label Mermaid reads literally (its syntax characters dropped)."""
    return _UNSAFE.sub("", " ".join(str(value).split()))


def _subject(text: str) -> str:
    """``$(tasks.evaluate-model.results.passed)`` -> ``evaluate-model.passed``;
    ``$(params.deploy-target)`` -> ``deploy-target``; anything else as written."""
    match = re.fullmatch(r"\$\((.+)\)", text.strip())
    if not match:
        return text or "empty"
    parts = match.group(1).split(".")
    if parts[0] == "tasks" and len(parts) >= 3:
        return f"{parts[1]}.{parts[-1]}"
    return parts[-1]


def _gate(task: dict[str, Any]) -> str:
    parts = []
    for when in task.get("when") or []:
        values = ", ".join(str(v) if str(v) else "empty" for v in when.get("values") or [])
        subject = _subject(str(when.get("input", "")))
        parts.append(f"{subject} {when.get('operator', 'in')} {values}")
    return "when " + " and ".join(parts) if parts else ""


def _node(task: dict[str, Any]) -> str:
    name = str(task.get("name"))
    gate = _gate(task)
    label = _text(name) + (f"<br/><i>{_text(gate)}</i>" if gate else "")
    return f'    {_id(name)}["{label}"]'


def _reads(task: dict[str, Any]) -> dict[str, list[str]]:
    """Results a task reads, by the task they come from."""
    scanned = {k: v for k, v in task.items() if k not in ("name", "runAfter", "displayName")}
    found: dict[str, list[str]] = {}
    for expression in references(scanned):
        match = RESULT_REF.match(expression)
        if match and match.group(1) == "tasks" and match.group(3) == "results":
            result = expression.split(".results.", 1)[1].split(".")[0].split("[")[0]
            found.setdefault(match.group(2), [])
            if result not in found[match.group(2)]:
                found[match.group(2)].append(result)
    return found


def pipeline_flowchart(spec: dict[str, Any]) -> str:
    tasks = spec.get("tasks") or []
    finals = spec.get("finally") or []
    known = {str(t.get("name")) for t in tasks}
    lines = ["flowchart TD"]
    lines += [_node(task) for task in tasks]
    for task in tasks:
        name = str(task.get("name"))
        reads = _reads(task)
        for previous in task.get("runAfter") or []:
            if previous in known and previous not in reads:
                lines.append(f"    {_id(str(previous))} --> {_id(name)}")
        for source, results in reads.items():
            if source in known:
                label = _text(", ".join(results))
                lines.append(f"    {_id(source)} -. {label} .-> {_id(name)}")
    if finals:
        lines.append('    subgraph finally["finally (after every task, whatever happened)"]')
        lines += ["  " + _node(task) for task in finals]
        lines.append("    end")
        leaves = [t for t in tasks if not any(str(t.get("name")) in _after(u) for u in tasks)]
        for leaf in leaves:
            lines.append(f"    {_id(str(leaf.get('name')))} --> finally")
    return "\n".join(lines)


def _after(task: dict[str, Any]) -> set[str]:
    return {str(n) for n in task.get("runAfter") or []} | set(_reads(task))


def trigger_flowchart(documents: list[dict[str, Any]]) -> str:
    """Each EventListener's path from an event to the resources it creates."""
    bindings = {
        str(d["metadata"]["name"]): d
        for d in documents
        if d.get("kind") in ("TriggerBinding", "ClusterTriggerBinding")
    }
    templates = {
        str(d["metadata"]["name"]): d for d in documents if d.get("kind") == "TriggerTemplate"
    }
    lines = ["flowchart LR"]
    for listener in (d for d in documents if d.get("kind") == "EventListener"):
        name = str(listener["metadata"]["name"])
        for index, trigger in enumerate((listener.get("spec") or {}).get("triggers") or []):
            prefix = _id(f"{name}_{index}")
            lines.append(f'    {prefix}_event(["{_text(name)}: webhook event"])')
            for number, (job, schedule) in enumerate(_posting_to(name, documents)):
                lines.append(f'    {prefix}_cron{number}[/"CronJob {job}<br/><i>{schedule}</i>"/]')
                lines.append(f"    {prefix}_cron{number} -- posts --> {prefix}_event")
            previous = f"{prefix}_event"
            for number, interceptor in enumerate(trigger.get("interceptors") or []):
                kind = _text((interceptor.get("ref") or {}).get("name", "interceptor"))
                detail = _interceptor_detail(interceptor)
                node = f"{prefix}_i{number}"
                lines.append(f'    {node}{{"{kind}<br/><i>{_text(detail)}</i>"}}')
                lines.append(f"    {previous} --> {node}")
                previous = node
            for binding in trigger.get("bindings") or []:
                ref = str(binding.get("ref", binding.get("name", "binding")))
                params = (bindings.get(ref, {}).get("spec") or {}).get("params") or []
                shown = ", ".join(str(p.get("name")) for p in params) or ref
                node = f"{prefix}_b_{_id(ref)}"
                lines.append(f'    {node}["binding {_text(ref)}<br/><i>{_text(shown)}</i>"]')
                lines.append(f"    {previous} -- passed --> {node}")
                previous = node
            ref = str((trigger.get("template") or {}).get("ref", "template"))
            node = f"{prefix}_t"
            lines.append(f'    {node}["template {_text(ref)}"]')
            lines.append(f"    {previous} --> {node}")
            for number, created in enumerate(
                (templates.get(ref, {}).get("spec") or {}).get("resourcetemplates") or []
            ):
                target = (created.get("spec") or {}).get("pipelineRef") or {}
                what = _created(created, target)
                lines.append(f'    {node}_{number}[("{_text(what)}")]')
                lines.append(f"    {node} -- creates --> {node}_{number}")
    return "\n".join(lines)


def _posting_to(listener: str, documents: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, schedule) of each CronJob whose containers name the listener's Service
    (``el-<listener>``): Triggers has no schedules, a CronJob posting events is one."""
    found = []
    service = re.compile(rf"//el-{re.escape(listener)}[.:/]")
    for job in (d for d in documents if d.get("kind") == "CronJob"):
        spec = job.get("spec") or {}
        pod = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get(
            "spec"
        ) or {}
        words = [
            str(w)
            for c in pod.get("containers") or []
            for w in [*(c.get("command") or []), *(c.get("args") or [])]
        ]
        if any(service.search(w) for w in words):
            found.append((_text(job["metadata"]["name"]), _text(spec.get("schedule", ""))))
    return found


def _interceptor_detail(interceptor: dict[str, Any]) -> str:
    params = {str(p.get("name")): p.get("value") for p in interceptor.get("params") or []}
    if "eventTypes" in params:
        return "events " + ", ".join(str(e) for e in params["eventTypes"] or [])
    if "filter" in params:
        text = str(params["filter"])
        return text if len(text) <= 60 else text[:57] + "..."
    return ""


def _created(resource: dict[str, Any], reference: dict[str, Any]) -> str:
    kind = str(resource.get("kind", "resource"))
    pipeline = ""
    for param in reference.get("params") or []:
        if param.get("name") == "pathInRepo":
            pipeline = str(param.get("value", "")).rsplit("/", 1)[-1].removesuffix(".yaml")
    pipeline = pipeline or str(reference.get("name", ""))
    return f"{kind} of {pipeline}" if pipeline else kind
