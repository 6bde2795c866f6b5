"""The lint rules: one identifier each, what it checks, and where it comes from."""

from __future__ import annotations

RULES: dict[str, str] = {
    # (a) structure
    "yaml": "the file parses as YAML",
    "api-version": "Tasks, Pipelines and runs use tekton.dev/v1",
    "layout": "a version directory has README.md, samples/*.yaml, tests/run.yaml; "
    "the resource has CHANGELOG.md",
    # (b) what Tekton's admission webhook checks
    "name": "names are valid (DNS-1123 for resources, steps, tasks, workspaces; "
    "Tekton's patterns for params and results)",
    "unique": "params, results, workspaces, steps and pipeline tasks have unique names",
    "reference": "every $(params…), $(results…), $(workspaces…), $(tasks…), $(context…) resolves",
    "param-type": "[*] only on array params, .key only on object params with that key",
    "run-after": "runAfter names an existing pipeline task, not itself, not in finally",
    "dag": "the pipeline tasks form no cycle (runAfter and result references)",
    "finally-only": "$(tasks.status) and $(tasks.<t>.status) only inside finally",
    "script-command": "a step has script or command, not both",
    "step-image": "every step names its image",
    # (c) catlin's rules
    "path": "<kind>/<name>/<version>/<name>.yaml with name == directory == file stem, "
    "version label == directory",
    "metadata": "version label, minVersion, categories, displayName, tags, platforms are set",
    "category": "tekton.dev/categories come from the Tekton Hub list",
    "description": "spec.description is a summary line, a blank line, then the body",
    "image": "images are fully qualified and pinned as repo:tag@sha256:<digest>, never latest",
    "platforms": "tekton.dev/platforms entries are os/arch",
    "min-version": "minVersion is X.Y.Z without a leading v",
    # (d) this project's rules
    "schema-params": "a Task's params equal its step's JSON Schema (names, types, defaults, "
    "descriptions); path params come from workspaces",
    "schema-args": "each schema property reaches the step as --name=$(params.name) or "
    "--name=$(workspaces.<w>.path)",
    "param-used": "every declared param is used",
    "results-match": "the Task's results are the results its step writes (names and types)",
    "results-budget": "the results' largest sizes fit Tekton's 4096-byte budget",
    "script-params": "no $(params…) inside a script",
    "security-context": "every step runs as 65532, non-root, without privilege escalation, "
    "with all capabilities dropped",
    "compute-resources": "every step requests cpu and memory and limits memory",
    "runtime-image": "every tekton-mlops step uses the one pinned runtime image",
    "step-command": "a runtime step's command is [tekton-mlops, <known step>]",
    "run-params": "samples and tests pass only params the referenced catalog resource declares",
}

#: tekton.dev/categories values the Tekton Hub (and so catlin) accepts.
HUB_CATEGORIES = frozenset(
    {
        "Automation",
        "Build Tools",
        "CLI",
        "Cloud",
        "Code Quality",
        "Continuous Integration",
        "Deployment",
        "Developer Tools",
        "Image Build",
        "Integration & Delivery",
        "Git",
        "Kubernetes",
        "Messaging",
        "Monitoring",
        "Networking",
        "Openshift",
        "Publishing",
        "Security",
        "Storage",
        "Testing",
    }
)
