"""``tekton-mlops``: one entrypoint for every catalog step.

Each step command is built from the step's JSON Schema, so options, the
catalog Task and the docs cannot drift apart. Commands load lazily: ``--help``
and start-up import click and the schema only; a step imports its heavy
libraries (boto3, scikit-learn, onnxruntime) when it runs.

Exit codes: 0 success, 1 the step failed (one clear line), 2 invalid
parameters (every violation listed, nothing done).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from tekton_mlops import __version__
from tekton_mlops.guard import run_guarded
from tekton_mlops.params import StepSchema, env_name, load_schema, python_name, step_names

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Commands that are not steps: name -> "module:attribute" of a click command.
TOOL_COMMANDS: dict[str, str] = {
    "catalog": "tekton_mlops.catalog.cli:catalog",
    "run": "tekton_mlops.local.cli:run",
    "approve": "tekton_mlops.local.approve_cli:approve",
    "serve": "tekton_mlops.serving.cli:serve",
    "listen": "tekton_mlops.triggers.cli:listen",
    "post-event": "tekton_mlops.triggers.post_cli:post_event",
    "keys": "tekton_mlops.keys:keys",
    "kfp": "tekton_mlops.kfp.cli:kfp",
    "route": "tekton_mlops.serving.route_cli:route",
    "log-sink": "tekton_mlops.serving.sink_cli:log_sink",
    "lineage": "tekton_mlops.lineage_store.cli:lineage",
    "dashboard": "tekton_mlops.dashboard.cli:dashboard",
}

_results_dir_option = click.option(
    "--results-dir",
    envvar="TEKTON_RESULTS_DIR",
    default=None,
    show_envvar=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Where Tekton results are written, one file per result. Default: /tekton/results "
    "when it exists (in a Tekton pod), else the results are printed as name=value lines.",
)
_debug_option = click.option(
    "--debug",
    envvar="TEKTON_MLOPS_DEBUG",
    is_flag=True,
    show_envvar=True,
    help="Show tracebacks and debug logs.",
)


def _option_for(name: str, prop: dict[str, Any], required: bool) -> click.Option:
    kind = prop.get("type", "string")
    default = prop.get("default")
    shown: str | bool = False
    if default not in (None, ""):
        shown = default if isinstance(default, str) else _json_text(default)
    extra: dict[str, Any] = {}
    if kind == "boolean":
        # `--flag` alone means true; `--flag=false` is what a Task passes.
        extra = {"is_flag": False, "flag_value": "true"}
    text = " ".join(str(prop.get("description", "")).split())
    if required:
        text += " [required]"
    return click.Option(
        [f"--{name}", python_name(name)],
        envvar=env_name(name),
        show_envvar=True,
        default=None,
        show_default=shown,
        metavar=kind.upper() if kind != "string" else "TEXT",
        help=text,
        **extra,
    )


def _json_text(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def build_step_command(schema: StepSchema) -> click.Command:
    """A click command whose options are the schema's properties."""

    @_results_dir_option
    @_debug_option
    def callback(results_dir: Path | None, debug: bool, **raw: str | None) -> None:
        from tekton_mlops.contract import execute

        _configure_logging(schema.step, debug)
        by_param = {name: raw.get(python_name(name)) for name in schema.properties}
        run_guarded(
            lambda: execute(schema.step, by_param, results_dir),
            debug,
            interrupted="interrupted; partial output was removed",
        )

    command = click.command(
        name=schema.step,
        help=str(schema.document.get("description", "")),
        short_help=schema.summary,
        context_settings=CONTEXT_SETTINGS,
    )(callback)
    for name, prop in reversed(list(schema.properties.items())):
        command.params.insert(0, _option_for(name, dict(prop), name in schema.required))
    return command


def _configure_logging(step: str, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{step}: %(message)s"))
    root = logging.getLogger("tekton_mlops")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


class LazyGroup(click.Group):
    """Builds a step command only when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(step_names() + list(TOOL_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in TOOL_COMMANDS:
            import importlib

            module_name, attribute = TOOL_COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            return command
        if cmd_name in step_names():
            return build_step_command(load_schema(cmd_name))
        return None


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="tekton-mlops")
def main() -> None:
    """Run a tekton-mlops catalog step, or work with the catalog.

    Every step validates its parameters against its JSON Schema first: invalid
    parameters exit with code 2 and change nothing. Each option can also be set
    through the environment variable shown in the step's --help.
    """


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
