"""``tekton-mlops kfp``: compile Kubeflow Pipelines v2 to Tekton, run them here.

``compile`` and ``run`` are for people; ``launch`` is what the compiled steps call.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from tekton_mlops.guard import run_guarded

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not {what}=VALUE")
        pairs[key] = value
    return pairs


@click.group(context_settings=CONTEXT)
def kfp() -> None:
    """Kubeflow Pipelines v2 on Tekton: compile the KFP IR to tekton.dev/v1, run it here.

    PIPELINE is the IR YAML the kfp 2.x SDK compiles, or FILE.py:FUNCTION, a @dsl.pipeline
    function compiled with the kfp SDK first (pip install 'tekton-mlops[kfp]').
    """


_runtime_image = click.option(
    "--runtime-image",
    default=None,
    metavar="REF",
    help="Image of the launcher steps and of lightweight Python components (the runtime "
    "image built with the kfp extra). Default: ghcr.io/tekton-mlops/runtime:<version>.",
)
_storage = click.option(
    "--storage",
    default="1Gi",
    show_default=True,
    help="Size of the PipelineRun's volumeClaimTemplate for the kfp workspace.",
)


def _compile(pipeline: str, runtime_image: str | None, storage: str) -> Any:
    from tekton_mlops.kfp import ir, sdk
    from tekton_mlops.kfp.compiler import Options, compile_spec

    target = sdk.split_target(pipeline)
    if target is not None:
        text = sdk.compile_file(*target)
        source = pipeline
    else:
        path = Path(pipeline)
        if not path.is_file():
            from tekton_mlops.kfp.errors import CompileError

            raise CompileError(f"{pipeline}: no such file")
        text = path.read_text()
        source = pipeline
    spec = ir.load(text, source)
    options = Options(storage=storage)
    if runtime_image:
        options.runtime_image = runtime_image
    compiled = compile_spec(spec, options)
    for note in compiled.notes:
        click.echo(f"note: {note}", err=True)
    return compiled


def _dump(compiled: Any) -> str:
    from tekton_mlops.yamlio import dump

    return "---\n".join(dump(d) for d in compiled.documents())


@kfp.command(name="compile", context_settings=CONTEXT)
@click.argument("pipeline")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the YAML here instead of standard output.",
)
@_runtime_image
@_storage
@click.option("--debug", is_flag=True, help="Tracebacks on errors.")
def compile_command(
    pipeline: str, output: Path | None, runtime_image: str | None, storage: str, debug: bool
) -> None:
    """Compile PIPELINE to a Pipeline and a PipelineRun (multi-document YAML).

    Exit 2, with nothing written, when the pipeline uses a KFP feature that has no
    mapping here; the message names the feature and the task.
    """

    def action() -> None:
        text = _dump(_compile(pipeline, runtime_image, storage))
        if output is None:
            click.echo(text, nl=False)
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
            click.echo(f"wrote {output}", err=True)

    run_guarded(action, debug)


@kfp.command(name="run", context_settings=CONTEXT)
@click.argument("pipeline")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="A pipeline input (its KFP name), as its text form: 3, 0.5, true, "
              "[1, 2] (repeatable).")  # fmt: skip
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="yaml: the finished PipelineRun, then the outputs as a second document; json: "
    "one object with both.",
)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".tekton-mlops/runs"),
    show_default=True,
    help="Where the run keeps its logs and the kfp workspace (artifacts).",
)
@click.option("--runner", type=click.Choice(["process", "podman"]), default="process",
              show_default=True, help="As for tekton-mlops run.")  # fmt: skip
@click.option("--host-path", "host_paths", multiple=True, metavar="DIR",
              help="Share a folder of this machine with the steps (repeatable), e.g. the "
              "folder of a file:// importer URI.")  # fmt: skip
@click.option("--secrets-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Secrets and ConfigMaps (kfp-kubernetes) as DIR/<name>/<key>.")  # fmt: skip
@click.option("--image-map", "image_maps", multiple=True, metavar="REF=LOCAL",
              help="podman: run LOCAL where a step names REF (repeatable).")  # fmt: skip
@click.option("--parallelism", type=click.IntRange(min=1), default=None,
              help="How many TaskRuns run at once.")  # fmt: skip
@_runtime_image
@click.option("--debug", is_flag=True, help="Tracebacks on errors.")
def run_command(
    pipeline: str,
    params: tuple[str, ...],
    output: str,
    run_dir: Path,
    runner: str,
    host_paths: tuple[str, ...],
    secrets_dir: Path | None,
    image_maps: tuple[str, ...],
    parallelism: int | None,
    runtime_image: str | None,
    debug: bool,
) -> None:
    """Compile PIPELINE and run it with the local executor (tekton-mlops run).

    Prints the finished PipelineRun as tekton-mlops run does, then the pipeline's outputs:
    parameters with their KFP types, artifacts as paths on this machine. Exit 0 when the
    run succeeded, 1 when it failed, 2 when the pipeline cannot be compiled.
    """
    from tekton_mlops.kfp import runner as local

    code: list[int] = [0]

    def action() -> None:
        compiled = _compile(pipeline, runtime_image, "1Gi")
        given = _pairs(params, "NAME")
        unknown = sorted(set(given) - set(compiled.params))
        if unknown:
            from tekton_mlops.kfp.errors import CompileError

            known = ", ".join(sorted(compiled.params)) or "none"
            raise CompileError(f"the pipeline has no input {', '.join(unknown)} (inputs: {known})")
        tekton_params = {compiled.params[k]: v for k, v in given.items()}
        folder = run_dir.parent / "kfp"
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / f"{compiled.pipeline['metadata']['name']}.yaml"
        file.write_text(_dump(compiled))
        passthrough = ["--runner", runner]
        for path in host_paths:
            passthrough += ["--host-path", path]
        if secrets_dir is not None:
            passthrough += ["--secrets-dir", str(secrets_dir)]
        for mapping in image_maps:
            passthrough += ["--image-map", mapping]
        if parallelism:
            passthrough += ["--parallelism", str(parallelism)]
        finished, code[0] = local.execute(file, tekton_params, run_dir, passthrough)
        if finished is None:
            return
        found = local.outputs(finished, compiled, run_dir)
        if output == "json":
            click.echo(json.dumps({"pipelineRun": finished, "outputs": found}, indent=2))
        else:
            from tekton_mlops.yamlio import dump

            click.echo(dump(finished), nl=False)
            click.echo("---\n" + dump({"outputs": found}), nl=False)

    run_guarded(action, debug)
    sys.exit(code[0])


# What the compiled steps run ---------------------------------------------------------------


def _invocation(options: dict[str, Any], with_plan: bool = True) -> Any:
    from tekton_mlops.kfp.errors import LaunchError
    from tekton_mlops.kfp.launcher import Invocation, decode
    from tekton_mlops.kfp.store import Store, parse_key

    store = Store(Path(options["store"]), str(options["run"]))
    try:
        key = parse_key(options.get("iteration") or "")
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    plan: dict[str, Any] = {}
    if with_plan:
        if options.get("plan"):
            plan = json.loads(decode(options["plan"]))
        elif options.get("task"):
            saved = store.instance(options["task"], key) / "plan.json"
            if not saved.is_file():
                raise LaunchError(f"{saved} is missing: the task's first step did not run")
            plan = json.loads(saved.read_text())
        else:
            raise LaunchError("give --plan or --task")
    attempt = str(options.get("retry_count") or "0")
    if not attempt.isdigit():
        raise LaunchError(f"--retry-count {attempt!r} is not a number of retries")
    saved_invocation: dict[str, Any] = {}
    if options.get("task") and not options.get("plan"):
        record = store.instance(options["task"], key) / "invocation.json"
        if record.is_file():
            saved_invocation = json.loads(record.read_text())
    return Invocation(
        store=store,
        key=key,
        params={**saved_invocation.get("params", {}), **_pairs(options["param"], "NAME")},
        statuses={**saved_invocation.get("statuses", {}), **_pairs(options["status"], "TASK")},
        results={k: Path(v) for k, v in _pairs(options["result"], "NAME").items()},
        task_run=str(options.get("task_run") or saved_invocation.get("task_run") or ""),
        task_uid=str(options.get("task_uid") or saved_invocation.get("task_uid") or ""),
        run_uid=str(options.get("run_uid") or saved_invocation.get("run_uid") or ""),
        plan=plan,
        attempt=int(attempt),
        slots_held=str(options.get("slots_held") or ""),
    )


def _launch_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--store", required=True, help="The kfp workspace's path."),
            click.option("--run", required=True, help="The PipelineRun's name."),
            click.option("--iteration", default="", help="This instance's iteration key."),
            click.option("--param", multiple=True, help="NAME=TEXT of a pipeline param."),
            click.option("--status", multiple=True, help="TASK=STATUS of a finished task."),
            click.option("--result", multiple=True, help="NAME=PATH of a Tekton result."),
            click.option("--task-run", default="", help="The TaskRun's name."),
            click.option("--task-uid", default="", help="The TaskRun's uid."),
            click.option("--run-uid", default="", help="The PipelineRun's uid."),
            click.option("--retry-count", default="0", help="The attempt: 0, 1 on a retry ..."),
            click.option(
                "--slots-held", default="", help="The pod whose slots sidecar holds the slots."
            ),
            click.option("--plan", default="", help="The task's plan (JSON) from the compiler."),
            click.option("--task", default="", help="The task whose saved plan to read."),
            click.option("--debug", is_flag=True, help="Tracebacks on errors."),
        ]
    ):
        command = option(command)
    return command


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("kfp: %(message)s"))
    root = logging.getLogger("tekton_mlops")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


@kfp.group(context_settings=CONTEXT, hidden=True)
def launch() -> None:
    """What the steps of a compiled pipeline run (not for people)."""


@launch.command(name="python", context_settings=CONTEXT)
@_launch_options
@click.option("--source", required=True, help="The component's Python source.")
def launch_python(source: str, **options: Any) -> None:
    """Run a lightweight Python component with KFP's executor."""
    from tekton_mlops.kfp.launcher import decode, run_python

    _configure_logging()
    run_guarded(lambda: run_python(_invocation(options), decode(source)), options["debug"])


@launch.command(name="prepare", context_settings=CONTEXT)
@_launch_options
@click.option("--command-result", type=click.Path(path_type=Path), default=None)
@click.option("--args-result", type=click.Path(path_type=Path), default=None)
def launch_prepare(command_result: Path | None, args_result: Path | None, **options: Any) -> None:
    """Resolve a container component's inputs and command line."""
    from tekton_mlops.kfp.launcher import prepare

    _configure_logging()
    run_guarded(
        lambda: prepare(_invocation(options), command_result, args_result), options["debug"]
    )


@launch.command(name="publish", context_settings=CONTEXT)
@_launch_options
def launch_publish(**options: Any) -> None:
    """Publish a container component's outputs."""
    from tekton_mlops.kfp.launcher import publish_step

    _configure_logging()
    run_guarded(lambda: publish_step(_invocation(options)), options["debug"])


@launch.command(name="import", context_settings=CONTEXT)
@_launch_options
@click.option("--source-result", type=click.Path(path_type=Path), required=True)
@click.option("--output-result", type=click.Path(path_type=Path), required=True)
def launch_import(source_result: Path, output_result: Path, **options: Any) -> None:
    """Resolve an importer's URI for fetch-data."""
    from tekton_mlops.kfp.launcher import import_prepare

    _configure_logging()
    run_guarded(
        lambda: import_prepare(_invocation(options), source_result, output_result),
        options["debug"],
    )


@launch.command(name="import-publish", context_settings=CONTEXT)
@_launch_options
def launch_import_publish(**options: Any) -> None:
    """Publish what fetch-data fetched as the importer's artifact."""
    from tekton_mlops.kfp.launcher import import_publish

    _configure_logging()
    run_guarded(lambda: import_publish(_invocation(options)), options["debug"])


@launch.command(name="iterations", context_settings=CONTEXT)
@_launch_options
def launch_iterations(**options: Any) -> None:
    """The iteration keys a loop or a condition inside a loop lets run."""
    from tekton_mlops.kfp.launcher import iterations

    _configure_logging()
    run_guarded(lambda: iterations(_invocation(options)), options["debug"])


@launch.command(name="condition", context_settings=CONTEXT)
@_launch_options
def launch_condition(**options: Any) -> None:
    """Evaluate a condition outside loops."""
    from tekton_mlops.kfp.launcher import condition

    _configure_logging()
    run_guarded(lambda: condition(_invocation(options)), options["debug"])


@launch.command(name="slots", context_settings=CONTEXT)
@_launch_options
def launch_slots(**options: Any) -> None:
    """Hold a ParallelFor iteration's slots while the pod's steps run (a sidecar)."""
    from tekton_mlops.kfp.errors import LaunchError
    from tekton_mlops.kfp.launcher import hold_slots

    def action() -> None:
        if not options["slots_held"]:
            raise LaunchError("give --slots-held (the pod's id)")
        hold_slots(_invocation(options), options["slots_held"])

    _configure_logging()
    run_guarded(action, options["debug"], interrupted="stopped: slots released")


@launch.command(name="outputs", context_settings=CONTEXT)
@_launch_options
@click.option("--run-status", default="", help="$(tasks.status) of the run.")
def launch_outputs(run_status: str, **options: Any) -> None:
    """The pipeline's outputs as results."""
    from tekton_mlops.kfp.launcher import outputs

    _configure_logging()
    run_guarded(lambda: outputs(_invocation(options), run_status), options["debug"])
