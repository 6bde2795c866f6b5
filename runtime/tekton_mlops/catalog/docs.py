"""``tekton-mlops catalog docs``: README tables and usage generated from the YAML and schema.

The part of a README above the marker line is generated: title, description,
install commands (``tkn hub``, git resolver, bundles resolver), the tables of
params, results and workspaces, and a PipelineRun that can be copied as is.
Everything below the marker is written by hand and kept. ``--check`` fails when
a README is not what the generator would write, so docs cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tekton_mlops.params import load_schema, step_names

MARKER = "<!-- Written by hand below this line; `tekton-mlops catalog docs` keeps it. -->"
REPOSITORY = "https://github.com/tekton-mlops/tekton-mlops"
HUB_REPOSITORY = {"task": "tekton-mlops-tasks", "pipeline": "tekton-mlops-pipelines"}
BUNDLE = "ghcr.io/tekton-mlops/catalog/{kind}s/{name}:{version}"
DEFAULT_HAND_WRITTEN = "\n## Additional info\n\nNothing yet.\n"


def resources(root: Path) -> Iterator[Path]:
    for kind in ("task", "pipeline"):
        yield from sorted((root / kind).glob("*/*/*.yaml"))


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _examples(resource: dict[str, Any]) -> dict[str, str]:
    """Example values of required params, from the step schema where there is one."""
    examples: dict[str, str] = {}
    for step in (resource.get("spec") or {}).get("steps") or []:
        command = step.get("command") or []
        if len(command) == 2 and command[1] in step_names():
            for name, prop in load_schema(command[1]).properties.items():
                if prop.get("examples"):
                    examples[name] = str(prop["examples"][0])
    return examples


def _usage(
    kind: str, name: str, version: str, spec: dict[str, Any], examples: dict[str, str]
) -> str:
    path = f"catalog/{kind}/{name}/{version}/{name}.yaml"
    required = [p for p in spec.get("params") or [] if "default" not in p]
    params = [
        {"name": p["name"], "value": examples.get(p["name"], f"<{p['name']}>")} for p in required
    ]
    resolver = {
        "resolver": "git",
        "params": [
            {"name": "url", "value": f"{REPOSITORY}.git"},
            {"name": "revision", "value": "main"},
            {"name": "pathInRepo", "value": path},
        ],
    }
    workspaces = [w for w in spec.get("workspaces") or [] if not w.get("optional")]
    claim = {
        "volumeClaimTemplate": {
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }
        }
    }
    if kind == "pipeline":
        run: dict[str, Any] = {
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {"generateName": f"{name}-"},
            "spec": {
                "pipelineRef": resolver,
                "params": params,
                "workspaces": [{"name": w["name"], **claim} for w in workspaces],
            },
        }
    else:
        shared = bool(workspaces)
        task: dict[str, Any] = {"name": name, "taskRef": resolver, "params": params}
        if shared:
            task["workspaces"] = [
                {"name": w["name"], "workspace": "shared", "subPath": w["name"]} for w in workspaces
            ]
        pipeline: dict[str, Any] = {"tasks": [task]}
        if shared:
            pipeline = {"workspaces": [{"name": "shared"}], **pipeline}
        run = {
            "apiVersion": "tekton.dev/v1",
            "kind": "PipelineRun",
            "metadata": {"generateName": f"{name}-"},
            "spec": {
                "pipelineSpec": pipeline,
                **({"workspaces": [{"name": "shared", **claim}]} if shared else {}),
            },
        }
    return yaml.safe_dump(run, sort_keys=False, width=100)


def generate(path: Path) -> str:
    """The README for one catalog resource, keeping its hand-written part."""
    resource = yaml.safe_load(path.read_text())
    kind = resource["kind"].lower()
    meta = resource["metadata"]
    spec = resource.get("spec") or {}
    name = meta["name"]
    version = meta["labels"]["app.kubernetes.io/version"]
    annotations = meta.get("annotations") or {}
    summary, _, body = str(spec.get("description", "")).strip().partition("\n\n")
    lines = [
        f"# {annotations.get('tekton.dev/displayName', name)} (`{name}` {version})",
        "",
        summary,
        "",
        " ".join(body.split()),
        "",
        f"Kind: {resource['kind']} · version {version} · Tekton Pipelines >= "
        f"{annotations.get('tekton.dev/pipelines.minVersion')} · platforms "
        f"{annotations.get('tekton.dev/platforms', '').replace(',', ', ')} · "
        f"categories: {annotations.get('tekton.dev/categories')}",
        "",
        "## Install",
        "",
        "From Artifact Hub:",
        "",
        "```sh",
        f"tkn hub install {kind} {name} --type artifact --from {HUB_REPOSITORY[kind]} "
        f"--version {version}.0",
        "```",
        "",
        "Or reference it without installing, through the git resolver:",
        "",
        "```yaml",
        f"{kind}Ref:",
        "  resolver: git",
        "  params:",
        "    - {name: url, value: " + REPOSITORY + ".git}",
        "    - {name: revision, value: main}  # pin a release tag or commit",
        f"    - {{name: pathInRepo, value: catalog/{kind}/{name}/{version}/{name}.yaml}}",
        "```",
        "",
        "or through the bundles resolver, from the OCI bundle each release publishes:",
        "",
        "```yaml",
        f"{kind}Ref:",
        "  resolver: bundles",
        "  params:",
        "    - {name: bundle, value: " + BUNDLE.format(kind=kind, name=name, version=version) + "}",
        f"    - {{name: name, value: {name}}}",
        f"    - {{name: kind, value: {kind}}}",
        "```",
        "",
        "## Parameters",
        "",
        "| name | description | default |",
        "| --- | --- | --- |",
    ]
    for param in spec.get("params") or []:
        default = (
            f"`{param['default']}`"
            if param.get("default") not in (None, "")
            else ('`""`' if "default" in param else "(required)")
        )
        lines.append(
            f"| `{param['name']}` | {_cell(param.get('description', ''))} | {_cell(default)} |"
        )
    lines += ["", "## Results", "", "| name | type | description |", "| --- | --- | --- |"]
    for result in spec.get("results") or []:
        kind_text = result.get("type", "string")
        if kind_text == "object":
            kind_text = "object (" + ", ".join(result.get("properties") or {}) + ")"
        lines.append(
            f"| `{result['name']}` | {kind_text} | {_cell(result.get('description', ''))} |"
        )
    lines += [
        "",
        "## Workspaces",
        "",
        "| name | description | optional | read only |",
        "| --- | --- | --- | --- |",
    ]
    for workspace in spec.get("workspaces") or []:
        lines.append(
            f"| `{workspace['name']}` | {_cell(workspace.get('description', ''))} | "
            f"{'yes' if workspace.get('optional') else 'no'} | "
            f"{'yes' if workspace.get('readOnly') else 'no'} |"
        )
    if kind == "pipeline":
        from tekton_mlops.catalog.diagrams import pipeline_flowchart

        lines += [
            "",
            "## Graph",
            "",
            "Solid arrows are `runAfter`, dotted ones the results a task reads; a task's `when`",
            "gate is written under its name; `finally` runs after every task.",
            "",
            "```mermaid",
            pipeline_flowchart(spec),
            "```",
        ]
    lines += [
        "",
        "## Usage",
        "",
        "A PipelineRun that resolves this " + kind + " from git; copy it and fill in the values:",
        "",
        "```yaml",
        _usage(kind, name, version, spec, _examples(resource)).rstrip(),
        "```",
        "",
    ]
    samples = sorted((path.parent / "samples").glob("*.yaml"))
    if samples:
        lines += [
            "More examples: " + ", ".join(f"[{s.name}](samples/{s.name})" for s in samples) + ".",
            "",
        ]
    readme = path.parent / "README.md"
    hand = DEFAULT_HAND_WRITTEN
    if readme.is_file() and MARKER in readme.read_text():
        hand = readme.read_text().split(MARKER, 1)[1]
    return "\n".join(lines) + "\n" + MARKER + hand


FLOW_BEGIN = "<!-- flow:begin (generated by `tekton-mlops catalog docs`) -->"
FLOW_END = "<!-- flow:end -->"


def trigger_readme(path: Path) -> str | None:
    """A trigger's hand-written README with its generated flow diagram between the markers;
    None when the README has no markers."""
    from tekton_mlops.catalog.diagrams import trigger_flowchart

    readme = path.parent / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    if FLOW_BEGIN not in text or FLOW_END not in text:
        return None
    documents = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    head, rest = text.split(FLOW_BEGIN, 1)
    tail = rest.split(FLOW_END, 1)[1]
    block = f"\n```mermaid\n{trigger_flowchart(documents)}\n```\n"
    return head + FLOW_BEGIN + block + FLOW_END + tail


def sync(root: Path, check: bool) -> list[Path]:
    """Write (or, with check, only compare) every README; return the ones that differ."""
    stale = []
    for path in resources(root):
        readme = path.parent / "README.md"
        wanted = generate(path)
        if not readme.is_file() or readme.read_text() != wanted:
            stale.append(readme)
            if not check:
                readme.write_text(wanted)
    for path in sorted((root / "trigger").glob("*/*/*.yaml")):
        readme = path.parent / "README.md"
        flowing = trigger_readme(path)
        if flowing is not None and readme.read_text() != flowing:
            stale.append(readme)
            if not check:
                readme.write_text(flowing)
    return stale
