"""The lint rules: one identifier each, what it checks, and where it comes from."""

from __future__ import annotations

RULES: dict[str, str] = {
    "yaml": "the file parses as YAML",
    # (a) what Tekton refuses when the document is applied (tekton_mlops.tekton)
    "decode": "strict decoding: no unknown fields, values of the declared JSON types",
    "name": "names are valid (DNS-1123 for tasks and steps; Tekton's patterns for params and "
    "results)",
    "unique": "params, steps, workspaces, volumes, pipeline tasks and bindings are unique",
    "reference": "variables Tekton checks resolve: params, task and pipeline context, results in "
    "scripts, workspaces bound by pipeline tasks, pipeline results",
    "param-type": "param types and defaults agree; arrays only where a list fits, isolated",
    "run-after": "runAfter and result references name existing tasks; none in finally",
    "dag": "the pipeline tasks form no cycle (runAfter and result references)",
    "finally-only": "$(tasks.status), $(tasks.<t>.status) and .reason only inside finally",
    "script-command": "a step has script or command, not both",
    "step-image": "every step has an image (or a StepAction ref, and then nothing it replaces)",
    "on-error": "onError is continue or stopAndFail (and not continue with retries)",
    "volume-mount": "volumes are not mounted under /tekton/ nor named tekton-internal-*",
    "feature-gate": "fields behind a feature flag are used only when the flag is on",
    "timeout": "timeouts are not negative and tasks + finally fit in the pipeline timeout",
    # (b) catlin's rules
    "api-version": "Tasks, Pipelines and runs use tekton.dev/v1",
    "layout": "a version directory has README.md, samples/*.yaml, tests/run.yaml; "
    "the resource has CHANGELOG.md",
    "path": "<kind>/<name>/<version>/<name>.yaml with name == directory == file stem, "
    "version label == directory",
    "metadata": "version label, minVersion, categories, displayName, tags, platforms are set",
    "category": "tekton.dev/categories come from the Tekton Hub list",
    "description": "spec.description is a summary line, a blank line, then the body",
    "image": "images are fully qualified and pinned as repo:tag@sha256:<digest>, never latest",
    "platforms": "tekton.dev/platforms entries are os/arch",
    "min-version": "minVersion is X.Y.Z without a leading v",
    "script-params": "no $(params…) inside a script",
    # (c) this project's contract, and references stricter than Tekton's
    "schema-params": "a Task's params equal its step's JSON Schema (names, types, defaults, "
    "descriptions); path params come from workspaces",
    "schema-args": "each schema property reaches the step as --name=$(params.name) or "
    "--name=$(workspaces.<w>.path)",
    "param-used": "every declared param is used",
    "param-access": "[*] and [i] only on array params, .key only on object params with that key",
    "catalog-reference": "every $(params…), $(results…), $(workspaces…), $(context…) resolves in "
    "every field, and a pipeline task reads only results its Task declares",
    "results-match": "the Task's results are the results its step writes (names and types)",
    "results-budget": "the results' largest sizes fit Tekton's 4096-byte budget",
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
