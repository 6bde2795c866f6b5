"""``tekton-mlops run``: a TaskRun or PipelineRun file, executed here with Tekton's semantics."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from tekton_mlops.yamlio import dump, load_all

RUN_KINDS = ("TaskRun", "PipelineRun")


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not {what}=VALUE")
        pairs[key] = value
    return pairs


class Log:
    """Progress lines with elapsed time, safe from several task threads."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            click.echo(f"[{time.monotonic() - self.start:7.1f}s] {line}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json", "none"]),
    default="yaml",
    show_default=True,
    help="Print the finished run as kubectl get -o would.",
)
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a run param (repeatable).",
)
@click.option(
    "--workspace",
    "-w",
    "workspace_dirs",
    multiple=True,
    metavar="NAME=DIR",
    help="Bind a workspace to a local directory (repeatable).",
)
@click.option(
    "--runner",
    type=click.Choice(["process", "podman"]),
    default="process",
    show_default=True,
    help="process: steps run on this machine, the runtime image being this install; "
    "podman: each step in its own container, from local images only.",
)
@click.option(
    "--image-map",
    "image_maps",
    multiple=True,
    metavar="REF=LOCAL",
    help="podman: run the local image LOCAL wherever a step names REF (repeatable). The "
    "catalog's pinned runtime image maps to the one `make image` builds.",
)
@click.option(
    "--secrets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Secrets and ConfigMaps as DIR/<name>/<key> files.",
)
@click.option(
    "--catalog",
    "catalogs",
    multiple=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Apply every Task and Pipeline under this directory first (repeatable).",
)
@click.option(
    "--git-mirror",
    "mirrors",
    multiple=True,
    metavar="URL=PATH",
    help="Serve a git resolver URL from a local repository (repeatable).",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".tekton-mlops/runs"),
    show_default=True,
    help="Where each run keeps its logs, results and workspaces.",
)
def run(
    file: Path,
    output: str,
    params: tuple[str, ...],
    workspace_dirs: tuple[str, ...],
    runner: str,
    image_maps: tuple[str, ...],
    secrets_dir: Path | None,
    catalogs: tuple[Path, ...],
    mirrors: tuple[str, ...],
    run_dir: Path,
) -> None:
    """Run a tekton.dev/v1 TaskRun or PipelineRun from FILE on this machine.

    Other documents in FILE (Tasks, Pipelines, StepActions, ConfigMaps, Secrets) are applied
    first. Exit 0 when the run succeeded, 1 when it failed, 2 when Tekton would reject it.
    """
    from tekton_mlops.local.cluster import Cluster
    from tekton_mlops.tekton.admission import admit, rejection

    documents = [d for d in load_all(file.read_text()) if isinstance(d, dict)]
    runs = [d for d in documents if d.get("kind") in RUN_KINDS]
    if len(runs) != 1:
        click.echo(
            f"error: {file} must hold exactly one TaskRun or PipelineRun, found {len(runs)}",
            err=True,
        )
        sys.exit(2)
    resource = runs[0]
    if resource.get("apiVersion") != "tekton.dev/v1":
        click.echo(
            f"error: {file}: the local executor runs tekton.dev/v1 TaskRuns and PipelineRuns; "
            f"this {resource.get('kind')} is {resource.get('apiVersion')}",
            err=True,
        )
        sys.exit(2)
    # Everything in the file is applied as `kubectl apply` would: refused documents stop the run.
    for document in documents:
        problems = admit(document)
        if problems:
            name = (document.get("metadata") or {}).get("name", "")
            click.echo(f"error: {document.get('kind')} {name}: {rejection(problems)}", err=True)
            sys.exit(2)

    cluster = Cluster(
        secrets_dir=secrets_dir, git_mirrors={u: Path(p) for u, p in _pairs(mirrors, "URL").items()}
    )
    for catalog in catalogs:
        cluster.apply_tree(catalog)
    for document in documents:
        if document is not resource:
            cluster.apply(document)

    meta = resource.setdefault("metadata", {})
    if not meta.get("name"):
        meta["name"] = (meta.get("generateName") or "run-") + os.urandom(3).hex()[:5]
    overrides = _pairs(params, "NAME")
    spec = resource.setdefault("spec", {})
    given = {p["name"]: p for p in spec.get("params") or []}
    for name, value in overrides.items():
        given[name] = {"name": name, "value": value}
    spec["params"] = list(given.values())

    log = Log()
    here = (run_dir / meta["name"]).resolve()
    here.mkdir(parents=True, exist_ok=True)
    step_runner = make_runner(runner, _pairs(image_maps, "REF"))
    durations: dict[str, float] = {}
    finished, ok = execute(
        resource,
        cluster,
        step_runner,
        here,
        _pairs(workspace_dirs, "NAME"),
        log,
        durations,
        tuple(overrides),
    )
    (here / f"{resource['kind'].lower()}.yaml").write_text(dump(finished))
    summarize(finished, here, durations, log)
    if output == "yaml":
        click.echo(dump(finished), nl=False)
    elif output == "json":
        click.echo(json.dumps(finished, indent=2))
    sys.exit(0 if ok else 1)


def make_runner(kind: str, image_map: dict[str, str]) -> Any:
    from tekton_mlops import __version__
    from tekton_mlops.local.runner import ProcessRunner

    if kind == "process":
        return ProcessRunner(lambda line: None)
    from tekton_mlops.local.podman import PodmanRunner

    defaults = {}
    for pinned in (
        Path("catalog/runtime-image.txt"),
        Path(__file__).resolve().parents[3] / "catalog" / "runtime-image.txt",
    ):
        if pinned.is_file():
            defaults[pinned.read_text().strip()] = f"localhost/tekton-mlops-runtime:{__version__}"
    return PodmanRunner(lambda line: None, defaults | image_map)


def execute(
    resource: dict[str, Any],
    cluster: Any,
    step_runner: Any,
    here: Path,
    local_dirs: dict[str, str],
    log: Log,
    durations: dict[str, float],
    overrides: tuple[str, ...] = (),
) -> tuple[dict[str, Any], bool]:
    from tekton_mlops.local.cluster import ResolutionError
    from tekton_mlops.local.pipelinerun import PipelineRunExecutor
    from tekton_mlops.local.status import condition
    from tekton_mlops.local.taskrun import TaskRunExecutor, TaskRunPlan
    from tekton_mlops.local.workspaces import bind_workspaces
    from tekton_mlops.tekton.durations import parse_duration, timestamp

    spec = resource["spec"]
    name = resource["metadata"]["name"]
    taskruns = TaskRunExecutor(cluster, step_runner, here, log)
    taskruns.durations = durations  # filled as TaskRuns finish, read by the summary
    kind = resource["kind"]
    log(f"{kind} {name} started (logs in {here})")
    try:
        workspaces = bind_workspaces(spec.get("workspaces") or [], local_dirs, cluster, here)
        if kind == "TaskRun":
            if "taskSpec" in spec:
                task_spec, task_name = spec["taskSpec"], name
            else:
                task = cluster.resolve("Task", spec["taskRef"])
                task_spec, task_name = task.get("spec") or {}, task["metadata"]["name"]
        else:
            pipeline_spec = (
                spec["pipelineSpec"]
                if "pipelineSpec" in spec
                else cluster.resolve("Pipeline", spec["pipelineRef"]).get("spec") or {}
            )
        resolved = task_spec if kind == "TaskRun" else pipeline_spec
        warn_undeclared(overrides, resolved, kind)
    except ResolutionError as exc:
        now = time.time()
        resource["status"] = {
            "startTime": timestamp(now),
            "completionTime": timestamp(now),
            "conditions": [condition("False", exc.reason, str(exc), now)],
        }
        return resource, False
    if kind == "PipelineRun":
        return PipelineRunExecutor(cluster, taskruns, here, log).execute(
            resource, pipeline_spec, workspaces
        )
    plan = TaskRunPlan(
        name=name,
        task_name=task_name,
        spec=task_spec,
        params={p["name"]: p["value"] for p in spec.get("params") or []},
        workspaces=workspaces,
        timeout=parse_duration(spec.get("timeout", "1h")),
        run_spec=spec,
        by_reference="taskRef" in spec,
    )
    outcome = taskruns.execute(plan)
    resource["status"] = outcome.object["status"]
    return resource, outcome.succeeded


def warn_undeclared(names: tuple[str, ...], spec: dict[str, Any], kind: str) -> None:
    """A --param the Pipeline or Task does not declare is passed on, as Tekton does, with a
    warning that names the closest declared param (a typo is the usual cause)."""
    import difflib

    declared = [str(p.get("name")) for p in spec.get("params") or []]
    what = "Pipeline" if kind == "PipelineRun" else "Task"
    for name in names:
        if name in declared:
            continue
        close = difflib.get_close_matches(name, declared, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        click.echo(f"warning: --param {name}: the {what} declares no such param{hint}", err=True)


def summarize(finished: dict[str, Any], here: Path, durations: dict[str, float], log: Log) -> None:
    """The closing table: every task with its TaskRun, status, reason and duration."""
    status = finished.get("status", {})
    condition = (status.get("conditions") or [{}])[0]
    rows = [("TASK", "TASKRUN", "STATUS", "REASON", "DURATION")]
    if finished["kind"] == "PipelineRun":
        for child in status.get("childReferences") or []:
            saved = here / child["name"] / "taskrun.yaml"
            child_condition = (
                json.loads(saved.read_text())["status"]["conditions"][0] if saved.is_file() else {}
            )
            rows.append(
                (
                    child["pipelineTaskName"],
                    child["name"],
                    _word(child_condition),
                    child_condition.get("reason", "-"),
                    f"{durations.get(child['name'], 0.0):.2f}s",
                )
            )
        for skipped in status.get("skippedTasks") or []:
            rows.append((skipped["name"], "-", "Skipped", skipped["reason"], "-"))
    else:
        name = finished["metadata"]["name"]
        rows.append(
            (
                name,
                name,
                _word(condition),
                condition.get("reason", "-"),
                f"{durations.get(name, 0.0):.2f}s",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        log(
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[4]
        )
    log(
        f"{finished['kind']} {finished['metadata']['name']}: "
        f"{condition.get('reason')} ({condition.get('message')})"
    )
    for result in status.get("results") or []:
        value = result["value"] if isinstance(result["value"], str) else json.dumps(result["value"])
        log(f"  result {result['name']} = {value}")
    # Logs exist only for TaskRuns whose pod ran; a run refused before that has none.
    started = sorted(p.parent.name for p in here.glob("*/logs") if any(p.iterdir()))
    if len(started) == 1:
        log(f"  logs: {here / started[0] / 'logs'}/")
    elif started:
        log(f"  logs: {here}/<taskrun>/logs/ ({len(started)} TaskRuns)")


def _word(condition: dict[str, Any]) -> str:
    return {"True": "Succeeded", "False": "Failed"}.get(condition.get("status", ""), "Unknown")
