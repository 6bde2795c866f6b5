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

from tekton_mlops.storage.publish import atomic_write_text
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
@click.option(
    "--feature-flags",
    "flags_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tekton's feature-flags ConfigMap (YAML), e.g. results-from: sidecar-logs. A "
    "ConfigMap named feature-flags in FILE works too; Tekton's defaults otherwise.",
)
@click.option(
    "--pass-env",
    "pass_env",
    multiple=True,
    metavar="NAME",
    help="process runner: pass this variable of your environment to every step "
    "(repeatable), e.g. AWS_PROFILE; steps otherwise see only what Tekton sets.",
)
@click.option(
    "--host-path",
    "host_paths",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Share a directory of this machine with every step, read-write at the same path, "
    "as a hostPath volume would (repeatable): local data, a file:// model store. Steps see "
    "the rest of the machine read-only and /tmp as their own.",
)
@click.option(
    "--parallelism",
    type=click.IntRange(min=1),
    default=None,
    help="How many TaskRuns run at once, as a cluster's capacity would allow; the rest wait "
    "as Pending. Default: 4 per core.",
)
@click.option(
    "--require-confinement",
    is_flag=True,
    help="process runner: fail when steps cannot run in their own mount namespace "
    "(bubblewrap), instead of running them unconfined with a warning.",
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
    flags_file: Path | None,
    pass_env: tuple[str, ...],
    host_paths: tuple[Path, ...],
    parallelism: int | None,
    require_confinement: bool,
) -> None:
    """Run the tekton.dev/v1 TaskRuns and PipelineRuns in FILE on this machine.

    Other documents in FILE (Tasks, Pipelines, StepActions, ConfigMaps, Secrets) are applied
    first, as `kubectl create -f` would; several runs in one file run side by side. Exit 0
    when every run succeeded, 1 when one failed, 2 when Tekton would reject the file.
    """
    from tekton_mlops.local.cluster import Cluster
    from tekton_mlops.tekton.admission import admit, rejection
    from tekton_mlops.tekton.flags import CONFIG_MAP, FeatureFlags, FlagError

    _die_with_parent()
    documents = [d for d in load_all(file.read_text()) if isinstance(d, dict)]
    runs = [d for d in documents if d.get("kind") in RUN_KINDS]
    if not runs:
        click.echo(f"error: {file} holds no TaskRun or PipelineRun", err=True)
        sys.exit(2)
    for resource in runs:
        if resource.get("apiVersion") != "tekton.dev/v1":
            click.echo(
                f"error: {file}: the local executor runs tekton.dev/v1 TaskRuns and PipelineRuns;"
                f" this {resource.get('kind')} is {resource.get('apiVersion')}",
                err=True,
            )
            sys.exit(2)
    try:
        flags = _feature_flags(flags_file, documents, CONFIG_MAP, FeatureFlags)
    except FlagError as exc:
        click.echo(f"error: feature flags: {exc}", err=True)
        sys.exit(2)
    # Everything in the file is admitted as `kubectl create` would: a refusal stops it all.
    for document in documents:
        problems = admit(document, flags)
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
        if document.get("kind") not in RUN_KINDS:
            cluster.apply(document)

    overrides = _pairs(params, "NAME")
    for resource in runs:
        meta = resource.setdefault("metadata", {})
        if not meta.get("name"):
            meta["name"] = (meta.get("generateName") or "run-") + os.urandom(3).hex()[:5]
        spec = resource.setdefault("spec", {})
        given = {p["name"]: p for p in spec.get("params") or []}
        for name, value in overrides.items():
            given[name] = {"name": name, "value": value}
        spec["params"] = list(given.values())

    log = Log()
    shared = tuple(_host_path(p) for p in host_paths)
    step_runner = make_runner(runner, _pairs(image_maps, "REF"), pass_env, shared)
    if runner == "process" and not step_runner.pod_paths:
        if require_confinement:
            click.echo(
                "error: steps cannot run in their own mount namespace here (install "
                "bubblewrap, or allow unprivileged user namespaces)",
                err=True,
            )
            sys.exit(2)
        log("warning: steps are not confined (no mount namespace: install bubblewrap); they "
            "run as processes of this user and see this machine's files")  # fmt: skip

    def one(resource: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        here = (run_dir / resource["metadata"]["name"]).resolve()
        here.mkdir(parents=True, exist_ok=True)
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
            flags,
            parallelism or 0,
        )
        # Whole or not at all: the PipelineRun's Running version is there until this replaces it.
        atomic_write_text(here / f"{resource['kind'].lower()}.yaml", dump(finished))
        summarize(finished, here, durations, log)
        return finished, ok

    if len(runs) == 1:
        outcomes = [one(runs[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            outcomes = list(pool.map(one, runs))
    finished_runs = [finished for finished, _ in outcomes]
    if output == "yaml":
        click.echo("---\n".join(dump(f) for f in finished_runs), nl=False)
    elif output == "json":
        shown: Any = (
            finished_runs[0]
            if len(finished_runs) == 1
            else {"apiVersion": "v1", "kind": "List", "items": finished_runs}
        )
        click.echo(json.dumps(shown, indent=2))
    sys.exit(0 if all(ok for _, ok in outcomes) else 1)


def _die_with_parent() -> None:
    """When a listener started this run (it sets TEKTON_MLOPS_DIE_WITH_PARENT to its pid),
    end with it: Linux's PR_SET_PDEATHSIG, set here rather than in a preexec_fn, which is
    unsafe in the listener's threads."""
    parent = os.environ.get("TEKTON_MLOPS_DIE_WITH_PARENT", "")
    if not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != int(parent):  # the listener died before the line above
        os._exit(137)


def _feature_flags(
    path: Path | None, documents: list[dict[str, Any]], name: str, flags_type: Any
) -> Any:
    """Flags from --feature-flags (a ConfigMap or plain key: value YAML) or the file's
    own feature-flags ConfigMap; Tekton's defaults when neither is given."""
    from tekton_mlops.yamlio import load

    if path is not None:
        document = load(path.read_text()) or {}
        if document.get("kind") != "ConfigMap":
            document = {"data": document}
        return flags_type.from_config_map(document)
    for document in documents:
        if (
            document.get("kind") == "ConfigMap"
            and (document.get("metadata") or {}).get("name") == name
        ):
            return flags_type.from_config_map(document)
    return flags_type()


def _host_path(path: Path) -> Path:
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_runner(
    kind: str,
    image_map: dict[str, str],
    pass_env: tuple[str, ...] = (),
    host_paths: tuple[Path, ...] = (),
) -> Any:
    from tekton_mlops import __version__
    from tekton_mlops.local.mount import Mount
    from tekton_mlops.local.runner import ProcessRunner

    shared = tuple(Mount(path, str(path)) for path in host_paths)
    if kind == "process":
        return ProcessRunner(lambda line: None, pass_env=pass_env, host_paths=shared)
    from tekton_mlops.local.podman import PodmanRunner

    defaults = {}
    for pinned in (
        Path("catalog/runtime-image.txt"),
        Path(__file__).resolve().parents[3] / "catalog" / "runtime-image.txt",
    ):
        if pinned.is_file():
            defaults[pinned.read_text().strip()] = f"localhost/tekton-mlops-runtime:{__version__}"
    return PodmanRunner(lambda line: None, defaults | image_map, host_paths=shared)


def execute(
    resource: dict[str, Any],
    cluster: Any,
    step_runner: Any,
    here: Path,
    local_dirs: dict[str, str],
    log: Log,
    durations: dict[str, float],
    overrides: tuple[str, ...] = (),
    flags: Any = None,
    parallelism: int = 0,
) -> tuple[dict[str, Any], bool]:
    from tekton_mlops.local.cluster import ResolutionError
    from tekton_mlops.local.pipelinerun import PipelineRunExecutor
    from tekton_mlops.local.status import condition
    from tekton_mlops.local.taskrun import TaskRunExecutor, TaskRunPlan
    from tekton_mlops.local.workspaces import bind_workspaces
    from tekton_mlops.tekton.durations import parse_duration, timestamp
    from tekton_mlops.tekton.pipeline_rules import propagate_workspaces

    spec = resource["spec"]
    name = resource["metadata"]["name"]
    taskruns = TaskRunExecutor(cluster, step_runner, here, log, flags, parallelism)
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
            if "pipelineSpec" in spec:
                # An embedded spec sees the run's workspaces without declaring them.
                bound = {str(b.get("name")) for b in spec.get("workspaces") or []}
                pipeline_spec = propagate_workspaces(spec["pipelineSpec"], bound)
            else:
                referenced = cluster.resolve("Pipeline", spec["pipelineRef"]).get("spec") or {}
                # Its own workspaces still reach its embedded taskSpecs undeclared.
                pipeline_spec = propagate_workspaces(referenced, set())
        resolved = task_spec if kind == "TaskRun" else pipeline_spec
        warn_undeclared(overrides, resolved, kind)
        split_array_overrides(overrides, resolved, spec)
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
        pod_template=spec.get("podTemplate") or {},
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


def split_array_overrides(
    names: tuple[str, ...], spec: dict[str, Any], run: dict[str, Any]
) -> None:
    """A --param of an array param is a comma-separated list (as `tkn pipeline start -p`
    takes one): ``approvers=alice,bob`` -> ``[alice, bob]``, an empty value -> ``[]``."""
    from tekton_mlops.tekton.defaults import param_type

    arrays = {str(p.get("name")) for p in spec.get("params") or [] if param_type(p) == "array"}
    for param in run.get("params") or []:
        if param["name"] in names and param["name"] in arrays and isinstance(param["value"], str):
            param["value"] = [item.strip() for item in param["value"].split(",") if item.strip()]


#: More rows than this and the summary shows only what did not succeed, and a count.
FOLD_AT = 40


def summarize(finished: dict[str, Any], here: Path, durations: dict[str, float], log: Log) -> None:
    """The closing table: every task with its TaskRun, status, reason and duration."""
    status = finished.get("status", {})
    condition = (status.get("conditions") or [{}])[0]
    rows = [("TASK", "TASKRUN", "STATUS", "REASON", "DURATION")]
    if finished["kind"] == "PipelineRun":
        for child in status.get("childReferences") or []:
            saved = here / child["name"] / f"{child['kind'].lower()}.yaml"
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
    header, body = rows[0], rows[1:]
    hidden = ""
    if len(body) > FOLD_AT:
        # Hundreds of rows help nobody: what did not succeed first, then a count of the rest.
        unusual = [row for row in body if row[2] != "Succeeded"]
        shown = unusual[:FOLD_AT]
        succeeded = len(body) - len(unusual)
        others = len(unusual) - len(shown)
        hidden = f"  ... and {succeeded} Succeeded" + (
            f", {others} more not shown" if others else ""
        )
        body = shown
    rows = [header, *body]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        log(
            "  "
            + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            + "  "
            + row[4]
        )
    if hidden:
        log(hidden)
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
